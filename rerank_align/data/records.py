"""JSONL record formats (docs/design.md §2) and their validation.

- group:      ``{"query", "positives": [doc], "negatives": [doc], "scores"?: {doc_id: teacher score}, "labels"?}``
- list:       ``{"query", "docs": [doc], "ranking": [indices, best first], "labels"?: [grade per doc]}``
- preference: ``{"query", "docs": [doc], "chosen": [perm], "rejected": [perm]}``

A doc is ``{"id"?, "title"?, "text"?, "image"?}`` or a plain string (its text). Validated records come back
normalised: every doc a dict with ``text`` (and ``title`` / ``id`` / ``image`` when given).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rerank_align.data.jsonl import read_jsonl
from rerank_align.errors import InputError

DOC_KEYS = ("id", "title", "text", "image")


def _fail(what: str, loc: str | None, hint: str | None = None) -> None:
    raise InputError(what, where=loc, hint=hint)


def normalize_doc(doc: Any, loc: str | None, field: str) -> dict:
    if isinstance(doc, str):
        doc = {"text": doc}
    if not isinstance(doc, dict):
        _fail(
            f"{field} must be a string or an object with 'text'/'title'/'image', got {type(doc).__name__}",
            loc,
        )
    unknown = set(doc) - set(DOC_KEYS) - {"_id"}
    if unknown:
        _fail(f"{field} has unknown keys {sorted(unknown)}", loc, f"allowed: {', '.join(DOC_KEYS)}")
    out: dict[str, Any] = {}
    if "_id" in doc or "id" in doc:
        out["id"] = str(doc.get("id", doc.get("_id")))
    for key in ("title", "text"):
        if key in doc and doc[key] is not None:
            if not isinstance(doc[key], str):
                _fail(f"{field}.{key} must be a string", loc)
            out[key] = doc[key]
    if doc.get("image") is not None:
        if not isinstance(doc["image"], str):
            _fail(f"{field}.image must be a path or URL string", loc)
        out["image"] = doc["image"]
    if not (out.get("text", "").strip() or out.get("title", "").strip() or out.get("image")):
        _fail(f"{field} is empty (no text, title or image)", loc, "drop the document or give it content")
    out.setdefault("text", "")
    return out


def _query(rec: dict, loc: str | None) -> str | dict:
    q = rec.get("query")
    if isinstance(q, dict):  # multimodal query: {"text"?, "image"?}
        return normalize_doc(q, loc, "query")
    if not isinstance(q, str) or not q.strip():
        _fail("'query' must be a non-empty string", loc)
    return q


def _check_keys(rec: dict, allowed: set[str], loc: str | None, kind: str) -> None:
    unknown = set(rec) - allowed
    if unknown:
        _fail(
            f"unknown keys {sorted(unknown)} in a {kind} record",
            loc,
            f"allowed: {', '.join(sorted(allowed))}",
        )


def _docs(rec: dict, key: str, loc: str | None, *, min_len: int) -> list[dict]:
    docs = rec.get(key)
    if not isinstance(docs, list):
        _fail(f"'{key}' must be a list", loc)
    if len(docs) < min_len:
        _fail(f"'{key}' needs at least {min_len} entries, got {len(docs)}", loc)
    return [normalize_doc(d, loc, f"{key}[{i}]") for i, d in enumerate(docs)]


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _identity(doc: dict) -> tuple:
    """A document's identity inside one record: its id when it has one, else its whole content."""
    if "id" in doc:
        return ("id", doc["id"])
    return ("content", doc.get("title", ""), doc.get("text", ""), doc.get("image"))


def _no_duplicates(docs: list[tuple[str, dict]], loc: str | None) -> None:
    seen: dict[tuple, str] = {}
    for name, doc in docs:
        key = _identity(doc)
        if key in seen:
            what = f"id {key[1]!r}" if key[0] == "id" else "the same content"
            _fail(
                f"{name} repeats {seen[key]} ({what})",
                loc,
                "a group lists each document once; a document cannot be both positive and negative",
            )
        seen[key] = name


