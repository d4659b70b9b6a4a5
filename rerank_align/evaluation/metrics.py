"""Metrics through ir-measures (pytrec_eval), and the ranking policies every system shares.

Policies (docs/evaluation.md):

- **Ties.** A system's final order sorts the candidates by score, descending; equal scores keep the first-stage
  order (a stable sort over the first-stage list). pytrec_eval would break equal scores by document id instead,
  so the run handed to it carries strictly decreasing scores derived from the final order (``n - position``):
  what is evaluated is exactly the order the system produced.
- **Depth.** Only the top ``depth`` first-stage candidates are reranked; candidates below ``depth`` follow in
  first-stage order. Nothing that the first stage did not retrieve is ever added (no gold injection).
- **Self hits.** A candidate whose id equals the query id is dropped under the collection's ``drop_self_hits``
  policy (see :class:`~rerank_align.evaluation.config.CollectionSpec`); the count is reported.
- **Unjudged documents** count as non-relevant (pytrec_eval's convention); ``judged@10`` (fraction of the top 10
  that has a judgment, over min(10, candidates); 0 for a query without candidates) is reported next to every system so a high-scoring system that surfaces unjudged documents
  is visible rather than flattered or hidden.
- **Queries.** Every query with judgments is evaluated; a judged query without candidates scores 0 on every
  metric (ir-measures' convention, which matches the collections' published figures). Queries without judgments
  are not evaluated.
- **Binary relevance.** ``rel`` (per collection) is the minimum grade that counts as relevant for RR, R, AP and P
  (``RR(rel=2)@10`` for TREC DL); nDCG uses the graded judgments as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rerank_align.errors import RerankAlignError

_ALIASES = {
    "ndcg": "nDCG",
    "rr": "RR",
    "mrr": "RR",
    "r": "R",
    "recall": "R",
    "ap": "AP",
    "map": "AP",
    "p": "P",
    "precision": "P",
    "judged": "Judged",
}
_BINARY = {"RR", "R", "AP", "P"}
_SIMPLE = re.compile(r"^([A-Za-z]+)(?:@(\d+))?$")


class MetricError(RerankAlignError):
    pass


def canonical_name(name: str) -> str:
    """``MRR@10`` → ``RR@10``, ``Recall@100`` → ``R@100``, ``MAP`` → ``AP``; explicit forms are kept."""
    m = _SIMPLE.match(name.strip())
    if not m:
        return name.strip()
    base = _ALIASES.get(m.group(1).lower())
    if base is None:
        return name.strip()
    return f"{base}@{m.group(2)}" if m.group(2) else base


def parse_metric(name: str, *, rel: int = 1, where: str = "metrics") -> Any:
    """The ir-measures measure for ``name`` at relevance level ``rel`` (applied to binary measures only)."""
    import ir_measures

    m = _SIMPLE.match(name.strip())
    if m and m.group(1).lower() in _ALIASES:
        base = _ALIASES[m.group(1).lower()]
        measure = getattr(ir_measures.measures, base)
        if base in _BINARY and rel != 1:
            measure = measure(rel=rel)
        return measure @ int(m.group(2)) if m.group(2) else measure
    try:
        return ir_measures.parse_measure(name)
    except Exception:  # noqa: BLE001 - ir_measures raises several types
        valid = "nDCG@k, RR@k (MRR@k), R@k (Recall@k), AP (MAP), P@k, Judged@k, or an ir-measures name"
        raise MetricError(f"unknown metric {name!r}", where=where, hint=valid) from None


def final_order(
    candidates: Sequence[tuple[str, float]], scores: Sequence[float] | None, depth: int
) -> list[str]:
    """Doc ids in the system's final order: top ``depth`` by score (ties: first-stage order), then the rest."""
    head = list(candidates[:depth])
    tail = [d for d, _ in candidates[depth:]]
    if scores is None:
        return [d for d, _ in head] + tail
    if len(scores) != len(head):
        raise ValueError(f"{len(scores)} scores for {len(head)} candidates")
    order = sorted(
        range(len(head)), key=lambda i: -float(scores[i])
    )  # sorted() is stable: ties keep rank order
    return [head[i][0] for i in order] + tail


def as_strict_run(ranking: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """``{qid: [doc, ...]}`` → pytrec_eval run with strictly decreasing scores ``n - position``."""
    return {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in ranking.items()}


def evaluate(
    ranking: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
    metrics: Sequence[str],
    *,
    rel: int = 1,
    judged_at: int = 10,
) -> dict[str, dict[str, float]]:
    """Per-query values ``{metric_name: {qid: value}}`` for every judged query, plus ``judged@k``.

    Judged queries missing from ``ranking`` (no candidates) score 0 (ir-measures fills them in).
    """
    import ir_measures

    names = [canonical_name(m) for m in metrics]
    measures = [parse_metric(m, rel=rel) for m in metrics]
    by_measure = {str(meas): name for meas, name in zip(measures, names)}
    out: dict[str, dict[str, float]] = {name: {} for name in names}
    run = as_strict_run({q: docs for q, docs in ranking.items() if docs})
    if run:
        for pq in ir_measures.iter_calc(measures, qrels, run):
            out[by_measure[str(pq.measure)]][pq.query_id] = float(pq.value)
    for (
        name
    ) in names:  # queries with judgments but no candidates at all (ir-measures skips them on an empty run)
        for q in qrels:
            out[name].setdefault(q, 0.0)
    judged_key = f"judged@{judged_at}"
    out[judged_key] = {}
    for q in qrels:
        top = ranking.get(q, [])[:judged_at]
        out[judged_key][q] = sum(1 for d in top if d in qrels[q]) / len(top) if top else 0.0
    return out


def mean(values: dict[str, float]) -> float:
    return float(sum(values.values()) / len(values)) if values else 0.0
