"""Persistent score cache: ``(scorer fingerprint, query key, doc key) → score`` in sqlite.

Keys hash the id *and* the content (query text; doc title/text/image), so an edited document or query is
re-scored while an unchanged one is free. Scores are committed after every chunk, so an interrupted run keeps
everything scored up to its last chunk (sqlite's journal makes each commit atomic); a rerun scores only what is
missing. WAL mode and a busy timeout let several data-parallel processes share one file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _h(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def _image_key(image: Any) -> str:
    if image is None:
        return ""
    if isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if p.is_file():
            return hashlib.sha256(p.read_bytes()).hexdigest()
        return str(image)
    tobytes = getattr(image, "tobytes", None)  # PIL image
    if tobytes is not None:
        return hashlib.sha256(tobytes()).hexdigest() + str(getattr(image, "size", ""))
    return repr(image)


def query_key(qid: str, query: Any) -> str:
    if isinstance(query, dict):
        return _h("q", qid, str(query.get("text") or ""), _image_key(query.get("image")))
    return _h("q", qid, str(query))


def doc_key(doc_id: str, doc: Any) -> str:
    if isinstance(doc, dict):
        return _h(
            "d", doc_id, str(doc.get("title") or ""), str(doc.get("text") or ""), _image_key(doc.get("image"))
        )
    return _h("d", doc_id, str(doc))


def list_key(query_key: str, doc_keys: list[str]) -> str:
    """A whole candidate list, in order: a listwise system's output depends on every candidate and their order."""
    return _h("l", query_key, *doc_keys)


class ScoreCache:
    """sqlite-backed cache; ``path=None`` keeps it in memory (nothing persisted)."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", timeout=120)
        self._db.execute("PRAGMA synchronous=NORMAL")
        exists = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='scores'"
        ).fetchone()
        if not exists:
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")  # persistent in the file
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scores (fp TEXT NOT NULL, q TEXT NOT NULL, d TEXT NOT NULL,"
                " s REAL NOT NULL, PRIMARY KEY (fp, q, d)) WITHOUT ROWID"
            )
            self._db.commit()

    def get_many(self, fingerprint: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """Cached scores for ``(query_key, doc_key)`` pairs (missing pairs are absent)."""
        keys = list(keys)
        found: dict[tuple[str, str], float] = {}
        by_q: dict[str, list[str]] = {}
        for q, d in keys:
            by_q.setdefault(q, []).append(d)
        cur = self._db.cursor()
        for q, ds in by_q.items():
            for i in range(0, len(ds), 500):
                chunk = ds[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for d, s in cur.execute(
                    f"SELECT d, s FROM scores WHERE fp=? AND q=? AND d IN ({marks})", (fingerprint, q, *chunk)
                ):
                    found[(q, d)] = s
        return found

    def put_many(self, fingerprint: str, items: Iterable[tuple[str, str, float]]) -> None:
        """Insert scores and commit (one transaction per call)."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO scores (fp, q, d, s) VALUES (?, ?, ?, ?)",
                [(fingerprint, q, d, float(s)) for q, d, s in items],
            )

    def count(self, fingerprint: str | None = None) -> int:
        if fingerprint is None:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM scores WHERE fp=?", (fingerprint,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()
