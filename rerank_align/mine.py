"""``rerank-align mine``: hard negatives from a first-stage run (or BM25) → group records (JSONL).

Every group is checked with the same validation ``train`` applies before anything is written, so a mined file is
always trainable. Corpus documents with neither title nor text (real collections ship a few) cannot be training
documents: such negatives are left out and groups whose positive is empty are skipped; both counts are printed.
"""

from __future__ import annotations

import argparse

from rerank_align.data import groups_from_run, load_beir
from rerank_align.data.bm25 import first_stage
from rerank_align.errors import InputError
from rerank_align.io import check_output, write_jsonl


def _has_content(doc: dict) -> bool:
    return bool(str(doc.get("text") or "").strip() or str(doc.get("title") or "").strip() or doc.get("image"))


def trainable_groups(groups: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Drop empty documents (and groups left without a positive or a negative); validate the rest."""
    from rerank_align.data.records import validate_group

    kept: list[dict] = []
    counts = {
        "empty_negatives_dropped": 0,
        "groups_skipped_empty_positive": 0,
        "groups_skipped_no_negative": 0,
    }
    for g in groups:
        if not all(_has_content(d) for d in g["positives"]):
            counts["groups_skipped_empty_positive"] += 1
            continue
        negs = [d for d in g["negatives"] if _has_content(d)]
        counts["empty_negatives_dropped"] += len(g["negatives"]) - len(negs)
        if not negs:
            counts["groups_skipped_no_negative"] += 1
            continue
        if len(negs) != len(g["negatives"]):
            labels = g.get("labels")
            if labels is not None:  # positive first, then one per negative
                labels = labels[:1] + [y for d, y in zip(g["negatives"], labels[1:]) if _has_content(d)]
            g = dict(g, negatives=negs) | ({"labels": labels} if labels is not None else {})
        validate_group(g, f"mined group for query {g.get('qid')!r}", min_negatives=1)
        kept.append(g)
    return kept, counts


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rerank-align mine", description=__doc__)
    p.add_argument("beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    p.add_argument("--split", default="train")
    p.add_argument("--run", help="TREC run with candidates (default: BM25 over the corpus with bm25s)")
    p.add_argument("--out", required=True, help="output JSONL of group records")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--num-negatives", type=int, default=7)
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--sampling", choices=["random", "top"], default="random")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    check_output(
        args.out,
        overwrite=args.overwrite,
        kind="file",
        sources=[args.beir, *([args.run] if args.run else [])],
    )
    col = load_beir(args.beir, split=args.split)
    run = first_stage(col, args.run, depth=args.depth)
    groups = groups_from_run(
        col, run, num_negatives=args.num_negatives, depth=args.depth, sampling=args.sampling, seed=args.seed
    )
    groups, counts = trainable_groups(groups)
    if not groups:
        raise InputError(
            f"no group could be mined from {len(col.qrels)} judged queries",
            where=args.beir,
            hint="check that the run covers the judged queries of this split",
        )
    n = write_jsonl(args.out, groups)
    dropped = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items() if v)
    print(
        f"wrote {n} groups from {len(col.qrels)} judged queries to {args.out}"
        + (f" ({dropped})" if dropped else "")
    )
    return 0