def validate_group(rec: dict, loc: str | None = None, *, min_negatives: int = 0) -> dict:
    """A group record, normalised. Degenerate groups are errors: no positive, a document listed twice (or as
    both positive and negative), fewer than ``min_negatives`` negatives (a contrastive group of one scores
    nothing)."""
    _check_keys(rec, {"query", "positives", "negatives", "scores", "labels", "qid"}, loc, "group")
    out = {"query": _query(rec, loc), "positives": _docs(rec, "positives", loc, min_len=1)}
    out["negatives"] = _docs(rec, "negatives", loc, min_len=0) if "negatives" in rec else []
    if len(out["negatives"]) < min_negatives:
        _fail(
            f"group has {len(out['negatives'])} negatives; this method needs at least {min_negatives}",
            loc,
            "add negatives (rerank-align mine) or drop the record",
        )
    _no_duplicates(
        [(f"positives[{i}]", d) for i, d in enumerate(out["positives"])]
        + [(f"negatives[{i}]", d) for i, d in enumerate(out["negatives"])],
        loc,
    )
    if "qid" in rec:
        out["qid"] = str(rec["qid"])
    if "scores" in rec:
        scores = rec["scores"]
        if not isinstance(scores, dict) or not all(_number(v) for v in scores.values()):
            _fail("'scores' must map doc id → finite number", loc)
        ids = [d.get("id") for d in out["positives"] + out["negatives"]]
        missing = [i for i in ids if i is None or i not in scores]
        if missing:
            _fail(
                f"'scores' lacks teacher scores for {len(missing)} docs (first: {missing[0]!r})",
                loc,
                "every positive and negative needs an id present in 'scores'",
            )
        out["scores"] = {str(k): float(v) for k, v in scores.items()}
    if "labels" in rec:
        labels = rec["labels"]
        n = len(out["positives"]) + len(out["negatives"])
        if not isinstance(labels, list) or len(labels) != n or not all(_number(v) for v in labels):
            _fail(f"'labels' must be {n} finite numbers (positives then negatives)", loc)
        out["labels"] = [float(v) for v in labels]
    return out


def _permutation(value: Any, n: int, key: str, loc: str | None) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        _fail(f"'{key}' must be a list of integer indices into 'docs'", loc)
    if sorted(value) != list(range(n)):
        _fail(f"'{key}' must be a permutation of 0..{n - 1}", loc, "every doc index exactly once")
    return list(value)


def validate_list(rec: dict, loc: str | None = None) -> dict:
    _check_keys(rec, {"query", "docs", "ranking", "labels", "qid"}, loc, "list")
    docs = _docs(rec, "docs", loc, min_len=2)
    out = {
        "query": _query(rec, loc),
        "docs": docs,
        "ranking": _permutation(rec.get("ranking"), len(docs), "ranking", loc),
    }
    if "qid" in rec:
        out["qid"] = str(rec["qid"])
    if "labels" in rec:
        labels = rec["labels"]
        if not isinstance(labels, list) or len(labels) != len(docs) or not all(_number(v) for v in labels):
            _fail(f"'labels' must be {len(docs)} finite numbers, one per doc", loc)
        out["labels"] = [float(v) for v in labels]
    return out


def validate_preference(rec: dict, loc: str | None = None) -> dict:
    _check_keys(rec, {"query", "docs", "chosen", "rejected", "qid"}, loc, "preference")
    docs = _docs(rec, "docs", loc, min_len=1)
    n = len(docs)
    chosen, rejected = rec.get("chosen"), rec.get("rejected")
    if n == 1 or (isinstance(chosen, int) and isinstance(rejected, int)):
        # pointwise preference: chosen / rejected are single doc indices
        for key, v in (("chosen", chosen), ("rejected", rejected)):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < n:
                _fail(f"'{key}' must be a doc index in 0..{n - 1}", loc)
        if chosen == rejected:
            _fail("'chosen' and 'rejected' are the same doc", loc)
    else:
        chosen = _permutation(chosen, n, "chosen", loc)
        rejected = _permutation(rejected, n, "rejected", loc)
        if chosen == rejected:
            _fail("'chosen' and 'rejected' are the same permutation", loc, "a preference pair must differ")
    out = {"query": _query(rec, loc), "docs": docs, "chosen": chosen, "rejected": rejected}
    if "qid" in rec:
        out["qid"] = str(rec["qid"])
    return out


def _read(path: str | os.PathLike, validate) -> Iterator[dict]:
    folder = Path(path).parent
    for lineno, obj in read_jsonl(path):
        loc = f"{path}:{lineno}"
        yield _resolve_images(validate(obj, loc), folder, loc)


def _resolve_images(rec: dict, folder: Path, loc: str) -> dict:
    """Image paths relative to the records file become absolute; a missing image fails here, naming its line."""
    fields = [rec["query"]] if isinstance(rec["query"], dict) else []
    fields += [d for key in ("positives", "negatives", "docs") for d in rec.get(key, [])]
    for d in fields:
        image = d.get("image")
        if not image or "://" in image:
            continue
        p = Path(image) if Path(image).is_absolute() else folder / image
        if not p.is_file():
            _fail(
                f"image {image!r} not found", loc, f"image paths are relative to the records file ({folder})"
            )
        d["image"] = str(p)
    return rec


def read_group_records(path: str | os.PathLike, *, min_negatives: int = 0) -> list[dict]:
    """All group records of a JSONL file, validated (the whole file is checked before anything is returned)."""
    if min_negatives:
        return list(_read(path, lambda rec, loc: validate_group(rec, loc, min_negatives=min_negatives)))
    return list(_read(path, validate_group))


def read_list_records(path: str | os.PathLike) -> list[dict]:
    return list(_read(path, validate_list))


def read_preference_records(path: str | os.PathLike) -> list[dict]:
    return list(_read(path, validate_preference))
