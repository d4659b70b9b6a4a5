"""Load test of the evaluator: Q queries x C candidates with the tiny reranker, bounded memory, and a score cache that
survives a SIGKILL.

    .venv/bin/python scripts/load_test.py [--queries 1000] [--candidates 100] [--kill-at 0.4] [--work DIR]

1. Run A: `rerank-align eval` on a generated collection, uninterrupted (its own cache); peak RSS of the process.
2. Run B: the same suite with another cache, killed with SIGKILL once `--kill-at` of the pairs are cached; then
   rerun: only the missing pairs are scored (the rest come from the cache), and the results equal run A's.
Prints the figures and a JSON summary on the last line. Each eval runs in a fresh process with one torch thread
(OMP_NUM_THREADS, overridable).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = (
    "import resource, sys\n"
    "from rerank_align.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def build(work: Path, n_queries: int, n_cands: int, n_docs: int, seed: int = 0) -> Path:
    """A tiny reranker and a BEIR folder with an n_queries x n_cands first-stage run; returns the suite file."""
    sys.path.insert(0, str(REPO))
    from rerank_align.scoring import Reranker
    from rerank_align_testing.synthetic import vocabulary
    from rerank_align_testing.tiny import build_tiny_causal

    model = work / "reranker"
    if not (model / "reranker.json").exists():
        Reranker.from_base(str(build_tiny_causal(work / "base"))).save_pretrained(model)
    rng = random.Random(seed)
    keywords, fillers = vocabulary()
    words = keywords + fillers
    col = work / "col"
    (col / "qrels").mkdir(parents=True, exist_ok=True)
    with open(col / "corpus.jsonl", "w") as fh:
        for i in range(n_docs):
            fh.write(
                json.dumps(
                    {
                        "_id": f"d{i}",
                        "title": rng.choice(keywords),
                        "text": " ".join(rng.choices(words, k=20)),
                    }
                )
                + "\n"
            )
    with (
        open(col / "queries.jsonl", "w") as fh,
        open(col / "qrels" / "test.tsv", "w") as qr,
        open(col / "first_stage.run", "w") as run,
    ):
        qr.write("query-id\tcorpus-id\tscore\n")
        for q in range(n_queries):
            fh.write(json.dumps({"_id": f"q{q}", "text": " ".join(rng.sample(keywords, 3))}) + "\n")
            cands = rng.sample(range(n_docs), n_cands)
            for r, d in enumerate(cands, start=1):
                run.write(f"q{q} Q0 d{d} {r} {100.0 - r / 10:.3f} fs\n")
            for d in rng.sample(cands[:30], 3):
                qr.write(f"q{q}\td{d}\t{rng.choice([1, 2])}\n")
    suite = work / "suite.yaml"
    suite.write_text(
        f"name: load\ndepth: {n_cands}\nbatch_size: 64\n"
        f"collections:\n  - {{name: load, path: {col}, run: first_stage.run}}\n"
        f"systems:\n  - {{name: first, type: first_stage}}\n  - {{name: tiny, type: reranker, path: {model}}}\n"
        "baseline: first\nsignificance: {permutations: 1000, bootstrap: 200}\n"
    )
    return suite


def eval_cmd(suite: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", CHILD, "eval", str(suite), "--out", str(out), "--no-progress", "--quiet"]


def env() -> dict[str, str]:
    e = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def run_eval(suite: Path, out: Path) -> dict:
    t0 = time.time()
    p = subprocess.run(eval_cmd(suite, out), env=env(), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"eval failed ({p.returncode}): {p.stderr[-2000:]}")
    peak = int(next(line.split()[1] for line in p.stderr.splitlines() if line.startswith("PEAK_RSS_KB")))
    results = json.loads((out / "results.json").read_text())
    return {"seconds": round(time.time() - t0, 1), "peak_rss_mb": round(peak / 1024, 1), "results": results}


def cached_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def killed_eval(suite: Path, out: Path, at_rows: int) -> int:
    """Start an eval, SIGKILL it once ``at_rows`` scores are cached; returns the rows the cache kept."""
    p = subprocess.Popen(
        eval_cmd(suite, out), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    db = out / "score_cache.sqlite"
    while p.poll() is None and cached_rows(db) < at_rows:
        time.sleep(0.2)
    if p.poll() is not None:
        raise SystemExit("the eval finished before it could be killed; raise --queries or lower --kill-at")
    p.send_signal(signal.SIGKILL)
    p.wait()
    return cached_rows(db)


def compare(a: dict, b: dict, system: str = "tiny") -> dict:
    ca, cb = a["collections"]["load"], b["collections"]["load"]
    per_a, per_b = ca["per_query"][system], cb["per_query"][system]
    diff = max(abs(per_a[m][q] - per_b[m][q]) for m in per_a for q in per_a[m])
    return {"identical_metrics": ca["metrics"] == cb["metrics"], "max_per_query_diff": diff}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument(
        "--kill-at", type=float, default=0.4, help="fraction of the pairs cached when run B is killed"
    )
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="rerank_load_"))
    work.mkdir(parents=True, exist_ok=True)
    pairs = args.queries * args.candidates
    suite = build(work, args.queries, args.candidates, args.docs)

    a = run_eval(suite, work / "A")
    print(
        f"run A: {args.queries} queries x {args.candidates} candidates = {pairs} pairs in {a['seconds']} s, "
        f"peak RSS {a['peak_rss_mb']} MB"
    )
    kept = killed_eval(suite, work / "B", int(args.kill_at * pairs))
    print(f"run B: killed with SIGKILL; the cache kept {kept} of {pairs} scores")
    b = run_eval(suite, work / "B")
    stats = b["results"]["timing"]["per_system"]["tiny"]["load"]
    same = compare(a["results"], b["results"])
    print(
        f"run B rerun: {stats['cached']} scores reused from the cache, {stats['scored']} scored, "
        f"{b['seconds']} s, peak RSS {b['peak_rss_mb']} MB; results identical to run A: {same['identical_metrics']} "
        f"(max per-query metric diff {same['max_per_query_diff']:.2e})"
    )
    summary = {
        "queries": args.queries,
        "candidates": args.candidates,
        "pairs": pairs,
        "run_a_seconds": a["seconds"],
        "run_a_peak_rss_mb": a["peak_rss_mb"],
        "killed_cache_rows": kept,
        "rerun_cached": stats["cached"],
        "rerun_scored": stats["scored"],
        "rerun_peak_rss_mb": b["peak_rss_mb"],
        **same,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
