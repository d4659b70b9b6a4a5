"""Complete listwise labels (fullrank, arXiv 2412.14574): a full target ranking of all N candidates → list records.

Sources:

- graded qrels (:func:`lists_from_qrels`): candidates sorted by grade (unjudged = 0); ties broken by a teacher's
  scores when given, else by first-stage order;
- a pointwise teacher (:func:`pointwise_teacher_ranking`): a ``Reranker`` scores every candidate, sort (ties by
  first-stage order);
- a listwise teacher (:func:`listwise_teacher_ranking`): fullrank's multi-pass sliding windows. One back-to-front
  pass of windows (w, stride s) bubbles the best ``w − s`` candidates of the remaining list to its head, in order;
  those positions are fixed and the next pass runs on the rest, until every position is fixed. A single sliding
  pass, as used to label RankGPT / RankZephyr data, orders only the head; this orders all N.

Records are ``{"qid", "query", "docs", "ranking", "labels"?}`` with ``docs`` in first-stage order and ``ranking``
the 0-based indices best first (docs/design.md §2).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from rerank_align.data.beir import Collection, Qrels, Run
from rerank_align.data.jsonl import write_validated_jsonl
from rerank_align.data.records import validate_list
from rerank_align.errors import RerankAlignError


def _candidates(collection: Collection, run: Run, qid: str, depth: int) -> list[str]:
    return [d for d, _ in run.get(qid, []) if d in collection.corpus][:depth]


def lists_from_qrels(
    collection: Collection,
    run: Run,
    *,
    qrels: Qrels | None = None,
    depth: int = 20,
    teacher_scores: dict[str, dict[str, float]] | None = None,
    require_positive: bool = True,
    list_size: int | None = None,
    lists_per_query: int = 1,
    seed: int = 0,
) -> list[dict]:
    """List records per judged query from the top ``depth`` candidates of ``run``, each ranked by grade.

    By default one list per query holds the whole top ``depth``. With ``list_size`` below ``depth``, each query gives
    up to ``lists_per_query`` distinct lists of ``list_size`` candidates drawn uniformly (seeded) from its top
    ``depth``, kept in first-stage order; with ``require_positive`` every drawn list holds a judged-relevant
    candidate. Few judged queries (TREC DL: 54 a year) then still give enough lists. RankGPT / RankZephyr training
    slides windows over one teacher ranking instead; drawn subsets need no teacher where the qrels are graded, and
    each mixes candidates from the head and the depth of the run.

    Ties (equal grades, including the many unjudged candidates) are broken by ``teacher_scores``
    ``{qid: {doc_id: score}}`` when given (a missing score ranks last among its ties), else by first-stage order.
    Queries with fewer than 2 candidates (or, with ``require_positive``, no judged-relevant candidate) are skipped.
    """
    if list_size is not None and list_size < 2:
        raise RerankAlignError(f"list_size must be at least 2, got {list_size}")
    if lists_per_query > 1 and (list_size is None or list_size >= depth):
        raise RerankAlignError(
            "lists_per_query > 1 needs list_size below depth: the whole top-depth list can be drawn only once"
        )
    rng = random.Random(seed)
    qrels = collection.qrels if qrels is None else qrels
    out = []
    for qid in sorted(qrels):
        if qid not in collection.queries:
            continue
        cands = _candidates(collection, run, qid, depth)
        judged = qrels[qid]
        grades = [float(judged.get(d, 0)) for d in cands]
        if len(cands) < 2 or (require_positive and max(grades) <= 0):
            continue
        t = (teacher_scores or {}).get(qid, {})
        for pick in _draws(grades, list_size, lists_per_query, require_positive, rng):
            ranking = sorted(
                range(len(pick)),
                key=lambda j: (-grades[pick[j]], -t.get(cands[pick[j]], float("-inf")) if t else 0.0, j),
            )
            out.append(
                {
                    "qid": qid,
                    "query": collection.queries[qid],
                    "docs": [collection.corpus[cands[i]] for i in pick],
                    "ranking": ranking,
                    "labels": [grades[i] for i in pick],
                }
            )
    return out


def _draws(
    grades: list[float], size: int | None, k: int, require_positive: bool, rng: random.Random
) -> list[list[int]]:
    """Up to ``k`` distinct sorted index subsets of ``size`` (all indices when ``size`` is None or not smaller)."""
    n = len(grades)
    if size is None or size >= n:
        return [list(range(n))]
    seen: set[tuple[int, ...]] = set()
    out: list[list[int]] = []
    # rejection sampling: a list without a relevant candidate teaches nothing about relevance; a query with one
    # relevant candidate in a deep top-depth rejects most draws, so tries are bounded, not the number of lists
    for _ in range(50 * k):
        if len(out) == k:
            break
        pick = tuple(sorted(rng.sample(range(n), size)))
        if pick in seen or (require_positive and max(grades[i] for i in pick) <= 0):
            continue
        seen.add(pick)
        out.append(list(pick))
    return out


def shuffle_candidates(records: list[dict], seed: int) -> list[dict]:
    """Each list's candidates in a seeded random order; ``ranking`` and ``labels`` follow their candidates.

    Lists built from a first-stage run come in its order, and their target ranking mostly agrees with it (on SciFact
    train the judged abstract is BM25's first candidate in 3 lists of 4), so a model trained on them learns to keep
    the input order. RankZephyr (Pradeep et al. 2023, arXiv 2312.02724) shuffles the input candidates for this reason.
    """
    rng = random.Random(seed)
    out = []
    for rec in records:
        order = list(range(len(rec["docs"])))
        rng.shuffle(order)  # new position k holds the candidate at old position order[k]
        new_pos = {old: new for new, old in enumerate(order)}
        shuffled = {
            **rec,
            "docs": [rec["docs"][i] for i in order],
            "ranking": [new_pos[i] for i in rec["ranking"]],
        }
        if "labels" in rec:
            shuffled["labels"] = [rec["labels"][i] for i in order]
        out.append(shuffled)
    return out


def pointwise_teacher_ranking(teacher: Any, query: Any, docs: Sequence[Any]) -> list[int]:
    """Score every candidate with a pointwise ``Reranker`` (``score_pairs``) and sort; ties keep input order."""
    scores = [float(s) for s in teacher.score_pairs([query] * len(docs), list(docs))]
    return sorted(range(len(docs)), key=lambda i: (-scores[i], i))


def listwise_teacher_ranking(
    teacher: Any,
    query: Any,
    docs: Sequence[Any],
    *,
    window: int = 20,
    stride: int = 10,
    fix: int | None = None,
    decoding: str | None = None,
) -> list[int]:
    """fullrank's complete label from a listwise teacher (``Reranker`` of kind listwise, or a ``ListwiseRanker``):
    repeated back-to-front sliding passes, each fixing the next ``fix`` (default ``window − stride``) positions."""
    if not 1 <= stride < window:
        raise RerankAlignError("a multi-pass listwise teacher needs 1 <= stride < window")
    fix = fix or (window - stride)
    ranker = getattr(teacher, "listwise", None) or teacher
    order = list(range(len(docs)))
    head = 0
    while len(order) - head > 1:
        rest = order[head:]
        res = ranker.rank_lists(
            [query],
            [[docs[i] for i in rest]],
            strategy="sliding",
            window=window,
            stride=stride,
            decoding=decoding,
        )[0]
        order[head:] = [rest[j] for j in res.order]
        if len(rest) <= window:  # one window ranked the whole remainder
            break
        head += fix
    return order


def lists_from_teacher(
    collection: Collection,
    run: Run,
    teacher: Any,
    *,
    qids: Sequence[str] | None = None,
    depth: int = 20,
    window: int = 20,
    stride: int = 10,
    fix: int | None = None,
) -> list[dict]:
    """List records ranked by a teacher ``Reranker``: pointwise kinds score all and sort, a listwise teacher runs
    the multi-pass sliding windows. Grades from the collection's qrels are attached as ``labels`` when present."""
    listwise = getattr(getattr(teacher, "contract", None), "kind", None) == "listwise" or hasattr(
        teacher, "rank_windows"
    )
    qids = sorted(run) if qids is None else list(qids)
    out = []
    for qid in qids:
        if qid not in collection.queries:
            continue
        cands = _candidates(collection, run, qid, depth)
        if len(cands) < 2:
            continue
        docs = [collection.corpus[d] for d in cands]
        q = collection.queries[qid]
        if listwise:
            ranking = listwise_teacher_ranking(teacher, q, docs, window=window, stride=stride, fix=fix)
        else:
            ranking = pointwise_teacher_ranking(teacher, q, docs)
        rec = {"qid": qid, "query": q, "docs": docs, "ranking": ranking}
        judged = collection.qrels.get(qid)
        if judged is not None:
            rec["labels"] = [float(judged.get(d, 0)) for d in cands]
        out.append(rec)
    return out


def write_list_records(records: list[dict], path: str) -> None:
    """Validate every record, then write the JSONL atomically (nothing is half-written)."""
    write_validated_jsonl(records, path, validate_list)
