"""Real-LLM yes/no scoring: SmolLM2-135M-Instruct (the prepared float32 folder) scored three ways on the same prompts.

- ``ours``: ``Reranker`` with the ``chat`` yes/no template (two lm_head rows at the last real token, pairs sorted by
  length into batches, right padding), with and without shared-query-prefix KV reuse;
- ``st_crossencoder``: sentence-transformers ``CrossEncoder`` on the same folder. For a ``*ForCausalLM`` config it
  builds ``Transformer(transformer_task="text-generation")`` + ``LogitScore(yes, no)``: left padding,
  ``logits_to_keep=1`` (the full-vocabulary logits at the last position only), score = z_yes − z_no. A pair is turned
  into one ``query`` and one ``document`` chat message, so the model needs a chat template that renders those two
  roles; we give it one that renders exactly our prompt (the documented way: ``processor.chat_template``);
- ``transformers_plain``: ``AutoModelForCausalLM`` on the folder, prompts rendered as strings, left-padded batches in
  input order, ``model(**batch).logits[:, -1, :]`` (full-vocabulary logits at every position, the model-card way),
  score = z_yes − z_no.

Documents are cut to ``--doc-tokens`` tokens once, in text space (at a token boundary), before any system sees them,
and every system's own limits are set above that, so no system truncates and all three tokenise the same strings.
The bench checks that the token ids are identical, then compares the scores.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import common

MODEL = "smollm2-135m-instruct"
INSTRUCTION = (
    "Given a scientific claim, judge whether the document provides evidence that supports or refutes it"
)


def add_parser(sp: Any) -> None:
    p = sp.add_parser(
        "llm-yesno", help="SmolLM2 yes/no scoring: ours vs ST CrossEncoder vs plain transformers"
    )
    p.add_argument("--queries", type=int, default=3)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--doc-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--tag", default="")


def cut_documents(tokenizer: Any, texts: list[str], n: int) -> list[str]:
    """Each text cut to its first ``n`` tokens, as a string prefix ending at a token boundary."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return [t if len(o) <= n else t[: o[n - 1][1]] for t, o in zip(texts, enc["offset_mapping"])]


def st_chat_template(prompt: str) -> str:
    """A Jinja chat template rendering the ``query`` and ``document`` messages of a CrossEncoder pair into
    ``prompt`` (which holds ``{query}`` and ``{document}``); content may be a string (flat messages) or a list of
    typed parts (structured)."""
    for ch in ("{{", "{%", "{#"):
        if ch in prompt:
            raise ValueError(f"the prompt contains {ch!r}, which Jinja would read")

    def field(role: str) -> str:
        # expressions only: transformers renders with trim_blocks / lstrip_blocks, which would eat the newline
        # after a block tag ({% set %}, {% if %})
        m = f'(messages | selectattr("role", "eq", "{role}") | first).content'
        return f"{{{{ {m} if {m} is string else {m}[0].text }}}}"

    head, rest = prompt.split("{query}")
    mid, tail = rest.split("{document}")
    # Jinja drops one trailing newline of a template (keep_trailing_newline=False); the prompt ends in one
    if tail.endswith("\n"):
        tail = tail[:-1] + "{{ '\\n' }}"
    return head + field("query") + mid + field("document") + tail


