"""Readers and writers for BEIR folders (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) and TREC run files."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_align.data.hf import hub_miss_error, looks_like_hub_id, pick_split
from rerank_align.data.jsonl import iter_lines, read_jsonl
from rerank_align.errors import InputError, where
from rerank_align.io import atomic_write

log = logging.getLogger(__name__)

Run = dict[str, list[tuple[str, float]]]
"""query id → candidates ``(doc_id, score)`` in first-stage rank order (best first)."""
Qrels = dict[str, dict[str, int]]


def _str_id(value: object, path: Path, lineno: int, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise InputError(f"'{key}' must be a non-empty string or integer", where=where(path, lineno))
    return str(value)


def read_corpus(path: str | os.PathLike) -> dict[str, dict]:
    """``corpus.jsonl`` → ``{doc_id: {"id", "title", "text"}}``. Duplicate ids and non-string fields are errors.

    A document with neither title nor text is kept (real collections ship a few, e.g. Cranfield); it is scored
    like any other candidate.
    """
    path = Path(path)
    corpus: dict[str, dict] = {}
    for lineno, obj in read_jsonl(path):
        doc_id = _str_id(obj.get("_id", obj.get("id")), path, lineno, "_id")
        title, text = obj.get("title", "") or "", obj.get("text", "") or ""
        if not isinstance(title, str) or not isinstance(text, str):
            raise InputError("'title' and 'text' must be strings", where=where(path, lineno))
        if doc_id in corpus:
            raise InputError(
                f"duplicate document id {doc_id!r}", where=where(path, lineno), hint="ids must be unique"
            )
        corpus[doc_id] = {"id": doc_id, "title": title, "text": text}
    if not corpus:
        raise InputError("no documents (the file is empty)", where=str(path), hint="check the corpus file")
    return corpus


def read_queries(path: str | os.PathLike) -> dict[str, str]:
    """``queries.jsonl`` → ``{query_id: text}``. Empty query text is an error."""
    path = Path(path)
    queries: dict[str, str] = {}
    for lineno, obj in read_jsonl(path):
        qid = _str_id(obj.get("_id", obj.get("id")), path, lineno, "_id")
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InputError(
                f"query {qid!r} has no text",
                where=where(path, lineno),
                hint="'text' must be a non-empty string",
            )
        if qid in queries:
            raise InputError(f"duplicate query id {qid!r}", where=where(path, lineno))
        queries[qid] = text
    if not queries:
        raise InputError("no queries (the file is empty)", where=str(path), hint="check the queries file")
    return queries


def read_qrels(path: str | os.PathLike) -> Qrels:
    """BEIR qrels TSV (``query-id  corpus-id  score``, header optional) or TREC qrels (``qid 0 docid grade``).

    Grades are integers (``2`` or ``2.0``); a fractional grade (``0.5``) is an error rather than truncated. A file
    with no judgments (empty, or a header only) is an error: every metric would be 0 for want of data. The same
    (query, document) judged twice with different grades is an error; the same grade twice is kept once."""
    path = Path(path)
    qrels: Qrels = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if lineno == 1 and parts[0] in ("query-id", "query_id", "qid"):
            continue
        if len(parts) == 4:  # TREC qrels: qid iteration docid grade
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise InputError(
                f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(parts)}",
                where=where(path, lineno),
            )
        qid, did, grade = (p.strip() for p in parts)
        try:
            value = float(grade)
        except ValueError:
            raise InputError(
                f"relevance grade {grade!r} is not a number", where=where(path, lineno)
            ) from None
        if not math.isfinite(value) or value != int(value):
            raise InputError(
                f"relevance grade {grade!r} is not an integer",
                where=where(path, lineno),
                hint="qrels grades are integers (0 = not relevant); map fractional labels to grades first",
            )
        g = int(value)
        previous = qrels.get(qid, {}).get(did)
        if previous is not None and previous != g:
            raise InputError(
                f"document {did!r} is judged twice for query {qid!r} with different grades ({previous}, {g})",
                where=where(path, lineno),
                hint="keep one judgment per (query, document)",
            )
        qrels.setdefault(qid, {})[did] = g
    if not qrels:
        raise InputError(
            "no judgments (the file is empty or has only a header)",
            where=str(path),
            hint="metrics need qrels; check the split name and the file",
        )
    return qrels


def read_run(path: str | os.PathLike, *, depth: int | None = None) -> Run:
    """TREC run (``qid Q0 docid rank score tag``) → ``{qid: [(docid, score), ...]}`` best first.

    Order policy: candidates are sorted by score (descending); ties keep the order of the rank column, then the
    file order. This is the first-stage order every reranker tie falls back on. NaN/inf scores, wrong column
    counts and a document listed twice for a query are errors naming the line.
    """
    path = Path(path)
    rows: dict[str, list[tuple[float, int, int, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise InputError(
                f"expected 6 columns (qid Q0 docid rank score tag), got {len(parts)}",
                where=where(path, lineno),
            )
        qid, _, did, rank, score, _tag = parts
        try:
            s, r = float(score), int(rank)
        except ValueError:
            raise InputError(
                f"rank {rank!r} must be an integer and score {score!r} a number", where=where(path, lineno)
            ) from None
        if not math.isfinite(s):
            raise InputError(
                f"score {score!r} is not finite", where=where(path, lineno), hint="drop or fix the row"
            )
        if (qid, did) in seen:
            raise InputError(f"document {did!r} appears twice for query {qid!r}", where=where(path, lineno))
        seen.add((qid, did))
        rows.setdefault(qid, []).append((s, r, lineno, did))
    if not rows:
        raise InputError(
            "no candidates (the run file is empty)", where=str(path), hint="check the first-stage run file"
        )
    run: Run = {}
    for qid, cands in rows.items():
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        run[qid] = [(did, s) for s, _, _, did in cands[:depth]]
    return run


def write_run(run: Run, path: str | os.PathLike, tag: str = "rerank_align") -> None:
    """Write a TREC run atomically; ranks follow list order."""
    with atomic_write(path) as fh:
        for qid, cands in run.items():
            for rank, (did, score) in enumerate(cands, start=1):
                fh.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")


@dataclass
class Collection:
    """A BEIR folder loaded in memory."""

    path: Path
    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: Qrels = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def load_beir(path: str | os.PathLike, split: str = "test", *, qrels_required: bool = True) -> Collection:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` from a BEIR folder.

    Qrels naming a query id absent from queries.jsonl are an error; qrels naming documents absent from the corpus
    are kept (pooled TREC judgments legitimately judge passages outside the shipped corpus) and reported in one
    warning line: they still count in recall's denominator, and no reranker can retrieve them.
    """
    if looks_like_hub_id(path):  # e.g. BeIR/scifact (+ BeIR/scifact-qrels)
        return load_beir_hub(str(path), split, qrels_required=qrels_required)
    path = Path(path)
    if not path.is_dir():
        raise InputError("BEIR folder not found", where=str(path))
    corpus = read_corpus(path / "corpus.jsonl")
    queries = read_queries(path / "queries.jsonl")
    qrels_path = path / "qrels" / f"{split}.tsv"
    qrels: Qrels = {}
    if qrels_path.exists():
        qrels = read_qrels(qrels_path)
        missing = [q for q in qrels if q not in queries]
        if missing:
            raise InputError(
                f"{len(missing)} judged query ids are not in queries.jsonl (first: {missing[0]!r})",
                where=str(qrels_path),
            )
        unknown = sorted({d for judged in qrels.values() for d in judged if d not in corpus})
        if unknown:
            log.warning(
                "%s: %d judged documents are not in corpus.jsonl (first: %r); kept as pooled judgments "
                "(they count in recall but cannot be retrieved)",
                qrels_path,
                len(unknown),
                unknown[0],
            )
    elif qrels_required:
        raise InputError(f"no qrels for split {split!r}", where=str(qrels_path))
    return Collection(path=path, corpus=corpus, queries=queries, qrels=qrels)


