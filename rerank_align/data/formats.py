"""The field's training-data formats, read into this project's record kinds (group / list / preference) and
written back.

| format                  | rows                                                                 | record kind |
|-------------------------|----------------------------------------------------------------------|-------------|
| ``jsonl``               | this project's records (docs/data.md)                                | any         |
| ``flagembedding``       | ``{"query", "pos": [str], "neg": [str], "pos_scores"?, "neg_scores"?, "prompt"?, "type"?}`` | group |
| ``sentence-transformers`` | ``(query, positive[, negative_1..n][, scores])`` columns, ``(query, passage, label)`` pairs (grouped by query) or ``(query, [passages], [labels])`` | group |
| ``tevatron``            | ``{"query_id", "query", "positive_passages", "negative_passages"[, "answers"]}``, passages ``{"docid", "title", "text"}`` | group |
| ``rank_llm``            | ``{"conversations": [system?, user prompt with "[i] passage" lines, assistant "[3] > [1] > ..."]}`` (RankZephyr / FIRST training data; ``from``/``value`` or ``role``/``content`` messages) | list |

Sources (``rerank_align.data.hf``): JSONL / JSON / parquet / arrow files, a ``save_to_disk`` folder, a hub id.
Every record goes through the same validation as the project's JSONL (``records.validate_*``), with the row's
location (``file:line`` or ``source [split] row N``) in the message.

Mapping choices (each documented in docs/data.md):
- Teacher scores (FlagEmbedding ``pos_scores`` / ``neg_scores``, sentence-transformers' ``scores`` column) need doc
  ids; rows without ids get record-local ones (``pos-0``, ``neg-3``) so ``scores`` can refer to them.
- FlagEmbedding's ``prompt`` is the reranker's instruction, a property of the model here (``model.instruction``),
  not of a record: a file with one prompt is read and the prompt is reported; several different prompts are an
  error (one reranker, one instruction).
- rank_llm answers that repeat or omit identifiers are repaired as rank_llm's inference does (duplicates dropped,
  missing identifiers appended in prompt order) and counted in a warning; an identifier that is not in the prompt is
  an error.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rerank_align.data.hf import first_row, iter_rows
from rerank_align.data.records import (
    _number,
    _resolve_images,
    validate_group,
    validate_list,
    validate_preference,
)
from rerank_align.errors import InputError
from rerank_align.io import write_jsonl

log = logging.getLogger(__name__)

FORMATS = ("auto", "jsonl", "flagembedding", "sentence-transformers", "tevatron", "rank_llm")
WRITE_FORMATS = ("jsonl", "flagembedding", "tevatron")
FORMAT_KIND = {
    "flagembedding": "group",
    "sentence-transformers": "group",
    "tevatron": "group",
    "rank_llm": "list",
}
_VALIDATE = {"group": validate_group, "list": validate_list, "preference": validate_preference}


def _fail(what: str, loc: str, hint: str | None = None) -> None:
    raise InputError(what, where=loc, hint=hint)


def project_kind(row: dict) -> str | None:
    if "positives" in row:
        return "group"
    if "chosen" in row or "rejected" in row:
        return "preference"
    if "docs" in row and "ranking" in row:
        return "list"
    return None


def detect_format(row: dict, loc: str) -> str:
    """The format of a training set, from the keys of its first row (``data.format`` settles anything else)."""
    keys = list(row)
    if "conversations" in row or "messages" in row:
        return "rank_llm"
    if "positive_passages" in row or "negative_passages" in row:
        return "tevatron"
    if "pos" in row and "query" in row:
        return "flagembedding"
    if project_kind(row):
        return "jsonl"
    values = list(row.values())
    if (
        len(values) >= 2
        and isinstance(values[0], str)
        and (
            isinstance(values[1], str)
            or (isinstance(values[1], list) and all(isinstance(v, str) for v in values[1]))
        )
    ):
        return "sentence-transformers"
    _fail(
        f"cannot tell the training-data format from the keys {keys}",
        loc,
        f"set data.format (or --from) to one of {', '.join(FORMATS[1:])}",
    )
    raise AssertionError  # unreachable


# -- one row → one record ----------------------------------------------------------------------------------------
def _strings(value: Any, key: str, loc: str, *, min_len: int = 0) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(f"'{key}' must be a list of strings", loc)
    if len(value) < min_len:
        _fail(f"'{key}' needs at least {min_len} entries, got {len(value)}", loc)
    return value


def _scored_docs(texts: list[str], scores: list | None, prefix: str) -> list:
    if scores is None:
        return list(texts)
    return [{"id": f"{prefix}-{i}", "text": t} for i, t in enumerate(texts)]


def from_flagembedding(row: dict, loc: str, prompts: set[str] | None = None) -> dict:
    allowed = {"query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type"}
    unknown = set(row) - allowed
    if unknown:
        _fail(
            f"unknown keys {sorted(unknown)} in a FlagEmbedding row",
            loc,
            f"allowed: {', '.join(sorted(allowed))}",
        )
    pos = _strings(row.get("pos"), "pos", loc, min_len=1)
    neg = _strings(row.get("neg", []), "neg", loc)
    # empty score lists and an empty prompt mean "none": FlagEmbedding's own examples write `"neg_scores": []`
    has_p, has_n = bool(row.get("pos_scores")), bool(row.get("neg_scores"))
    if (has_n and not has_p) or (has_p and not has_n and neg):
        _fail("'pos_scores' and 'neg_scores' come together", loc, "give both (teacher scores) or neither")
    scores = None
    if has_p:
        ps, ns = row["pos_scores"], row.get("neg_scores") or []
        for key, vals, docs in (("pos_scores", ps, pos), ("neg_scores", ns, neg)):
            if not isinstance(vals, list) or len(vals) != len(docs) or not all(_number(v) for v in vals):
                _fail(f"'{key}' must be {len(docs)} finite numbers, one per passage", loc)
        scores = {f"pos-{i}": float(v) for i, v in enumerate(ps)} | {
            f"neg-{i}": float(v) for i, v in enumerate(ns)
        }
    prompt = row.get("prompt") or None
    if prompt is not None:
        if not isinstance(prompt, str):
            _fail("'prompt' must be a string", loc)
        if prompts is not None:
            prompts.add(prompt)
    rec: dict[str, Any] = {
        "query": row.get("query"),
        "positives": _scored_docs(pos, scores, "pos"),
        "negatives": _scored_docs(neg, scores, "neg"),
    }
    if scores is not None:
        rec["scores"] = scores
    return validate_group(rec, loc)


def _tevatron_doc(p: Any, loc: str, field: str) -> dict:
    if not isinstance(p, dict):
        _fail(f"{field} must be an object with 'docid', 'title', 'text'", loc)
    unknown = set(p) - {"docid", "title", "text"}
    if unknown:
        _fail(f"{field} has unknown keys {sorted(unknown)}", loc, "allowed: docid, title, text")
    doc = {k: p[k] for k in ("title", "text") if p.get(k) is not None}
    if p.get("docid") not in (None, ""):
        doc["id"] = str(p["docid"])
    return doc


def from_tevatron(row: dict, loc: str) -> dict:
    allowed = {"query_id", "query", "positive_passages", "negative_passages", "answers"}
    unknown = set(row) - allowed
    if unknown:
        _fail(
            f"unknown keys {sorted(unknown)} in a Tevatron row", loc, f"allowed: {', '.join(sorted(allowed))}"
        )
    for key in ("positive_passages", "negative_passages"):
        if not isinstance(row.get(key, []), list):
            _fail(f"'{key}' must be a list of passages", loc)
    rec: dict[str, Any] = {
        "query": row.get("query"),
        "positives": [
            _tevatron_doc(p, loc, f"positive_passages[{i}]")
            for i, p in enumerate(row.get("positive_passages") or [])
        ],
        "negatives": [
            _tevatron_doc(p, loc, f"negative_passages[{i}]")
            for i, p in enumerate(row.get("negative_passages") or [])
        ],
    }
    if row.get("query_id") not in (None, ""):
        rec["qid"] = str(row["query_id"])
    return validate_group(rec, loc)


def _labeled(query: Any, docs: list[str], labels: list, loc: str) -> dict:
    if not all(_number(v) for v in labels):
        _fail("labels must be finite numbers", loc)
    pos = [(d, float(v)) for d, v in zip(docs, labels) if v > 0]
    neg = [(d, float(v)) for d, v in zip(docs, labels) if v <= 0]
    if not pos:
        _fail("no passage of this query has a label > 0", loc, "every query needs a relevant passage")
    rec: dict[str, Any] = {"query": query, "positives": [d for d, _ in pos], "negatives": [d for d, _ in neg]}
    if any(v not in (0.0, 1.0) for _, v in pos + neg):  # graded labels are kept for graded losses
        rec["labels"] = [v for _, v in pos] + [max(v, 0.0) for _, v in neg]
    return validate_group(rec, loc)


def from_sentence_transformers(row: dict, loc: str) -> dict:
    """One row of an n-tuple / triplet / pair or labeled-list dataset (labeled pairs are grouped by ``_st_pairs``)."""
    cols = list(row)
    values = list(row.values())
    if len(values) < 2 or not isinstance(values[0], str):
        _fail(f"a sentence-transformers row starts with the query column, got columns {cols}", loc)
    query = values[0]
    if isinstance(values[1], list):  # labeled-list: (query, [docs], [labels])
        if len(values) != 3 or not isinstance(values[2], list) or len(values[2]) != len(values[1]):
            _fail("a labeled-list row is (query, [passages], [labels]) with one label per passage", loc)
        if cols[2] == "scores":
            _fail(
                "a labeled-list 'scores' column holds model scores, not relevance labels",
                loc,
                "mine with output_scores=False (a 'labels' column)",
            )
        return _labeled(query, _strings(values[1], cols[1], loc, min_len=1), values[2], loc)
    scores = row.get("scores") if cols[-1] == "scores" else None
    docs = values[1:-1] if scores is not None else values[1:]
    for c, v in zip(cols[1:], docs):
        if not isinstance(v, str):
            _fail(f"column '{c}' must hold a passage string, got {type(v).__name__}", loc)
    rec: dict[str, Any] = {"query": query}
    if scores is not None:
        if not isinstance(scores, list) or len(scores) != len(docs) or not all(_number(s) for s in scores):
            _fail(f"'scores' must be {len(docs)} finite numbers (positive, then each negative)", loc)
        rec["positives"] = [{"id": "pos-0", "text": docs[0]}]
        rec["negatives"] = [{"id": f"neg-{i}", "text": d} for i, d in enumerate(docs[1:])]
        rec["scores"] = {"pos-0": float(scores[0])} | {f"neg-{i}": float(s) for i, s in enumerate(scores[1:])}
    else:
        rec["positives"], rec["negatives"] = [docs[0]], list(docs[1:])
    return validate_group(rec, loc)


def _is_labeled_pair(row: dict) -> bool:
    cols = list(row)
    return len(cols) == 3 and cols[2] in ("label", "score") and not isinstance(row[cols[1]], list)


def _st_pairs(rows: list[tuple[str, dict]]) -> Iterator[dict]:
    """``(query, passage, label)`` rows grouped by query (first appearance order) into group records."""
    by_query: dict[str, list] = {}
    for loc, row in rows:
        cols, values = list(row), list(row.values())
        if not _is_labeled_pair(row) or not isinstance(values[0], str) or not isinstance(values[1], str):
            _fail(f"expected (query, passage, label) like the first row, got columns {cols}", loc)
        if cols[2] == "score":
            _fail(
                "a labeled-pair 'score' column holds model scores, not relevance labels",
                loc,
                "mine with output_scores=False (a 'label' column)",
            )
        entry = by_query.setdefault(values[0], [loc, [], []])
        entry[1].append(values[1])
        entry[2].append(values[2])
    for query, (loc, docs, labels) in by_query.items():
        yield _labeled(query, docs, labels, loc)


_ID_LINE = re.compile(r"^\[([A-Za-z]|\d+)\]\s?(.*)$")
_ANSWER_ID = re.compile(r"\[([A-Za-z]|\d+)\]")
_QUERY = re.compile(r"Search Query:\s*(.+?)\s*$", re.MULTILINE)
_QUERY_HEAD = re.compile(r"search query:\s*(.+?)\.?\s*$", re.MULTILINE | re.IGNORECASE)


def _messages(row: dict, loc: str) -> list[tuple[str, str]]:
    conv = row.get("conversations", row.get("messages"))
    if not isinstance(conv, list) or len(conv) < 2:
        _fail("'conversations' must be a list of at least a user prompt and an assistant answer", loc)
    out = []
    for i, m in enumerate(conv):
        if not isinstance(m, dict):
            _fail(f"conversations[{i}] must be an object", loc)
        role, text = m.get("from", m.get("role")), m.get("value", m.get("content"))
        if not isinstance(role, str) or not isinstance(text, str):
            _fail(f"conversations[{i}] needs 'from'/'value' (or 'role'/'content') strings", loc)
        out.append(({"human": "user", "gpt": "assistant"}.get(role, role), text))
    return out


def from_rank_llm(row: dict, loc: str, repaired: list[int] | None = None) -> dict:
    """A RankZephyr / FIRST training conversation → a list record (docs in prompt order, ranking from the answer)."""
    msgs = _messages(row, loc)
    users = [t for r, t in msgs if r == "user"]
    answers = [t for r, t in msgs if r == "assistant"]
    if len(users) != 1 or len(answers) != 1:
        _fail(
            "expected one user prompt and one assistant answer", loc, "multi-turn conversations are not read"
        )
    prompt, answer = users[0], answers[0]
    ids, docs = [], []
    for line in prompt.splitlines():
        m = _ID_LINE.match(line.strip())
        if m:
            ids.append(m.group(1))
            docs.append(m.group(2).strip())
    if len(ids) < 2:
        _fail("the prompt lists fewer than 2 passages as '[id] text' lines", loc)
    if len(set(ids)) != len(ids):
        _fail(f"the prompt repeats a passage identifier ({ids})", loc)
    q = _QUERY.findall(prompt) or _QUERY_HEAD.findall(prompt)
    if not q:
        _fail("no 'Search Query: ...' line in the prompt", loc, "rank_llm prompts state the query")
    query = q[-1][:-1] if q[-1].endswith(".") else q[-1]
    index = {x: i for i, x in enumerate(ids)}
    ranking: list[int] = []
    for x in _ANSWER_ID.findall(answer):
        if x not in index:
            _fail(f"the answer ranks [{x}], which is not in the prompt", loc)
        if index[x] not in ranking:
            ranking.append(index[x])
    if not ranking:
        _fail("the answer ranks no passage (expected '[2] > [1] > ...')", loc)
    if len(ranking) != len(ids) and repaired is not None:
        repaired.append(1)
    ranking += [i for i in range(len(ids)) if i not in ranking]
    return validate_list({"query": query, "docs": docs, "ranking": ranking}, loc)


# -- whole sources -------------------------------------------------------------------------------------------------
def _project_rows(rows: Iterator[tuple[str, dict]], kind: str, source: str) -> Iterator[dict]:
    folder = Path(source).parent if Path(source).is_file() else Path(".")
    for loc, row in rows:
        got = project_kind(row)
        if got is not None and got != kind:
            _fail(f"this is a {got} record, but {kind} records are needed here", loc, _kind_hint(kind))
        yield _resolve_images(_VALIDATE[kind](row, loc), folder, loc)


def _kind_hint(kind: str) -> str:
    return {
        "group": "group records {query, positives, negatives}: a pointwise / contrastive method",
        "list": "list records {query, docs, ranking}: a listwise method (fullrank, first, irpo)",
        "preference": "preference records {query, docs, chosen, rejected}: dpo / adpa / dckd / pl_dpo",
    }[kind]


def source_format(
    source: str | os.PathLike, fmt: str = "auto", split: str = "train", config: str | None = None
) -> str:
    if fmt != "auto":
        return fmt
    loc, row = first_row(source, split, config)
    return detect_format(row, loc)


def source_kind(
    source: str | os.PathLike, fmt: str = "auto", split: str = "train", config: str | None = None
) -> str:
    """The record kind a training set yields (``group`` / ``list`` / ``preference``)."""
    fmt = source_format(source, fmt, split, config)
    if fmt != "jsonl":
        return FORMAT_KIND[fmt]
    loc, row = first_row(source, split, config)
    kind = project_kind(row)
    if kind is None:
        _fail("not a group, list or preference record", loc, "see docs/data.md for the record kinds")
    return kind


def read_records(
    source: str | os.PathLike,
    kind: str,
    fmt: str = "auto",
    *,
    split: str = "train",
    config: str | None = None,
) -> list[dict]:
    """All records of ``source`` as validated ``kind`` records (the whole source is checked before returning)."""
    source = str(source)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
    fmt = source_format(source, fmt, split, config)
    if fmt != "jsonl" and FORMAT_KIND[fmt] != kind:
        raise InputError(
            f"{fmt} data holds {FORMAT_KIND[fmt]} records, but {kind} records are needed here",
            where=source,
            hint=_kind_hint(kind),
        )
    rows = iter_rows(source, split, config)
    if fmt == "jsonl":
        return list(_project_rows(rows, kind, source))
    if fmt == "flagembedding":
        prompts: set[str] = set()
        out = [from_flagembedding(row, loc, prompts) for loc, row in rows]
        if len(prompts) > 1:
            raise InputError(
                f"the rows carry {len(prompts)} different prompts",
                where=source,
                hint="a reranker has one instruction (model.instruction): split the file by prompt",
            )
        if prompts:
            log.warning(
                "%s: FlagEmbedding prompt %r is the reranker's instruction here: set model.instruction to it "
                "(it is not part of the records)",
                source,
                next(iter(prompts)),
            )
        return out
    if fmt == "tevatron":
        return [from_tevatron(row, loc) for loc, row in rows]
    if fmt == "rank_llm":
        repaired: list[int] = []
        out = [from_rank_llm(row, loc, repaired) for loc, row in rows]
        if repaired:
            log.warning(
                "%s: %d of %d answers omitted passages; they were appended in prompt order (rank_llm's repair)",
                source,
                len(repaired),
                len(out),
            )
        return out
    rows = list(rows)  # sentence-transformers
    if rows and _is_labeled_pair(rows[0][1]):
        return list(_st_pairs(rows))
    return [from_sentence_transformers(row, loc) for loc, row in rows]


# -- writing -------------------------------------------------------------------------------------------------------
def _doc_string(doc: dict) -> str:
    """A doc as one passage string (FlagEmbedding passages have no title field): ``title\\ntext``."""
    title, text = doc.get("title", ""), doc.get("text", "")
    return f"{title}\n{text}" if title and text else (title or text)


def to_flagembedding(rec: dict) -> dict:
    """A group record as a FlagEmbedding row; teacher ``scores`` become ``pos_scores`` / ``neg_scores``."""
    for d in rec["positives"] + rec["negatives"]:
        if d.get("image"):
            raise InputError(
                "FlagEmbedding rows are text only; this group has an image", where=str(rec.get("qid"))
            )
    out: dict[str, Any] = {
        "query": rec["query"] if isinstance(rec["query"], str) else rec["query"].get("text", ""),
        "pos": [_doc_string(d) for d in rec["positives"]],
        "neg": [_doc_string(d) for d in rec["negatives"]],
    }
    if "scores" in rec:
        out["pos_scores"] = [rec["scores"][d["id"]] for d in rec["positives"]]
        out["neg_scores"] = [rec["scores"][d["id"]] for d in rec["negatives"]]
    return out


def to_tevatron(rec: dict, index: int) -> dict:
    def passage(d: dict) -> dict:
        return {"docid": d.get("id", ""), "title": d.get("title", ""), "text": d.get("text", "")}

    return {
        "query_id": rec.get("qid", str(index)),
        "query": rec["query"] if isinstance(rec["query"], str) else rec["query"].get("text", ""),
        "positive_passages": [passage(d) for d in rec["positives"]],
        "negative_passages": [passage(d) for d in rec["negatives"]],
    }


def convert(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    src_format: str = "auto",
    dst_format: str = "jsonl",
    kind: str | None = None,
    split: str = "train",
    config: str | None = None,
) -> tuple[int, str, str]:
    """Read ``source`` (any format) and write ``out`` as JSONL in ``dst_format``; returns (count, format, kind)."""
    if dst_format not in WRITE_FORMATS:
        raise InputError(
            f"cannot write format {dst_format!r}", hint=f"--to one of {', '.join(WRITE_FORMATS)}"
        )
    fmt = source_format(source, src_format, split, config)
    kind = kind or source_kind(source, fmt, split, config)
    records = read_records(source, kind, fmt, split=split, config=config)
    if not records:
        raise InputError("no records", where=str(source))
    if dst_format != "jsonl" and kind != "group":
        raise InputError(
            f"{dst_format} holds group records, but {source} has {kind} records", hint="--to jsonl"
        )
    if dst_format == "flagembedding":
        rows = [to_flagembedding(r) for r in records]
    elif dst_format == "tevatron":
        rows = [to_tevatron(r, i) for i, r in enumerate(records)]
    else:
        rows = records
    return write_jsonl(out, rows), fmt, kind
