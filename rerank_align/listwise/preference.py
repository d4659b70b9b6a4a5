"""Preference data for listwise rerankers (docs/design.md §2 preference records ``{"query", "docs", "chosen", "rejected"}``).

Builders:

- :func:`preferences_from_samples`: chosen = the teacher's order (a list record's ``ranking``), rejected = of ``k``
  permutations sampled from the current listwise model, the one farthest from the teacher's order by nDCG
  (gains from the graded ``labels`` when the record has them, else from the teacher's positions).
- :func:`preferences_from_student_samples`: chosen = the teacher's order, rejected = the model's own sample as it
  is (even when it equals the chosen order): ADPA's released pipeline puts the student's generations in its
  "rejected" column and applies the teacher's advantage to them.
- :func:`preferences_from_qrels`: chosen = the graded-qrels order, rejected = the first-stage order (what the
  reranker is asked to improve), or the reversed ideal order when the first stage is already ideal.
- :func:`pointwise_preferences`: for one query, chosen / rejected are single passages (a relevant and a less
  relevant one); a listwise model is trained to put the chosen one first.

:func:`sample_permutations` draws permutations from a listwise model (temperature sampling of the answer, parsed and
repaired like inference output).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from rerank_align.data.jsonl import write_validated_jsonl
from rerank_align.data.records import validate_preference
from rerank_align.scoring.listwise_format import parse_permutation


def ndcg(perm: Sequence[int], gains: Sequence[float], k: int = 10) -> float:
    """nDCG@k of ranking ``perm`` (indices best first) with graded ``gains`` per index (gain ``2^g - 1``)."""

    def dcg(order: Sequence[int]) -> float:
        return sum((2.0 ** gains[i] - 1) / math.log2(r + 2) for r, i in enumerate(order[:k]))

    ideal = dcg(sorted(range(len(gains)), key=lambda i: -gains[i]))
    return dcg(perm) / ideal if ideal > 0 else 0.0


def gains_of(record: dict) -> list[float]:
    """Graded labels of a list record, or, without labels, gains from the target ranking (best = n, then n - 1...)."""
    if record.get("labels") is not None:
        return [float(x) for x in record["labels"]]
    n = len(record["docs"])
    g = [0.0] * n
    for pos, i in enumerate(record["ranking"]):
        g[i] = float(n - pos) / n * 3  # a smooth graded target: 3 for the best, → 0 for the last
    return g


def sample_permutations(
    ranker: Any,
    queries: Sequence[Any],
    doc_lists: Sequence[Sequence[Any]],
    *,
    k: int = 4,
    temperature: float = 1.0,
    batch_size: int = 8,
) -> list[list[list[int]]]:
    """``k`` sampled permutations per list from a :class:`~rerank_align.scoring.listwise.ListwiseRanker`'s model
    (one full-list prompt each, ``do_sample`` at ``temperature``; outputs parsed and repaired as at inference).
    Draws from torch's global generator (seed it for reproducible samples)."""
    import torch

    b = ranker.builder
    f = ranker.fmt
    eos = ranker.tokenizer.eos_token_id
    out: list[list[list[int]]] = []
    model = ranker.model
    for i in range(0, len(queries), batch_size):
        qs, ds = queries[i : i + batch_size], doc_lists[i : i + batch_size]
        seqs = [b.build(q, d).input_ids for q, d in zip(qs, ds)]
        batch = ranker._left_pad(seqs)
        max_new = max(b.answer_reserve(len(d)) for d in ds)
        with torch.no_grad():
            gen = model.generate(
                **batch,
                max_new_tokens=max_new,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                num_return_sequences=k,
                pad_token_id=ranker.pad_id,
                eos_token_id=eos,
            )
        new = gen[:, batch["input_ids"].shape[1] :].cpu().tolist()
        for j, d in enumerate(ds):
            perms = []
            for row in new[j * k : (j + 1) * k]:
                if eos is not None and eos in row:
                    row = row[: row.index(eos)]
                text = ranker.tokenizer.decode(row, skip_special_tokens=True)
                perms.append(parse_permutation(text, len(d), f.identifier, f.first_index).permutation)
            out.append(perms)
    return out


def preferences_from_samples(
    records: Sequence[dict], samples: Sequence[Sequence[list[int]]], *, k: int = 10
) -> list[dict]:
    """chosen = each record's ``ranking`` (the teacher's order); rejected = its sample with the lowest nDCG@k
    against the record's gains (:func:`gains_of`). Samples equal to the chosen order are ignored; a record whose
    samples all equal it gets the first-stage order (or its reverse) as rejected."""
    out = []
    for rec, perms in zip(records, samples):
        chosen = list(rec["ranking"])
        gains = gains_of(rec)
        cands = [p for p in perms if list(p) != chosen]
        if cands:
            rejected = min(cands, key=lambda p: ndcg(p, gains, k))
        else:
            rejected = _fallback_rejected(chosen)
        out.append(_pref(rec, chosen, list(rejected)))
    return out


def preferences_from_student_samples(
    records: Sequence[dict], samples: Sequence[Sequence[list[int]]]
) -> list[dict]:
    """chosen = each record's ``ranking``; rejected = its first sample, unchanged. The "rejected" answer here is not
    a worse answer but the student's own generation, on which ADPA applies the teacher's advantage (the released
    code's ``rejected`` column holds the SFT / DCKD student's samples); it may equal the chosen order."""
    out = []
    for rec, perms in zip(records, samples):
        if not perms:
            raise ValueError("preferences_from_student_samples: a record has no sample")
        out.append(_pref(rec, list(rec["ranking"]), list(perms[0])))
    return out


def _fallback_rejected(chosen: list[int]) -> list[int]:
    first_stage = list(range(len(chosen)))
    return first_stage if first_stage != chosen else chosen[::-1]


def _pref(rec: dict, chosen: Any, rejected: Any) -> dict:
    p = {"query": rec["query"], "docs": rec["docs"], "chosen": chosen, "rejected": rejected}
    if "qid" in rec:
        p["qid"] = rec["qid"]
    return p


def preferences_from_qrels(records: Sequence[dict]) -> list[dict]:
    """chosen = the graded order (the list record's ``ranking``, built from qrels by
    :func:`~rerank_align.data.lists.lists_from_qrels`); rejected = the first-stage order (docs as given), or
    the reversed graded order when the first stage is already ideal."""
    return [_pref(r, list(r["ranking"]), _fallback_rejected(list(r["ranking"]))) for r in records]


def pointwise_preferences(records: Sequence[dict], *, pairs_per_query: int = 1, seed: int = 0) -> list[dict]:
    """Pointwise preference records ``{"query", "docs", "chosen": i, "rejected": j}``: for one query, a passage of
    higher grade (chosen) against one of lower grade (rejected), ``pairs_per_query`` pairs drawn at random."""
    rng = random.Random(seed)
    out = []
    for rec in records:
        gains = gains_of(rec)
        pairs = [(i, j) for i in range(len(gains)) for j in range(len(gains)) if gains[i] > gains[j]]
        for i, j in rng.sample(pairs, min(pairs_per_query, len(pairs))):
            out.append(_pref(rec, i, j))
    return out


def write_preference_records(records: Sequence[dict], path: str) -> None:
    """Validate every record (docs/design.md §2 preference format), then write the JSONL atomically."""
    write_validated_jsonl(records, path, validate_preference)
