"""``rerank-align mine``: hard negatives from a first-stage run (or BM25) → group records (JSONL)."""

from __future__ import annotations

import argparse

from rerank_align.data import groups_from_run, load_beir
from rerank_align.data.bm25 import first_stage
from rerank_align.io import write_jsonl


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rerank-align mine", description=__doc__)
    p.add_argument("beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    p.add_argument("--split", default="train")
    p.add_argument("--run", help="TREC run with candidates (default: BM25 over the corpus with bm25s)")
    p.add_argument("--out", required=True, help="output JSONL of group records")
    p.add_argument("--num-negatives", type=int, default=7)
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--sampling", choices=["random", "top"], default="random")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    col = load_beir(args.beir, split=args.split)
    run = first_stage(col, args.run, depth=args.depth)
    groups = groups_from_run(
        col, run, num_negatives=args.num_negatives, depth=args.depth, sampling=args.sampling, seed=args.seed
    )
    n = write_jsonl(args.out, groups)
    print(f"wrote {n} groups from {len(col.qrels)} judged queries to {args.out}")
    return 0
