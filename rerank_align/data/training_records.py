"""The training records of a recipe's ``data`` section, for every record kind, in one place.

``group`` records (score and SFT yes/no methods), ``list`` records (listwise methods, and the preference methods
that build their pairs from lists) and ``preference`` records (``data.train_file`` only) come from a file or a
dataset (``data.train_file``) or are built from a BEIR folder and a first-stage run (``data.beir`` + ``data.run``).
Teacher files are ensembled once; ``data.max_train_samples`` draws a seeded sample; an empty result is an error.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from rerank_align.data.beir import load_beir, read_run
from rerank_align.data.bm25 import first_stage
from rerank_align.data.builders import groups_from_run
from rerank_align.data.formats import read_records
from rerank_align.data.lists import lists_from_qrels, shuffle_candidates
from rerank_align.data.teachers import attach, ensemble, read_teacher_file
from rerank_align.errors import InputError, RerankAlignError

Kind = Literal["group", "list", "preference"]

# what an empty result says, per kind: (error type, what, where, hint)
_EMPTY: dict[str, tuple[type[RerankAlignError], str, str, str | None]] = {
    "group": (RerankAlignError, "no training records", "data", "check the qrels split and the run"),
    "list": (InputError, "no list records", "data", "check the qrels split, the run and data.depth"),
    "preference": (RerankAlignError, "no preference records", "data.train_file", None),
}


def teacher_scores(data: Any) -> dict[str, dict[str, float]] | None:
    """The ensemble of ``data.teacher_files`` (normalised by ``data.teacher_normalization``), or None."""
    if not data.teacher_files:
        return None
    return ensemble([read_teacher_file(p) for p in data.teacher_files], data.teacher_normalization)


def check_negatives(records: list[dict], source: str, needed: int) -> None:
    """Every group has at least ``needed`` negatives (a contrastive group without one has a loss of 0, silently)."""
    for i, rec in enumerate(records, start=1):
        if len(rec["negatives"]) < needed:
            raise InputError(
                f"group has {len(rec['negatives'])} negatives; this method needs at least {needed}",
                where=f"{source}: record {i}",
                hint="add negatives (rerank-align mine) or drop the record",
            )


def training_records(data: Any, kind: Kind, *, seed: int, min_negatives: int = 0) -> list[dict]:
    """The records of kind ``kind`` for a recipe's ``data`` section (a ``DataConfig``), sampled and checked.

    Groups read from a file get the teacher scores attached (and at least ``min_negatives`` negatives each);
    groups built from a run take the teacher into negative sampling; lists built from qrels break grade ties by it.
    Lists and preferences read from a file are used as given."""
    d = data
    if kind == "group":
        teacher = teacher_scores(d)  # read first: a broken teacher file is reported before the records
        if d.train_file:
            records = read_records(d.train_file, "group", d.format, split=d.split, config=d.dataset_config)
            check_negatives(records, d.train_file, min_negatives)
            if teacher is not None:
                records = attach(records, teacher, source=", ".join(d.teacher_files))
        else:
            col = load_beir(d.beir, split=d.split)
            records = groups_from_run(
                col,
                first_stage(col, d.run, depth=d.depth),
                num_negatives=d.num_negatives,
                depth=d.depth,
                sampling=d.sampling,
                teacher_scores=teacher,
                teacher_margin=d.teacher_margin,
                teacher_ratio=d.teacher_ratio,
                grade_negatives=d.grade_negatives,
                graded_labels=d.graded_labels,
                seed=seed,
            )
    elif kind == "preference" or d.train_file:
        records = read_records(d.train_file, kind, d.format, split=d.split, config=d.dataset_config)
    else:
        teacher = teacher_scores(d)
        col = load_beir(d.beir, split=d.split)
        records = lists_from_qrels(
            col,
            read_run(d.run),
            depth=d.depth,
            teacher_scores=teacher,
            list_size=d.list_size,
            lists_per_query=d.lists_per_query,
            seed=seed,
        )
    if d.max_train_samples is not None and len(records) > d.max_train_samples:
        records = random.Random(seed).sample(records, d.max_train_samples)
    if d.shuffle_candidates and kind == "list":
        records = shuffle_candidates(records, seed)
    if not records:
        error, what, where, hint = _EMPTY[kind]
        raise error(what, where=where, hint=hint)
    return records
