"""MRB (multimodal reranking benchmark, arXiv 2510.14824): task folders, a converter, and per-type aggregation.

MRB reranks the top-100 candidates of a first-stage retriever on test sets of single-modal, cross-modal and
fused-modal retrieval. Here every MRB test set is one *task folder* (see docs/mrb.md)::

    <task>/mrb.json          {"name": ..., "type": "T→I", "source": ...}   (type: T→T, T→I, I→T, I→I or fused)
    <task>/queries.jsonl     {"_id", "text"?, "image"?}                   image: path relative to the task folder
    <task>/corpus.jsonl      {"_id", "title"?, "text"?, "image"?}
    <task>/qrels/test.tsv    query-id  corpus-id  score
    <task>/candidates.run    TREC run: the first-stage top-100 that is reranked
    <task>/images/...

A query or document is text, an image, or both; a task whose queries or documents carry both is ``fused``, the
others are typed by their modalities (``T→I``: text queries, image documents). Tasks are evaluated like any
collection (same tie, depth, unjudged and self-hit policies); the scorer receives ``{"text", "image"}`` queries
and ``{"id", "title", "text", "image"}`` docs with ``image`` an absolute path.

Aggregation: the primary metric (nDCG@10 by default) of each task; the mean over the tasks of each type; and
the overall score as the mean over all tasks (each test set weighs the same). The mean over the type means is
reported next to it (``overall_types``) for comparison with tables that average categories instead.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_align.data.beir import Collection, read_qrels, read_run, write_run
from rerank_align.data.jsonl import read_jsonl
from rerank_align.errors import InputError, where
from rerank_align.io import atomic_dir, check_output

TASK_TYPES = ("T→T", "T→I", "I→T", "I→I", "fused")
_ALIASES = {
    "t2t": "T→T",
    "t2i": "T→I",
    "i2t": "I→T",
    "i2i": "I→I",
    "t->t": "T→T",
    "t->i": "T→I",
    "i->t": "I→T",
    "i->i": "I→I",
}


def normalize_type(value: str) -> str:
    v = str(value).strip()
    if v in TASK_TYPES:
        return v
    low = v.lower()
    if low in _ALIASES:
        return _ALIASES[low]
    if low in ("fused", "fused-modal", "fused_modal", "it"):
        return "fused"
    raise InputError(f"unknown MRB task type {value!r}", hint=f"one of: {', '.join(TASK_TYPES)}")


def modality(record: dict) -> str:
    """``T``, ``I`` or ``IT`` from which of text/title and image are present."""
    has_text = bool((record.get("text") or "").strip() or (record.get("title") or "").strip())
    has_image = bool(record.get("image"))
    if has_text and has_image:
        return "IT"
    if has_image:
        return "I"
    if has_text:
        return "T"
    return ""


def infer_type(queries: dict[str, dict], corpus: dict[str, dict]) -> str:
    """The task type from the modalities present: any text+image record on either side makes it ``fused``."""
    qm = {modality(q) for q in queries.values()} - {""}
    dm = {modality(d) for d in corpus.values()} - {""}
    if "IT" in qm or "IT" in dm or len(qm) > 1 or len(dm) > 1:
        return "fused"
    if not qm or not dm:
        raise InputError("cannot infer the MRB task type: queries or documents are empty")
    return f"{qm.pop()}→{dm.pop()}"


@dataclass
class MRBTask:
    name: str
    type: str
    path: Path
    queries: dict[str, dict]
    corpus: dict[str, dict]
    qrels: dict[str, dict[str, int]]


def check_image(path: Path, shown: str, loc: str) -> None:
    """An image that does not decode fails at load time, naming its record, not mid-evaluation.

    ``PIL.Image.verify`` reads the whole file and checks its structure (PNG chunk CRCs, truncation) without
    decoding pixels, so a task of many images loads quickly.
    """
    try:
        from PIL import Image
    except ImportError:  # pillow is needed to score images at all; without it there is nothing to check with
        return
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # noqa: BLE001 - any decoder failure is the same user error
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        raise InputError(
            f"image {shown!r} cannot be decoded ({reason})",
            where=loc,
            hint="re-save it as PNG or JPEG, or drop the record",
        ) from None


def _records(path: Path, folder: Path, kind: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for lineno, obj in read_jsonl(path):
        rid = obj.get("_id", obj.get("id"))
        if rid is None or str(rid) == "":
            raise InputError("record without '_id'", where=where(path, lineno))
        rid = str(rid)
        if rid in out:
            raise InputError(f"duplicate id {rid!r}", where=where(path, lineno))
        image = obj.get("image")
        if image:
            img = Path(image)
            img = img if img.is_absolute() else folder / img
            if not img.is_file():
                raise InputError(
                    f"image {image!r} not found",
                    where=where(path, lineno),
                    hint="paths are relative to the task folder",
                )
            check_image(img, str(image), where(path, lineno))
            image = str(img)
        rec = {"id": rid, "text": obj.get("text") or "", "image": image or None}
        if kind == "doc":
            rec["title"] = obj.get("title") or ""
        if not modality(rec):
            raise InputError(f"record {rid!r} has neither text nor image", where=where(path, lineno))
        out[rid] = rec
    return out


def load_mrb_task(path: str | os.PathLike, split: str = "test") -> MRBTask:
    path = Path(path)
    meta_path = path / "mrb.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    queries = _records(path / "queries.jsonl", path, "query")
    corpus = _records(path / "corpus.jsonl", path, "doc")
    qrels = read_qrels(path / "qrels" / f"{split}.tsv")
    unknown = [q for q in qrels if q not in queries]
    if unknown:
        raise InputError(
            f"{len(unknown)} judged queries are not in queries.jsonl (first: {unknown[0]!r})", where=str(path)
        )
    kind = normalize_type(meta["type"]) if meta.get("type") else infer_type(queries, corpus)
    return MRBTask(meta.get("name", path.name), kind, path, queries, corpus, qrels)


def as_collection(path: str | os.PathLike, split: str = "test") -> Any:
    """An MRB task folder as a ``data.beir.Collection`` (multimodal query and doc dicts) for code that reranks a
    collection, e.g. the in-training evaluation (``eval.beir`` may name a task folder; its ``candidates.run`` is
    the default run there)."""
    task = load_mrb_task(path, split)
    return Collection(Path(path), task.corpus, task.queries, task.qrels)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- converter


def _read_table(src: Path, stem: str) -> list[dict]:
    """Rows of ``<stem>.parquet`` / ``<stem>-*.parquet`` / ``<stem>/*.parquet`` or ``<stem>.jsonl``."""
    files = (
        sorted(src.glob(f"{stem}.parquet"))
        + sorted(src.glob(f"{stem}-*.parquet"))
        + sorted(src.glob(f"{stem}/*.parquet"))
    )
    if files:
        import pyarrow.parquet as pq

        rows: list[dict] = []
        for f in files:
            rows.extend(pq.read_table(f).to_pylist())
        return rows
    jl = src / f"{stem}.jsonl"
    if jl.is_file():
        return [obj for _, obj in read_jsonl(jl)]
    raise InputError(f"no {stem}.parquet or {stem}.jsonl", where=str(src))


def _save_image(value: Any, out_dir: Path, stem: str) -> str | None:
    """HF ``Image`` cell (``{"bytes", "path"}``), raw bytes or a path → a file under ``out_dir``; relative path."""
    if value is None:
        return None
    data, ext = None, ".png"
    if isinstance(value, dict):
        data = value.get("bytes")
        if data is None and value.get("path") and Path(value["path"]).is_file():
            data = Path(value["path"]).read_bytes()
        if value.get("path"):
            ext = Path(value["path"]).suffix or ext
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str) and Path(value).is_file():
        data, ext = Path(value).read_bytes(), Path(value).suffix or ext
    if data is None:
        return None
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{safe}{ext}"
    target.write_bytes(data)
    return str(target.relative_to(out_dir.parent))


def convert_published(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    run: str | os.PathLike,
    name: str | None = None,
    task_type: str | None = None,
    depth: int = 100,
    overwrite: bool = False,
) -> Path:
    """Convert one MRB test set from its published form into a task folder.

    ``src`` holds the three tables of the published test sets (the GME/UMRB layout MRB uses): ``query`` (id,
    modality, text, image), ``corpus`` (id, modality, text, image) and ``qrels`` (query-id, corpus-id, score), as
    parquet (``query.parquet``, ``query-00000-of-00001.parquet`` or ``query/*.parquet``) or JSONL. ``run`` is the
    first-stage candidate list (TREC run), cut to ``depth`` per query. Images (HF ``Image`` cells with ``bytes``)
    are written under ``dst/images``. The folder is written atomically; an existing non-empty ``dst`` is replaced
    only with ``overwrite``, and never when it holds ``src`` or ``run``.
    """
    src, dst = Path(src), Path(dst)
    check_output(dst, overwrite=overwrite, sources=[src, run], where="DST")
    queries = _read_table(src, "query")
    corpus = _read_table(src, "corpus")
    qrels_rows = _read_table(src, "qrels")
    cands = read_run(run, depth=depth)
    with atomic_dir(dst) as tmp:
        images = tmp / "images"
        qrecs, drecs = {}, {}
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
            for row in queries:
                qid = str(row.get("id", row.get("_id")))
                rec = {"_id": qid, "text": row.get("text") or ""}
                img = _save_image(row.get("image"), images, f"q_{qid}")
                if img:
                    rec["image"] = img
                qrecs[qid] = rec
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as fh:
            for row in corpus:
                did = str(row.get("id", row.get("_id")))
                rec = {"_id": did, "title": row.get("title") or "", "text": row.get("text") or ""}
                img = _save_image(row.get("image"), images, f"d_{did}")
                if img:
                    rec["image"] = img
                drecs[did] = rec
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        (tmp / "qrels").mkdir()
        with open(tmp / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for row in qrels_rows:
                q = row.get("query-id", row.get("query_id", row.get("qid")))
                d = row.get("corpus-id", row.get("corpus_id", row.get("docid")))
                fh.write(f"{q}\t{d}\t{int(row.get('score', 1))}\n")
        missing = sorted({d for c in cands.values() for d, _ in c if d not in drecs})
        if missing:
            raise InputError(
                f"{len(missing)} candidates are not in the corpus (first: {missing[0]!r})", where=str(run)
            )
        write_run(cands, tmp / "candidates.run", tag="first_stage")
        kind = (
            normalize_type(task_type)
            if task_type
            else infer_type(
                {k: {"text": v.get("text"), "image": v.get("image")} for k, v in qrecs.items()},
                {
                    k: {"text": v.get("text"), "title": v.get("title"), "image": v.get("image")}
                    for k, v in drecs.items()
                },
            )
        )
        meta = {"name": name or src.name, "type": kind, "source": str(src), "depth": depth}
        (tmp / "mrb.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return dst


def main(argv: list[str] | None = None) -> int:
    """``rerank-align mrb-convert SRC DST --run RUN [--name N] [--type T] [--depth 100]``."""
    p = argparse.ArgumentParser(
        prog="rerank-align mrb-convert",
        description="Convert one MRB test set from its published tables (query/corpus/qrels parquet or JSONL) and "
        "its first-stage TREC run into a task folder the evaluator reads (docs/mrb.md).",
    )
    p.add_argument("src", help="folder with query, corpus and qrels tables")
    p.add_argument("dst", help="task folder to write (atomically)")
    p.add_argument("--run", required=True, help="first-stage candidates (TREC run)")
    p.add_argument("--name", help="task name (default: the source folder name)")
    p.add_argument("--type", dest="task_type", help="T→T, T→I, I→T, I→I or fused (default: inferred)")
    p.add_argument("--depth", type=int, default=100, help="candidates kept per query (default 100)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty DST")
    a = p.parse_args(argv)
    out = convert_published(
        a.src, a.dst, run=a.run, name=a.name, task_type=a.task_type, depth=a.depth, overwrite=a.overwrite
    )
    task = load_mrb_task(out)
    print(f"{out}: {task.name} ({task.type}), {len(task.queries)} queries, {len(task.corpus)} documents")
    return 0


# -------------------------------------------------------------------------------------------------- aggregation


def aggregate(collections: dict[str, dict], metric: str) -> dict:
    """Per-type and overall means of ``metric`` over the MRB tasks among ``collections`` (results JSON form)."""
    tasks = {name: c for name, c in collections.items() if c.get("mrb_type")}
    systems: dict[str, dict] = {}
    for name, c in tasks.items():
        for s, m in c["metrics"].items():
            entry = systems.setdefault(s, {"tasks": {}, "per_type": {}})
            entry["tasks"][name] = m[metric]
    for entry in systems.values():
        by_type: dict[str, list[float]] = {}
        for name, v in entry["tasks"].items():
            by_type.setdefault(tasks[name]["mrb_type"], []).append(v)
        entry["per_type"] = {t: sum(v) / len(v) for t, v in by_type.items()}
        entry["n_tasks_per_type"] = {t: len(v) for t, v in by_type.items()}
        entry["overall"] = sum(entry["tasks"].values()) / len(entry["tasks"])
        entry["overall_types"] = sum(entry["per_type"].values()) / len(entry["per_type"])
    return {"metric": metric, "type_order": list(TASK_TYPES), "systems": systems}
