"""Teacher scores for distillation: read, normalise per query, average several teachers (ensemble distillation)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from rerank_align.data.beir import read_run
from rerank_align.data.jsonl import read_jsonl
from rerank_align.errors import InputError, where

TeacherScores = dict[str, dict[str, float]]  # qid → doc id → score


def read_teacher_file(path: str | os.PathLike) -> TeacherScores:
    """A JSONL of ``{"qid", "doc_id", "score"}`` lines, or a TREC run (``.run`` / ``.trec``)."""
    path = Path(path)
    if path.suffix in (".run", ".trec", ".txt"):
        return {q: dict(c) for q, c in read_run(path).items()}
    out: TeacherScores = {}
    for lineno, obj in read_jsonl(path):
        try:
            qid, did, score = str(obj["qid"]), str(obj["doc_id"]), obj["score"]
        except KeyError as e:
            raise InputError(
                f"missing key {e}", where=where(path, lineno), hint='lines are {"qid", "doc_id", "score"}'
            ) from None
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InputError(f"score {score!r} is not a finite number", where=where(path, lineno))
        out.setdefault(qid, {})[did] = float(score)
    return out


def normalize(scores: TeacherScores, method: str) -> TeacherScores:
    """Per-query ``zscore`` ((s − mean) / std) or ``minmax`` ((s − min) / (max − min)); ``none`` leaves them."""
    if method == "none":
        return scores
    out: TeacherScores = {}
    for qid, docs in scores.items():
        vals = list(docs.values())
        if method == "zscore":
            mu = sum(vals) / len(vals)
            sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals)) or 1.0
            out[qid] = {d: (v - mu) / sd for d, v in docs.items()}
        elif method == "minmax":
            lo, hi = min(vals), max(vals)
            span = (hi - lo) or 1.0
            out[qid] = {d: (v - lo) / span for d, v in docs.items()}
        else:
            raise ValueError(f"unknown normalisation {method!r}")
    return out


def ensemble(teachers: Sequence[TeacherScores], method: str = "zscore") -> TeacherScores:
    """Average of per-query-normalised teachers over the (query, doc) pairs every teacher scored."""
    if len(teachers) == 1:
        return teachers[0] if method == "none" else normalize(teachers[0], method)
    normed = [normalize(t, method) for t in teachers]
    out: TeacherScores = {}
    for qid in set.intersection(*(set(t) for t in normed)):
        docs = set.intersection(*(set(t[qid]) for t in normed))
        out[qid] = {d: sum(t[qid][d] for t in normed) / len(normed) for d in docs}
    return out


def attach(records: list[dict], teacher: TeacherScores, source: str) -> list[dict]:
    """Give each group record ``scores`` from ``teacher`` (needs ``qid`` and doc ids)."""
    out = []
    for i, rec in enumerate(records):
        qid = rec.get("qid")
        docs = rec["positives"] + rec["negatives"]
        ids = [d.get("id") for d in docs]
        if qid is None or any(x is None for x in ids):
            raise InputError(f"record {i} has no qid or doc ids to look teacher scores up", where=source)
        t = teacher.get(qid, {})
        missing = [x for x in ids if x not in t]
        if missing:
            raise InputError(
                f"teacher has no score for query {qid!r}, doc {missing[0]!r}",
                where=source,
                hint="label these docs first",
            )
        out.append({**rec, "scores": {x: t[x] for x in ids}})
    return out
