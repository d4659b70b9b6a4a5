"""Strict JSONL reading: every problem is reported as ``file:line: what is wrong``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rerank_align.errors import InputError, where
from rerank_align.io import atomic_write

log = logging.getLogger(__name__)

BOM = "\ufeff"
BOMS_STRIPPED: list[str] = []
"""Files whose leading UTF-8 byte-order mark was stripped, in reading order (reports count them)."""


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 text file, 1-based; invalid UTF-8 names its line.

    A byte-order mark at the start of the file (Windows editors write one) is stripped, logged and recorded in
    :data:`BOMS_STRIPPED`; left in place it would glue itself to the first id and silently drop that row."""
    path = Path(path)
    if path.is_dir():
        raise InputError("is a folder, expected a file", where=str(path), hint="give the file inside it")
    if not path.is_file():
        raise InputError("file not found", where=str(path), hint="check the path in the recipe or command")
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    f"invalid UTF-8 at byte {e.start} of the line",
                    where=where(path, lineno),
                    hint="re-encode the file as UTF-8",
                ) from None
            if lineno == 1 and text.startswith(BOM):
                text = text[len(BOM) :]
                BOMS_STRIPPED.append(str(path))
                log.warning("%s: stripped a UTF-8 byte-order mark at the start of the file", path)
            yield lineno, text.rstrip("\r\n")


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)``; blank lines are skipped, anything but a JSON object is an error."""
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(
                f"invalid JSON ({e.msg} at column {e.colno})",
                where=where(path, lineno),
                hint="each line must be one complete JSON object; the file may be truncated",
            ) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", where=where(path, lineno))
        yield lineno, obj


def write_validated_jsonl(
    records: Sequence[dict], path: str | os.PathLike, validate: Callable[[dict, str], object]
) -> None:
    """Validate every record first (``validate(record, "record i")`` raises), then write the JSONL atomically, so
    a bad record leaves no half-written file."""
    for i, r in enumerate(records):
        validate(r, f"record {i}")
    with atomic_write(path) as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
