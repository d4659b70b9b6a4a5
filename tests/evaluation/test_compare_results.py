"""scripts/compare_results.py: systems of two results.json files are tested as if they had been evaluated together,
and runs that do not pair (another query set, another depth) are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from rerank_align.evaluation.significance import compare

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_results.py"


def _results(path: Path, systems: dict[str, dict[str, float]], depth: int = 10) -> Path:
    col = {"path": "data/x", "run": "bm25.run", "split": "test", "depth": depth}
    col["per_query"] = {s: {"nDCG@10": v} for s, v in systems.items()}
    path.write_text(json.dumps({"collections": {"x": col}}))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_two_files_give_the_evaluators_test_of_one(tmp_path):
    rng = np.random.default_rng(0)
    qids = [f"q{i}" for i in range(30)]
    base = {q: float(v) for q, v in zip(qids, rng.random(30))}
    better = {q: min(1.0, v + float(d)) for (q, v), d in zip(base.items(), rng.normal(0.1, 0.1, 30))}
    a = _results(tmp_path / "a.json", {"start": base})
    b = _results(tmp_path / "b.json", {"end": better})
    out = _run(f"{a}:start", f"{b}:end", "--permutations", "2000")
    assert out.returncode == 0, out.stderr
    expected = compare(
        {"s": {"nDCG@10": base}, "e": {"nDCG@10": better}}, "s", ["nDCG@10"], permutations=2000
    )
    row = next(line for line in out.stdout.splitlines() if line.startswith("| end"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    e = expected["e"]["nDCG@10"]
    assert float(cells[2]) == round(e["delta"], 4) and float(cells[3]) == float(f"{e['p_t']:.4g}")
    assert cells[6] == f"{e['wins']}/{e['ties']}/{e['losses']}" and e["p_t"] < 0.01


def test_runs_that_do_not_pair_are_refused(tmp_path):
    base = {f"q{i}": 0.5 for i in range(5)}
    a = _results(tmp_path / "a.json", {"start": base})
    fewer = _results(tmp_path / "b.json", {"end": dict(list(base.items())[:4])})
    deeper = _results(tmp_path / "c.json", {"end": base}, depth=20)
    out = _run(f"{a}:start", f"{fewer}:end")
    assert out.returncode != 0 and "4 queries, not the baseline's 5" in out.stderr and "b.json" in out.stderr
    out = _run(f"{a}:start", f"{deeper}:end")
    assert out.returncode != 0 and "depth 20 differs" in out.stderr
    out = _run(f"{a}:start", f"{a}:missing")
    assert out.returncode != 0 and "no system 'missing'" in out.stderr
