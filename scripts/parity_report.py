"""Parity tables, measured on tiny models built in code (no hub, CPU, ~2 minutes).

1. Inside the project: max |training-path score − Reranker.from_pretrained(saved).score()| per kind (left/right
   padding, batch sizes 1/2/7 after reloading).
2. Outside it: template × loader → max |Δ ids| (over pairs: positions that differ + length difference; 0 = the same
   ids) and max |Δ score|, against the official constructions written in tests/official_prompts.py from the published
   code (Qwen3-Reranker model card, FlagEmbedding get_inputs, whole-string tokenisation, vLLM's get_score_prompt),
   and sentence-transformers 6.3 itself. The weights are the tiny base's plus noise (so scores are not flat).
3. ``rerank-align push --dry-run`` file lists for a training output folder and for a merged model.

    PYTHONPATH=. .venv/bin/python scripts/parity_report.py [--part 1|2|3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# the test harness (rerank_align_testing) lives at the repository root, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the official constructions live with the tests that use them


def part1(tmp: Path) -> None:
    import torch

    from rerank_align.scoring import PairEncoder, Reranker, ScoringContract, build_contract, score_forward
    from rerank_align.scoring.modeling import load_model, load_tokenizer
    from rerank_align_testing.tiny import build_tiny_bert, build_tiny_causal

    query = "kalomi suta"
    docs = [
        "kalomi vota ripe suta kalomi",
        {"title": "Tides", "text": "the moon pulls water " * 30},
        "zuga fine",
        "short",
    ]
    causal, bert = build_tiny_causal(tmp / "causal"), build_tiny_bert(tmp / "bert")
    cases = {
        "yesno qwen3 (log_softmax_yes)": (causal, "causal", dict(kind="yesno", template="qwen3")),
        "yesno bge-gemma (yes_logit)": (causal, "causal", dict(kind="yesno", template="bge-gemma")),
        "yesno plain (logit_diff)": (causal, "causal", dict(kind="yesno", template="plain")),
        "head causal (last token)": (causal, "causal", dict(kind="head")),
        "head encoder ([CLS])": (bert, "encoder", dict(kind="head")),
    }
    print("| kind | max abs diff, training path (left/right padding) vs from_pretrained (batch 1/2/7) |")
    print("|---|---|")
    for name, (base, arch, fields) in cases.items():
        tok = load_tokenizer(str(base))
        contract = build_contract(
            tok,
            base_model=str(base),
            architecture=arch,
            max_query_length=8,
            max_document_length=24,
            max_length=96,
            **fields,
        )
        torch.manual_seed(0)
        model = load_model(str(base), contract).eval()
        train_scores = []
        for side in ("right",) if arch == "encoder" else ("left", "right"):
            c = ScoringContract.from_dict({**contract.to_dict(), "padding_side": side})
            enc = PairEncoder(tok, c)
            with torch.no_grad():
                train_scores.append(
                    score_forward(model, c, enc.collate(enc.encode([query] * len(docs), docs))).scores
                )
        out = tmp / name.split()[0] / name.split()[1]
        Reranker(model, tok, contract).save_pretrained(out)
        worst = max((a - b).abs().max().item() for a in train_scores for b in train_scores)
        for bs in (1, 2, 7):
            served = torch.tensor(
                Reranker.from_pretrained(out, batch_size=bs, autocast_dtype="float32").score(query, docs)
            )
            worst = max(worst, max((served - t).abs().max().item() for t in train_scores))
        print(f"| {name} | {worst:.2e} |")


def _ids_delta(a: list[list[int]], b: list[list[int]]) -> int:
    return max(sum(x != y for x, y in zip(r, s)) + abs(len(r) - len(s)) for r, s in zip(a, b))


def _noisy_yesno(base: Path, out: Path, fields: dict) -> Path:
    """A saved yes/no reranker: the tiny base's weights plus N(0, 0.05²) noise."""
    import torch

    from rerank_align.scoring import Reranker

    rr = Reranker.from_base(str(base), kind="yesno", device="cpu", **fields)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in rr.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    rr.save_pretrained(out)
    return out


