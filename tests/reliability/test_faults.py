"""Faults during a write: a full disk (simulated) and SIGKILL (real) during merge, export and eval. The previous
good output stays byte for byte, nothing half-written appears under the output's name, the hidden temporary
folder of a killed process is removed by the next run, and an eval resumes from its score cache."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rerank_align import io as rio
from tests.reliability.test_atomic import leftovers, snapshot

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def disk_full_at(monkeypatch, name_part: str) -> None:
    """Every write to an atomic temporary file whose name contains ``name_part`` fails with ENOSPC."""
    real = os.fdopen

    class Full:
        def __init__(self, fh):
            self._fh = fh

        def write(self, _data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, a):
            return getattr(self._fh, a)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()
            return False

    def fdopen(fd, *a, **k):
        fh = real(fd, *a, **k)
        if name_part in os.readlink(f"/proc/self/fd/{fd}"):
            return Full(fh)
        return fh

    monkeypatch.setattr(os, "fdopen", fdopen)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    from rerank_align.cli import main

    rc = main(argv)
    return rc, capsys.readouterr().err.strip()


def test_disk_full_while_writing_mined_groups(tmp_path, monkeypatch, capsys):
    from tests.evaluation.conftest import make_collection

    col = make_collection(tmp_path / "col")
    out = tmp_path / "groups.jsonl"
    argv = ["mine", str(col), "--split", "test", "--run", str(col / "bm25_top100.run"), "--out", str(out)]
    assert run_cli(argv, capsys)[0] == 0
    good = snapshot(out)
    disk_full_at(monkeypatch, ".groups.jsonl.")
    rc, err = run_cli([*argv, "--seed", "3", "--overwrite"], capsys)
    assert rc == 2
    assert (
        err
        == f"error: {out}: No space left on device (the disk is full; free space and rerun (finished "
        + ("outputs are only ever replaced whole))")
    )
    assert snapshot(out) == good and leftovers(tmp_path) == []


def test_disk_full_while_saving_a_merged_model(tiny_causal, tmp_path, monkeypatch, capsys):
    from rerank_align.export.merge import merge
    from tests.export.conftest import make_adapter

    adapter = make_adapter(tiny_causal, tmp_path / "adapter")
    out = tmp_path / "merged"
    merge(adapter, out)
    good = snapshot(out)
    disk_full_at(monkeypatch, ".merge_report.json.")  # after the weights, inside the temporary folder
    rc, err = run_cli(["merge", str(adapter), "--out", str(out), "--overwrite"], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err
    assert "merge_report.json: No space left on device (the disk is full" in errors[0]
    assert snapshot(out) == good and leftovers(tmp_path) == []


def _kill_inside(argv: list[str], hang_at: str, tmp: Path, *, after: int = 1, env: dict | None = None) -> int:
    """Start the command, wait until it is inside ``hang_at``, SIGKILL it; returns its pid."""
    ready = tmp / "ready"
    ready.unlink(missing_ok=True)
    full_env = {
        **os.environ,
        "HANG_AT": hang_at,
        "HANG_AFTER": str(after),
        "READY": str(ready),
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "hang.py"), *argv], env=full_env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 240
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"exited {proc.returncode} before the kill point: {proc.stderr.read()[-2000:]}"
            )
        if time.time() > deadline:
            proc.kill()
            raise AssertionError("never reached the kill point")
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


def _partials(folder: Path, name: str, pid: int) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(f".{name}.{pid}.")]


def test_sigkill_during_merge_keeps_the_previous_model(tiny_causal, tmp_path):
    from rerank_align.export.merge import merge
    from tests.export.conftest import make_adapter

    adapter = make_adapter(tiny_causal, tmp_path / "adapter")
    out = tmp_path / "merged"
    merge(adapter, out)
    good = snapshot(out)
    pid = _kill_inside(
        ["merge", str(adapter), "--out", str(out), "--overwrite"],
        "rerank_align.export.card:write_card",
        tmp_path,
    )
    assert snapshot(out) == good  # the new model was complete on disk except its card: never swapped in
    assert len(_partials(tmp_path, "merged", pid)) == 1  # its hidden temporary folder, named with its pid
    rio.clean_stale_partials(out)  # what the next merge / export does first
    assert leftovers(tmp_path) == [] and _partials(tmp_path, "merged", pid) == []


def test_sigkill_during_export_keeps_the_previous_export(tiny_causal, tmp_path):
    from rerank_align.export.export import main as export_main
    from rerank_align.scoring import Reranker

    Reranker.from_base(str(tiny_causal)).save_pretrained(tmp_path / "src")
    out = tmp_path / "seqcls"
    assert export_main([str(tmp_path / "src"), "--to", "seq-cls", "--out", str(out)]) == 0
    good = snapshot(out)
    argv = ["export", str(tmp_path / "src"), "--to", "seq-cls", "--out", str(out), "--overwrite"]
    pid = _kill_inside(argv, "rerank_align.export.export:plain_transformers_scores", tmp_path)
    assert snapshot(out) == good
    assert len(_partials(tmp_path, "seqcls", pid)) == 1
    rio.clean_stale_partials(out)
    assert leftovers(tmp_path) == []


def _suite(tmp: Path, col: Path) -> Path:
    suite = tmp / "suite.yaml"
    suite.write_text(
        f"name: s\ndepth: 20\ncollections:\n  - {{name: c, path: {col}, run: bm25_top100.run}}\n"
        "systems:\n  - {name: first, type: first_stage}\n  - {name: lex, type: lexical}\n"
        "baseline: first\nsignificance: {permutations: 100, bootstrap: 100}\n"
    )
    return suite


def test_sigkill_during_eval_then_the_rerun_resumes_from_the_cache(tmp_path):
    from rerank_align.evaluation.cache import ScoreCache
    from rerank_align.evaluation.config import load_suite
    from rerank_align.evaluation.runner import run_suite
    from tests.evaluation.conftest import make_collection

    col = make_collection(tmp_path / "col")
    suite = _suite(tmp_path, col)
    out = tmp_path / "eval"
    _kill_inside(
        ["eval", str(suite), "--out", str(out), "--no-progress"],
        "rerank_align.evaluation.cache:ScoreCache.put_many",
        tmp_path,
        after=3,
        env={"SET": "rerank_align.evaluation.runner:CHUNK_PAIRS=16"},
    )
    assert not (out / "results.json").exists() and leftovers(out) == []  # no half-written results
    cache = ScoreCache(out / "score_cache.sqlite")
    kept = cache.count()
    cache.close()
    fresh = run_suite(load_suite(suite), out=tmp_path / "fresh", show_progress=False, use_cache=False)
    total = fresh["timing"]["per_system"]["lex"]["c"]["scored"]
    assert 0 < kept < total  # the chunks committed before the kill (two of them), not the rest

    resumed = run_suite(load_suite(suite), out=out, show_progress=False)
    stats = resumed["timing"]["per_system"]["lex"]["c"]
    assert stats["cached"] == kept and stats["scored"] == total - kept
    assert resumed["collections"]["c"]["metrics"] == fresh["collections"]["c"]["metrics"]


def test_a_failed_eval_leaves_no_empty_score_cache(tmp_path):
    from rerank_align.evaluation.config import load_suite
    from rerank_align.evaluation.runner import run_suite
    from tests.evaluation.conftest import make_collection

    class Broken:
        name, fingerprint = "lex", "broken"

        def score_pairs(self, queries, docs):
            raise RuntimeError("scorer crashed")

    col = make_collection(tmp_path / "col")
    out = tmp_path / "eval"
    with pytest.raises(RuntimeError, match="scorer crashed"):
        run_suite(load_suite(_suite(tmp_path, col)), out=out, show_progress=False, scorers={"lex": Broken()})
    assert not out.exists()