def load_beir_hub(dataset: str, split: str = "test", *, qrels_required: bool = True) -> Any:
    """A BEIR collection from the hub in BeIR's layout: ``<id>`` with configs ``corpus`` and ``queries``, and the
    qrels in ``<id>-qrels`` (splits train / dev / test; columns ``query-id``, ``corpus-id``, ``score``)."""
    import datasets

    def load(name: str, config: str | None, want: str) -> Any:
        try:
            obj = datasets.load_dataset(name, config)
        except Exception as e:  # noqa: BLE001 - one line naming the dataset
            raise hub_miss_error(name, e, config=config) from None
        return pick_split(obj, name if config is None else f"{name} ({config})", want)

    corpus = {}
    for i, r in enumerate(load(dataset, "corpus", "corpus")):
        doc_id = str(r.get("_id", "")).strip()
        if not doc_id:
            raise InputError("corpus row has no '_id'", where=f"{dataset} [corpus] row {i}")
        corpus[doc_id] = {"id": doc_id, "title": r.get("title") or "", "text": r.get("text") or ""}
    queries = {str(r["_id"]): r.get("text") or "" for r in load(dataset, "queries", "queries")}
    qrels: dict[str, dict[str, int]] = {}
    try:
        rows = load(f"{dataset}-qrels", None, split)
    except InputError:
        if qrels_required:
            raise
        rows = []
    for i, r in enumerate(rows):
        qid, did, grade = str(r.get("query-id")), str(r.get("corpus-id")), r.get("score")
        if qid not in queries:
            raise InputError(
                f"judged query {qid!r} is not in the queries", where=f"{dataset}-qrels [{split}] row {i}"
            )
        qrels.setdefault(qid, {})[did] = int(grade)
    return Collection(path=Path(dataset), corpus=corpus, queries=queries, qrels=qrels)
