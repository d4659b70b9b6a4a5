"""A NaN loss on one data-parallel rank stops every rank at the same step, with one line each (no hang)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nan_on_one_rank_stops_all_ranks_together(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parents[1])}
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        str(HERE / "nan_on_one_rank.py"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    bad = (tmp_path / "rank1.txt").read_text().strip()
    good = (tmp_path / "rank0.txt").read_text().strip()
    assert bad.startswith("training step 3: loss is nan for the batch of examples ['r1s2']"), bad
    assert good.startswith("training step 3: loss is not finite on rank(s) [1]"), good
