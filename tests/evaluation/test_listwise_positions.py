"""scripts/listwise_positions.py: the input position of each system's top candidate, and kept input orders, read
from an eval folder's reranked runs against the first-stage run of its results.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "listwise_positions.py"


def _write_run(path: Path, ranked: dict[str, list[str]]) -> None:
    lines = [f"{q} Q0 {d} {r + 1} {10.0 - r} t" for q, docs in ranked.items() for r, d in enumerate(docs)]
    path.write_text("\n".join(lines) + "\n")


def test_counts_top1_positions_and_kept_orders(tmp_path):
    given = {"q1": ["a", "b", "c", "x"], "q2": ["d", "e", "f", "y"], "q3": ["g", "h", "i", "z"]}
    _write_run(tmp_path / "first.run", given)  # the 4th candidate is beyond depth 3
    runs = tmp_path / "runs" / "col"
    runs.mkdir(parents=True)
    _write_run(runs / "bm25.run", {q: d[:3] for q, d in given.items()})
    # the last slot first on two queries, the input order kept on the third
    _write_run(runs / "list_model.run", {"q1": ["c", "a", "b"], "q2": ["f", "d", "e"], "q3": ["g", "h", "i"]})
    col = {"run": str(tmp_path / "first.run"), "depth": 3}
    (tmp_path / "results.json").write_text(
        json.dumps({"collections": {"col": col}, "systems": {"bm25": {}, "list-model": {}, "absent": {}}})
    )
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = {
        line.split(" | ")[0].strip("| "): line for line in out.stdout.splitlines() if line.startswith("| ")
    }
    assert rows["bm25"] == "| bm25 | 3 | 1: 3 | 3 |"
    assert rows["list-model"] == "| list-model | 3 | 3: 2, 1: 1 | 1 |"
    assert "no run file" in rows["absent"]
