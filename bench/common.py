"""Shared helpers for the benchmarks: real SciFact pairs, CPU-time repetition, results JSON, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCIFACT = Path(os.environ.get("RERANK_ALIGN_SCIFACT", ROOT.parent / "shared" / "data" / "scifact"))
if not (SCIFACT / "corpus.jsonl").is_file():  # the copy the quickstart ships in the repo
    SCIFACT = ROOT / "data" / "scifact"


def setup(threads: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)


def scifact_qrels(split: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(SCIFACT / "qrels" / f"{split}.tsv") as fh:
        next(fh)  # header
        for line in fh:
            q, d, rel = line.split("\t")
            qrels.setdefault(q, {})[d] = int(rel)
    return qrels


def scifact_pairs(
    n_queries: int,
    k: int,
    offset: int = 0,
    *,
    split: str = "test",
    with_ids: bool = False,
    judged: dict | None = None,
) -> Any:
    """(query, doc) pairs: the first ``n_queries`` test queries (after ``offset``) × their BM25 top-``k``.

    ``split="train"``: train queries × their judged documents (the shipped BM25 run covers the test queries only).
    ``judged``: keep only queries with judgements there. ``with_ids``: also return the (query id, doc id) keys."""
    corpus = {}
    with open(SCIFACT / "corpus.jsonl") as fh:
        for line in fh:
            r = json.loads(line)
            corpus[r["_id"]] = {"id": r["_id"], "title": r.get("title", ""), "text": r.get("text", "")}
    queries = {}
    with open(SCIFACT / "queries.jsonl") as fh:
        for line in fh:
            r = json.loads(line)
            queries[r["_id"]] = r["text"]
    run: dict[str, list[str]] = {}
    if split == "train":
        run = {q: list(docs) for q, docs in scifact_qrels("train").items()}
    else:
        with open(SCIFACT / "bm25_top100.run") as fh:
            for line in fh:
                q, _, d, *_ = line.split()
                run.setdefault(q, []).append(d)
    qids = [q for q in run if q in queries and (judged is None or q in judged)][offset : offset + n_queries]
    keys = [(q, d) for q in qids for d in run[q][:k]]
    pairs = [(queries[q], corpus[d]) for q, d in keys]
    return (pairs, keys) if with_ids else pairs


def doc_text(d: dict) -> str:
    return f"{d['title']}\n{d['text']}"


def cpu_time(fn: Callable[[], Any]) -> float:
    """CPU seconds of this process (all its threads) for one call: robust to other jobs on a shared machine."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def compare(fns: dict[str, Callable[[], Any]], reps: int, warmup: int = 1) -> dict[str, dict[str, Any]]:
    """Interleaved repetitions (A B A B …) after ``warmup`` rounds; median and all times per function."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            # a system run in another process reports that process's CPU seconds itself
            remote = getattr(fn, "remote_cpu", None)
            times[name].append(remote() if remote is not None else cpu_time(fn))
    return {name: {"median_s": statistics.median(ts), "times_s": ts} for name, ts in times.items()}


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    words = set(flags.split())
    from rerank_align.precision import describe, resolve

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "avx512_bf16": "avx512_bf16" in flags,
        # every figure is a ratio measured in one run; these say which kernels that run could use
        "cpu_flags": sorted(
            f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16") if f in words
        ),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "precision_auto": resolve("auto", "cpu"),
        "precision_probe": describe("cpu"),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        return "unknown"


def write(name: str, result: dict[str, Any], command: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {"command": command, "machine": machine(), "commit": commit(), **result}
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
