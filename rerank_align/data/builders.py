"""Builders: a BEIR collection plus a first-stage run → training records."""

from __future__ import annotations

import random

from rerank_align.data.beir import Collection, Qrels, Run
from rerank_align.errors import InputError


def groups_from_run(
    collection: Collection,
    run: Run,
    *,
    qrels: Qrels | None = None,
    num_negatives: int = 7,
    depth: int = 100,
    min_positive_grade: int = 1,
    sampling: str = "random",
    teacher_scores: dict[str, dict[str, float]] | None = None,
    teacher_margin: float | None = None,
    teacher_ratio: float | None = None,
    one_group_per_positive: bool = True,
    grade_negatives: bool = False,
    graded_labels: bool = False,
    seed: int = 0,
) -> list[dict]:
    """Group records with hard negatives mined from ``run``.

    - Positives: documents judged ``>= min_positive_grade`` in ``qrels`` (default: the collection's qrels).
    - Negatives: candidates in the top ``depth`` of the run, never a document judged relevant (grade > 0), sampled
      at random (``sampling="random"``, seeded) or taken best-first (``"top"``).
    - False-negative guard (when ``teacher_scores`` ``{qid: {doc_id: score}}`` are given): a candidate is skipped
      when its teacher score exceeds the positive's minus ``teacher_margin`` (``t_neg > t_pos - margin``) or
      ``teacher_ratio`` times the positive's (``t_neg > ratio * t_pos``, NV-Retriever's TopK-PercPos), since a
      candidate the teacher rates as high as the positive is likely an unjudged relevant document.
      The teacher scores are written into each group's ``scores`` for distillation.
    - Graded qrels (``grade_negatives``): a judged candidate graded *below* the group's positive may also be one of
      its negatives (a grade-2 positive is contrasted with grade-1 documents too). Without it, a loss that only
      sees "positive vs grade 0" can never learn that grade 2 ranks above grade 1, which graded nDCG rewards.
    - ``graded_labels``: the record carries ``labels`` = the candidates' grades (positive first), for losses that
      read graded labels (BCE with ``max_label``, RankNet, ListNet, LambdaLoss); otherwise the collator labels the
      positive 1 and every negative 0 (what InfoNCE-style losses, which treat any ``label > 0`` as a positive, need).
    - Queries without a positive in the corpus, or with fewer than one usable negative, are skipped.
    """
    if sampling not in ("random", "top"):
        raise InputError(f"sampling must be 'random' or 'top', got {sampling!r}")
    if num_negatives < 1:
        raise InputError("num_negatives must be >= 1")
    qrels = collection.qrels if qrels is None else qrels
    rng = random.Random(seed)
    corpus = collection.corpus
    groups: list[dict] = []
    for qid in sorted(qrels):
        if qid not in collection.queries or qid not in run:
            continue
        judged = qrels[qid]
        positives = [d for d, g in judged.items() if g >= min_positive_grade and d in corpus]
        if not positives:
            continue
        ranked = [d for d, _ in run[qid][:depth] if d in corpus]
        t = teacher_scores.get(qid) if teacher_scores is not None else None
        for pos in positives if one_group_per_positive else positives[:1]:
            below = judged[pos] if grade_negatives else 1
            pool = [d for d in ranked if judged.get(d, 0) < below and d != pos]
            if t is not None:
                if pos not in t:
                    raise InputError(f"teacher scores lack the positive {pos!r} of query {qid!r}")
                limit = float("inf")
                if teacher_margin is not None:
                    limit = min(limit, t[pos] - teacher_margin)
                if teacher_ratio is not None:
                    limit = min(limit, teacher_ratio * t[pos])
                pool = [d for d in pool if d in t and t[d] <= limit]
            if not pool:
                continue
            if sampling == "top":
                negs = pool[:num_negatives]
            else:
                negs = rng.sample(pool, min(num_negatives, len(pool)))
            rec: dict = {
                "qid": qid,
                "query": collection.queries[qid],
                "positives": [corpus[pos]],
                "negatives": [corpus[d] for d in negs],
            }
            if graded_labels:
                rec["labels"] = [float(judged[pos])] + [float(max(judged.get(d, 0), 0)) for d in negs]
            if t is not None:
                rec["scores"] = {d: float(t[d]) for d in [pos, *negs]}
            groups.append(rec)
    return groups