def bench_llm_yesno(a: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_align.scoring import Reranker
    from rerank_align.scoring.modeling import resolve_model_path

    path = str(resolve_model_path(MODEL))
    tok = AutoTokenizer.from_pretrained(path)
    pairs = common.scifact_pairs(a.queries, a.k)
    qs = [q for q, _ in pairs]
    ds = cut_documents(tok, [common.doc_text(d) for _, d in pairs], a.doc_tokens)

    # ours: limits above anything the inputs hold, so the contract cuts nothing
    plain_rr = Reranker.from_base(
        MODEL, kind="yesno", template="chat", instruction=INSTRUCTION, device="cpu",
        batch_size=a.batch_size, autocast_dtype="float32", max_query_length=512,
        max_document_length=a.doc_tokens + 64, max_length=4096,
    )  # fmt: skip
    prefix_rr = Reranker(
        plain_rr.model, plain_rr.tokenizer, plain_rr.contract, device="cpu", batch_size=a.batch_size,
        autocast_dtype="float32", reuse_prefix=True,
    )  # fmt: skip
    rrs = {False: plain_rr, True: prefix_rr}
    contract = rrs[False].contract
    prompt = contract.template
    yes, no = contract.answer_token_ids["yes"], contract.answer_token_ids["no"]

    ce = CrossEncoder(path, device="cpu", max_length=4096)
    modules = [type(m).__name__ for m in ce]
    logit_score = ce[-1]
    assert (logit_score.true_token_id, logit_score.false_token_id) == (yes, no), (modules, yes, no)
    ce[0].processor.chat_template = st_chat_template(prompt)
    ident = torch.nn.Identity()

    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(path, padding_side="left")
    texts = [prompt.replace("{query}", q, 1).replace("{document}", d, 1) for q, d in zip(qs, ds)]

    # the same token ids in all three systems
    ours_ids = [f["input_ids"] for f in rrs[False].encoder.encode(qs, ds)]
    st_ids = []
    for q, d in zip(qs, ds):
        st_ids.append(ce[0].preprocess([(q, d)])["input_ids"][0].tolist())
    hf_ids = hf_tok(texts, add_special_tokens=False)["input_ids"]
    same_ids = {"ours_vs_st": ours_ids == st_ids, "ours_vs_transformers": ours_ids == hf_ids}

    @torch.inference_mode()
    def plain() -> np.ndarray:
        out = []
        for i in range(0, len(texts), a.batch_size):
            batch = hf_tok(
                texts[i : i + a.batch_size], add_special_tokens=False, padding=True, return_tensors="pt"
            )
            logits = hf(**batch).logits[:, -1, :]
            out.append((logits[:, yes] - logits[:, no]).float())
        return torch.cat(out).numpy()

    def st() -> np.ndarray:
        return ce.predict(
            list(zip(qs, ds)), batch_size=a.batch_size, activation_fn=ident, show_progress_bar=False
        )

    def ours(reuse: bool):
        def run() -> np.ndarray:
            rrs[reuse].encoder._cache.clear()  # tokenisation included, as on first sight of a pair
            return rrs[reuse].score_pairs(qs, ds)

        return run

    fns = {
        "st_crossencoder": st,
        "transformers_plain": plain,
        "ours_2row_bucketed": ours(False),
        "ours_2row_bucketed_prefix": ours(True),
    }
    scores = {k: np.asarray(f(), dtype=np.float64) for k, f in fns.items()}
    t = common.compare(fns, a.reps, a.warmup)
    n = len(pairs)
    base = t["st_crossencoder"]["median_s"]
    rows = [[k, v["median_s"], n / v["median_s"], base / v["median_s"]] for k, v in t.items()]
    print(common.table(rows, ["system", "median CPU s", "pairs/s", "speed vs ST CrossEncoder"]))
    ref = scores["st_crossencoder"]
    diffs = {k: float(np.max(np.abs(v - ref))) for k, v in scores.items() if k != "st_crossencoder"}
    lens = [len(x) for x in ours_ids]
    out = {
        "figure": "llm-yesno",
        "model": MODEL,
        "model_path": os.path.basename(path),
        "st_modules": modules,
        "pairs": n,
        "queries": a.queries,
        "k": a.k,
        "doc_tokens": a.doc_tokens,
        "batch_size": a.batch_size,
        "prompt_tokens": {"mean": float(np.mean(lens)), "min": min(lens), "max": max(lens)},
        "identical_token_ids": same_ids,
        "times": t,
        "pairs_per_s": {k: n / v["median_s"] for k, v in t.items()},
        "ratio_vs_st_crossencoder": {k: base / v["median_s"] for k, v in t.items()},
        "max_abs_score_diff_vs_st": diffs,
        "score_std": float(np.std(ref)),
        "scores": {k: v.tolist() for k, v in scores.items()},
    }
    print(f"identical ids: {same_ids}; max |score - ST|: {diffs}; prompt tokens {out['prompt_tokens']}")
    return out