def part2(tmp: Path) -> None:
    import json

    import numpy as np
    import torch
    from official_prompts import (
        LONG_DOC,
        PAIRS,
        bge_official_ids,
        last_logit_scores,
        padded,
        qwen3_official_ids,
        vllm_prompt_ids,
        whole_string_ids,
    )
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification

    from rerank_align.export.export import to_seq_cls
    from rerank_align.export.serving import write_chat_template, write_sentence_transformers_yesno
    from rerank_align.scoring import PairEncoder, Reranker, ScoringContract, build_contract
    from rerank_align_testing.tiny import build_tiny_causal

    causal = build_tiny_causal(tmp / "causal")
    qwen2 = build_tiny_causal(tmp / "qwen2", arch="qwen2")
    templates = {
        "qwen3": (causal, dict(template="qwen3")),
        "bge-gemma": (causal, dict(template="bge-gemma")),
        "plain": (causal, dict(template="plain", formula="logit_diff")),
        "custom": (qwen2, dict(template="Q={query} | D={document} ->", formula="yes_logit")),
    }
    fit_pairs = PAIRS
    long_pairs = [*PAIRS, ("kalomi nesu", LONG_DOC)]
    q_fit, d_fit = [q for q, _ in fit_pairs], [d for _, d in fit_pairs]
    rows = []
    for name, (base, fields) in templates.items():
        folder = _noisy_yesno(base, tmp / f"{name}-yesno", fields)
        rr = Reranker.from_pretrained(folder, device="cpu")
        tok, c = rr.tokenizer, rr.contract
        model = rr.model

        def scores_of_ids(ids_list, c=c, model=model):
            if c.formula == "log_softmax_yes":
                yes, no = c.answer_token_ids["yes"], c.answer_token_ids["no"]
                d = last_logit_scores(model, ids_list, [yes, no]).numpy()
                return -np.logaddexp(0.0, -d)
            tid = [c.answer_token_ids["yes"]] + (
                [c.answer_token_ids["no"]] if c.formula == "logit_diff" else []
            )
            return last_logit_scores(model, ids_list, tid).numpy()

        # the official construction, with truncation binding for the long document
        if name == "qwen3":
            L = 120
            lc = build_contract(
                tok, base_model=c.base_model, kind="yesno", architecture="causal", template="qwen3",
                max_query_length=4096, max_document_length=4096, max_length=L,
            )  # fmt: skip
            official = qwen3_official_ids(tok, long_pairs, L)
            label = "Qwen3-Reranker model card (process_inputs, max_length 120)"
        elif name == "bge-gemma":
            L = 96
            sep = len(tok("\n", add_special_tokens=False)["input_ids"])
            prompt = len(tok(c.template.split("\n")[-1], add_special_tokens=False)["input_ids"])
            a_only = len(tok("A:", add_special_tokens=False)["input_ids"])
            lc = build_contract(
                tok, base_model=c.base_model, kind="yesno", architecture="causal", template="bge-gemma",
                max_query_length=L * 3 // 4 - a_only, max_document_length=4096, max_length=L + sep + prompt,
            )  # fmt: skip
            official = bge_official_ids(tok, long_pairs, L)
            label = "FlagEmbedding get_inputs (max_length 96)"
        else:
            lc = c
            official = whole_string_ids(tok, c.template, fit_pairs)
            label = "whole rendered prompt, one tokenizer call"
        pairs = long_pairs if name in ("qwen3", "bge-gemma") else fit_pairs
        qs, ds = [q for q, _ in pairs], [d for _, d in pairs]
        for side in ("left", "right"):
            enc = PairEncoder(tok, ScoringContract.from_dict({**lc.to_dict(), "padding_side": side}))
            feats = enc.encode(qs, ds)
            ours = [f["input_ids"] for f in feats]
            same_batch = torch.equal(
                enc.collate(feats)["input_ids"], padded(tok, official, side)["input_ids"]
            )
            got = Reranker(model, tok, ScoringContract.from_dict({**lc.to_dict(), "padding_side": side}))
            d_score = np.abs(got.score_pairs(qs, ds) - scores_of_ids(official)).max()
            rows.append(
                (
                    name,
                    f"Reranker ({side} padding) vs {label}",
                    _ids_delta(ours, official),
                    d_score,
                    same_batch,
                )
            )
        legacy = PairEncoder(tok, ScoringContract.from_dict({**lc.to_dict(), "version": 1}))
        old = [f["input_ids"] for f in legacy.encode(qs, ds)]
        n_diff = sum(a != b for a, b in zip(old, official))
        rows.append(
            (
                name,
                f"before: per-piece ids (contract version 1) vs {label}; {n_diff}/{len(pairs)} pairs differ",
                _ids_delta(old, official),
                float(np.abs(scores_of_ids(old) - scores_of_ids(official)).max()),
                None,
            )
        )
        plain = rr.score_pairs(q_fit, d_fit)
        reuse = Reranker(model, tok, c, reuse_prefix=True).score_pairs(q_fit, d_fit)
        rows.append(
            (
                name,
                "Reranker reuse_prefix vs plain path (same ids)",
                None,
                float(np.abs(plain - reuse).max()),
                None,
            )
        )

        # the merged yes/no folder in sentence-transformers (files merge writes)
        write_chat_template(folder, c)
        write_sentence_transformers_yesno(folder, c)
        ce = CrossEncoder(str(folder), device="cpu", model_kwargs={"dtype": torch.float32})
        st = ce.predict(fit_pairs, batch_size=4, convert_to_numpy=True)
        st_ids = [ce[0].preprocess([p])["input_ids"][0].tolist() for p in fit_pairs]
        ours_fit = [f["input_ids"] for f in rr.encoder.encode(q_fit, d_fit)]
        rows.append(
            (
                name,
                "yes/no folder: sentence-transformers CrossEncoder (Transformer + LogitScore) vs Reranker",
                _ids_delta(st_ids, ours_fit),
                float(np.abs(st - plain).max()),
                None,
            )
        )

        # seq-cls export: Reranker, transformers + official ids, vLLM's reading, CrossEncoder
        seq = tmp / f"{name}-seqcls"
        to_seq_cls(folder, seq)
        srr = Reranker.from_pretrained(seq, device="cpu")
        want = srr.score_pairs(q_fit, d_fit).astype("float64")
        model_sc = AutoModelForSequenceClassification.from_pretrained(str(seq), dtype=torch.float32).eval()

        def logits(ids_list, model_sc=model_sc):
            with torch.no_grad():
                return np.asarray(
                    [model_sc(input_ids=torch.tensor([r])).logits[0, 0].item() for r in ids_list]
                )

        off_fit = official[: len(fit_pairs)] if name in ("qwen3", "bge-gemma") else official
        if name in ("qwen3", "bge-gemma"):  # the official ids without truncation for the pairs that fit
            off_fit = (qwen3_official_ids if name == "qwen3" else bge_official_ids)(tok, fit_pairs, 8192)
        template = (seq / "chat_template.jinja").read_text()
        vllm_ids = [vllm_prompt_ids(seq, q, d, template) for q, d in fit_pairs]
        seq_ours = [f["input_ids"] for f in srr.encoder.encode(q_fit, d_fit)]
        ce_seq = CrossEncoder(str(seq), device="cpu", model_kwargs={"dtype": torch.float32})
        ce_scores = ce_seq.predict(fit_pairs, batch_size=4, convert_to_numpy=True)
        ce_ids = [ce_seq[0].preprocess([p])["input_ids"][0].tolist() for p in fit_pairs]
        for loader, ids_list, sc in (
            (f"seq-cls: transformers + {label.split(' (')[0]}", off_fit, logits(off_fit)),
            (
                "seq-cls: vLLM get_score_prompt (use_sep_token false, --chat-template)",
                vllm_ids,
                logits(vllm_ids),
            ),
            ("seq-cls: sentence-transformers CrossEncoder", ce_ids, ce_scores),
        ):
            rows.append(
                (name, loader + " vs Reranker", _ids_delta(ids_list, seq_ours), np.abs(sc - want).max(), None)
            )
        cfg = json.loads((seq / "config.json").read_text())
        cfg.pop("use_sep_token")
        (seq / "config.json").write_text(json.dumps(cfg))
        bare = [vllm_prompt_ids(seq, q, d) for q, d in fit_pairs]
        rows.append(
            (
                name,
                "seq-cls without the export files: vLLM default (tokenizer(q, d), no template) vs Reranker",
                _ids_delta(bare, seq_ours),
                float(np.abs(logits(bare) - want).max()),
                None,
            )
        )
    print(
        "| template | loader / construction | max \\|Δ ids\\| | max \\|Δ score\\| | padded batch identical |"
    )
    print("|---|---|---|---|---|")
    for name, loader, dids, dscore, batch in rows:
        b = "—" if batch is None else ("yes" if batch else "no")
        print(f"| {name} | {loader} | {'—' if dids is None else dids} | {dscore:.2e} | {b} |")


