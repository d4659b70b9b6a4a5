"""Which score fusion with BM25, chosen on held-out SciFact *train* queries (never test).

    .venv/bin/python scripts/fusion_dev.py D2_q480_d10_s120_doc128 [RUN ...]   # after scripts/quickstart_dev.py RUN

Reads a dev evaluation written by scripts/quickstart_dev.py (its suite under ``outputs/quickstart_dev/eval/RUN.yaml``
and ``RUN/results.json``): the trained cross-encoder's raw scores of the dev queries' BM25 top-``depth`` from the
suite's score cache, the BM25 scores from its run file. It fuses them per query in three ways, each at weights
0.3–0.7 on the cross-encoder, and prints nDCG@10 (ir-measures) with the paired t-test against BM25:

- ``z``: w · z(ce) + (1 − w) · z(bm25), z-scores over the query's candidates (the evaluator's ``fuse_first_stage``,
  called here);
- ``mm``: the same with min-max scaling;
- ``rrf``: w / (60 + rank_ce) + (1 − w) / (60 + rank_bm25), reciprocal rank fusion (Cormack et al. 2009) weighted.

Min-max and RRF are written here, not taken from a library, because each is two lines and the point is to compare
them with the evaluator's own z-score rule on the same cached scores.
Results: docs/quickstart.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ir_measures
import numpy as np
import yaml
from scipy.stats import ttest_rel

from rerank_align.data.beir import load_beir
from rerank_align.evaluation.cache import ScoreCache, doc_key, query_key
from rerank_align.evaluation.runner import fuse

REPO = Path(__file__).resolve().parents[1]
DEV = REPO / "outputs" / "quickstart_dev"
WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)


def _mm(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def _rrf(x: np.ndarray) -> np.ndarray:
    rank = np.empty(len(x))
    rank[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
    return 1.0 / (60.0 + rank)


def main() -> int:
    names = sys.argv[1:]
    if not names:
        print(__doc__)
        return 2
    for name in names:
        suite = yaml.safe_load((DEV / "eval" / f"{name}.yaml").read_text())
        col = suite["collections"][0]
        res = json.loads((DEV / "eval" / name / "results.json").read_text())
        fingerprint = res["systems"]["ce"]["fingerprint"]
        beir = load_beir(col["path"], split="test")
        queries, corpus, qrels = beir.queries, beir.corpus, beir.qrels
        bm25: dict[str, list[tuple[int, str, float]]] = {}
        for line in open(col["run"]):
            q, _, d, rank, score, _ = line.split()
            if q in qrels and q in queries:
                bm25.setdefault(q, []).append((int(rank), d, float(score)))
        cand = {q: sorted(v)[: suite["depth"]] for q, v in bm25.items()}
        cache = ScoreCache(Path(suite["cache"]))
        ce: dict[str, np.ndarray] = {}
        for q, v in cand.items():
            keys = [(query_key(q, queries[q]), doc_key(d, corpus[d])) for _, d, _ in v]
            found = cache.get_many(fingerprint, keys)
            if len(found) != len(keys):
                raise SystemExit(
                    f"{name}: {len(keys) - len(found)} cross-encoder scores of query {q} not cached"
                )
            ce[q] = np.array([found[k] for k in keys])
        cache.close()

        def ndcg(scores: dict[str, np.ndarray], cand=cand, qrels=qrels) -> dict[str, float]:
            run = {q: {d: float(s) for (_, d, _), s in zip(cand[q], scores[q])} for q in cand}
            return {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.nDCG @ 10], qrels, run)}

        base = ndcg({q: np.array([s for _, _, s in v]) for q, v in cand.items()})
        qs = sorted(base)
        y = np.array([base[q] for q in qs])
        print(f"{name}: {len(qs)} dev queries, BM25 nDCG@10 {y.mean():.4f}")
        rows = {"ce alone": ndcg(ce)}
        bm = {q: np.array([s for _, _, s in v]) for q, v in cand.items()}
        for w in WEIGHTS:
            # z-scores: the evaluator's own rule (runner.fuse), so its rows must equal the suite's fused figures
            rows[f"z w={w}"] = ndcg({q: np.array(fuse(list(ce[q]), list(bm[q]), w)) for q in cand})
            for label, f in (("mm", _mm), ("rrf", _rrf)):
                rows[f"{label} w={w}"] = ndcg({q: w * f(ce[q]) + (1 - w) * f(bm[q]) for q in cand})
        for label, per in rows.items():
            x = np.array([per[q] for q in qs])
            print(
                f"  {label:10s} {x.mean():.4f}  vs BM25 {x.mean() - y.mean():+.4f} (p {ttest_rel(x, y).pvalue:.3f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
