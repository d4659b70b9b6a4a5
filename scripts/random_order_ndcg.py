"""Expected nDCG@10 of a uniformly random order of the first-stage top-``depth``, on the queries of an eval result:
the floor a reranker's figure is read against (a zero-shot LLM at this level carries no signal).

    python scripts/random_order_ndcg.py outputs/measure_zeroshot20/results.json [--depth 10] [--shuffles 1000]

1,000 seeded shuffles of each query's candidates; nDCG@10 by ir_measures against the collection's qrels.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import ir_measures
from ir_measures import nDCG

from rerank_align.data import load_beir, read_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results")
    p.add_argument("--collection", default=None, help="collection name in results.json (default: the first)")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--shuffles", type=int, default=1000)
    args = p.parse_args()
    res = json.load(open(args.results))
    name = args.collection or next(iter(res["collections"]))
    c = res["collections"][name]
    qids = list(next(iter(c["per_query"].values()))["nDCG@10"])
    col = load_beir(c["path"], split=c["split"])
    if Path(str(c["run"])).is_file():
        run = read_run(c["run"])
    else:  # the suite retrieved with bm25s itself (no run file): retrieve the same way
        from rerank_align.evaluation.runner import bm25_first_stage

        texts = {q: t if isinstance(t, str) else t.get("text", "") for q, t in col.queries.items()}
        run = bm25_first_stage(col.corpus, texts, qids, args.depth)
    qrels = [ir_measures.Qrel(q, d, int(g)) for q in qids for d, g in col.qrels[q].items()]
    rng = random.Random(0)
    means = []
    for _ in range(args.shuffles):
        scored = []
        for q in qids:
            docs = [d for d, _ in run.get(q, [])[: args.depth]]
            rng.shuffle(docs)
            scored += [ir_measures.ScoredDoc(q, d, float(len(docs) - i)) for i, d in enumerate(docs)]
        means.append(ir_measures.calc_aggregate([nDCG @ 10], qrels, scored)[nDCG @ 10])
    means.sort()
    lo, hi = means[int(0.025 * len(means))], means[int(0.975 * len(means)) - 1]
    print(
        f"{name}, {len(qids)} queries, random order of the top-{args.depth}: nDCG@10 mean "
        f"{sum(means) / len(means):.3f}, 95% of shuffles in [{lo:.3f}, {hi:.3f}]"
    )


if __name__ == "__main__":
    main()
