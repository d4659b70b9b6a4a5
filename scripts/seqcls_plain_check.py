"""Rerank a BEIR run with an exported ``seq-cls`` folder using plain transformers only, and score it with ir-measures.

An outside check of ``rerank-align export --to seq-cls``: nothing here imports rerank_align. The prompt is built the
way the model card describes it to users: the model's own chat template (``tokenizer.apply_chat_template``) over a
system turn (the yes/no judging instruction) and a user turn ``<Instruct>: ...\\n<Query>:\\n{query}\\n<Document>:\\n
{document}``, rendered to one string and tokenised whole. Fields longer than their token limits are cut on their own
first (tokenise, keep the first N tokens, decode), which can differ from rerank_align's in-prompt cut by a token at
the edge; the script counts those pairs. Batches are padded on the right with the model's pad token, as the card says.

With ``--results`` (a ``rerank-align eval`` results.json) and ``--system``, it prints the evaluator's per-query
nDCG@10 against the one computed here.

    python scripts/seqcls_plain_check.py outputs/smollm2_trec_dl/smollm2-dl20-seqcls \\
        --beir ../shared/data/trec-dl19-passage --run ../shared/data/trec-dl19-passage/bm25_top100.run --depth 20 \\
        --rel 2 --results outputs/smollm2_trec_dl/eval/results.json --system smollm2-dl20
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the "
    'answer can only be "yes" or "no".'
)
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def cut(tok, text: str, n: int) -> tuple[str, bool]:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return (text, False) if len(ids) <= n else (tok.decode(ids[:n]), True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--beir", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--rel", type=int, default=1, help="lowest grade counted relevant by binary measures")
    p.add_argument("--prompt", default="serving", choices=["serving", "chat"])
    p.add_argument("--chat-tokenizer", help="--prompt chat: the folder whose chat template renders the turns")
    p.add_argument("--instruction", default=INSTRUCTION)
    p.add_argument("--max-query-tokens", type=int, default=32)
    p.add_argument("--max-document-tokens", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights' dtype")
    p.add_argument("--results")
    p.add_argument("--system")
    p.add_argument("--out", help="write the scores as a TREC run")
    a = p.parse_args(argv)
    if a.prompt == "chat" and not a.chat_tokenizer:
        p.error("--prompt chat needs --chat-tokenizer (the folder whose chat template renders the turns)")
    if a.results and not a.system:
        p.error("--results needs --system (the system of results.json to compare with)")

    import ir_measures
    import torch
    from ir_measures import RR, nDCG
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    beir = Path(a.beir)
    qrels = defaultdict(dict)
    for line in (beir / "qrels" / f"{a.split}.tsv").read_text().splitlines()[1:]:
        qid, did, grade = line.split("\t")
        qrels[qid][did] = int(grade)
    run = defaultdict(list)
    for line in Path(a.run).read_text().splitlines():
        qid, _, did, rank, _, _ = line.split()
        if qid in qrels:
            run[qid].append((int(rank), did))
    top = {q: [d for _, d in sorted(v)[: a.depth]] for q, v in run.items()}
    need = {d for v in top.values() for d in v}
    queries = {r["_id"]: r["text"] for r in read_jsonl(beir / "queries.jsonl")}
    corpus = {}
    with open(beir / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if r["_id"] in need:
                title, text = (r.get("title") or "").strip(), r.get("text") or ""
                corpus[r["_id"]] = f"{title}\n{text}" if title and text else title or text

    tok = AutoTokenizer.from_pretrained(a.folder)
    chat_tok = AutoTokenizer.from_pretrained(a.chat_tokenizer) if a.prompt == "chat" else None
    model = AutoModelForSequenceClassification.from_pretrained(a.folder, dtype=getattr(torch, a.dtype)).eval()
    pad = model.config.pad_token_id
    pairs, prompts, n_cut = [], [], 0
    for q in sorted(top):
        qtext, qc = cut(tok, queries[q], a.max_query_tokens)
        for d in top[q]:
            dtext, dc = cut(tok, corpus[d], a.max_document_tokens)
            n_cut += qc or dc
            if a.prompt == "serving":
                msgs = [{"role": "query", "content": qtext}, {"role": "document", "content": dtext}]
                text = tok.apply_chat_template(msgs, tokenize=False)
            else:
                user = f"<Instruct>: {a.instruction}\n<Query>:\n{qtext}\n<Document>:\n{dtext}"
                msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
                text = chat_tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            pairs.append((q, d))
            prompts.append(tok(text, add_special_tokens=False)["input_ids"])
    t0, scores = time.perf_counter(), []
    with torch.no_grad():
        for i in range(0, len(prompts), a.batch_size):
            rows = prompts[i : i + a.batch_size]
            width = max(map(len, rows))
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
            scores += model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
    secs = time.perf_counter() - t0
    print(
        f"{len(pairs)} pairs of {len(top)} queries scored in {secs:.0f} s with plain transformers; "
        f"{n_cut} pairs had a field cut to its token limit"
    )

    scored = defaultdict(dict)
    for (q, d), s in zip(pairs, scores):
        scored[q][d] = s
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            for q in sorted(scored):
                ranked = sorted(scored[q].items(), key=lambda kv: -kv[1])
                for r, (d, s) in enumerate(ranked, 1):
                    fh.write(f"{q} Q0 {d} {r} {s:.6f} seqcls-plain\n")
    measures = [nDCG @ 10, RR(rel=a.rel) @ 10]
    per_query = defaultdict(dict)
    for m in ir_measures.iter_calc(measures, qrels, scored):
        per_query[m.query_id][str(m.measure)] = m.value
    for m in measures:
        vals = [per_query[q][str(m)] for q in sorted(scored)]
        print(f"{m}: {sum(vals) / len(vals):.4f} over {len(vals)} queries")
    if a.results:
        res = json.loads(Path(a.results).read_text())
        theirs = find_per_query(res, a.system)
        common = sorted(set(theirs) & set(per_query))
        diffs = [abs(theirs[q] - per_query[q]["nDCG@10"]) for q in common]
        mean_t = sum(theirs[q] for q in common) / len(common)
        print(
            f"evaluator ({a.system}) nDCG@10 {mean_t:.4f} on the same {len(common)} queries; per-query |Δ| max "
            f"{max(diffs):.4f}, {sum(d > 1e-9 for d in diffs)} queries differ"
        )
    return 0 if all(math.isfinite(s) for s in scores) else 1


def find_per_query(results: dict, system: str) -> dict[str, float]:
    """The per-query nDCG@10 of ``system`` in a one-collection results.json (``collections.<name>.per_query``)."""
    (col,) = results["collections"].values()
    return dict(col["per_query"][system]["nDCG@10"])


if __name__ == "__main__":
    raise SystemExit(main())