def part3(tmp: Path) -> None:
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model

    from rerank_align import train
    from rerank_align.config import parse_recipe
    from rerank_align.export import push as push_mod
    from rerank_align.export.merge import merge
    from rerank_align.scoring import build_contract
    from rerank_align.scoring.modeling import load_model, load_tokenizer
    from rerank_align_testing.synthetic import make_task, write_beir
    from rerank_align_testing.tiny import build_tiny_bert, build_tiny_causal

    bert = build_tiny_bert(tmp / "bert")
    task = write_beir(make_task(n_train=6, n_test=3, n_candidates=6), tmp / "task")
    out = tmp / "training-run"
    recipe = {
        "model": {"name_or_path": str(bert), "kind": "head", "max_length": 64},
        "data": {
            "beir": str(task),
            "split": "train",
            "run": str(task / "first_stage.run"),
            "num_negatives": 3,
        },
        "method": {"loss": "infonce", "group_size": 4},
        "training": {"output_dir": str(out), "max_steps": 2, "save_strategy": "steps", "save_steps": 1},
    }
    train.run(parse_recipe(recipe))
    print(
        f"### push --dry-run of a training output folder ({out.name}: `rerank-align train`, 2 steps, save every step)"
    )
    push_mod.main([str(out), "--repo-id", "me/tiny-run", "--dry-run"])

    causal = build_tiny_causal(tmp / "causal")
    tok = load_tokenizer(str(causal))
    contract = build_contract(
        tok, base_model=str(causal), kind="yesno", architecture="causal", template="qwen3"
    )
    model = get_peft_model(
        load_model(str(causal), contract),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(torch.randn_like(p) * 0.05)
    adapter = tmp / "adapter"
    model.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    contract.save(adapter)
    shutil.rmtree(tmp / "merged", ignore_errors=True)
    merge(adapter, tmp / "merged")
    print("\n### push --dry-run of a merged yes/no model (`rerank-align merge`, qwen3 template)")
    push_mod.main([str(tmp / "merged"), "--repo-id", "me/tiny-merged", "--dry-run"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", type=int, choices=[1, 2, 3], action="append")
    parts = p.parse_args().part or [1, 2, 3]
    tmp = Path(tempfile.mkdtemp(prefix="parity_report_"))
    for n in parts:
        print(f"\n## Part {n}\n")
        {1: part1, 2: part2, 3: part3}[n](tmp / f"p{n}")


if __name__ == "__main__":
    main()
