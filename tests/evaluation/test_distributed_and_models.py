"""2-process data parallel (torchrun, gloo on CPU) equals 1 process; real Rerankers through the evaluator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_align.evaluation.config import load_suite
from rerank_align.evaluation.runner import run_suite


@pytest.mark.distributed
def test_two_processes_equal_one(synth_suite, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nproc_per_node", "2", "-m", "rerank_align.evaluation.cli", str(synth_suite)]
    out2 = tmp_path / "two"
    proc = subprocess.run(
        [*cmd, "--out", str(out2), "--no-progress", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((out2 / "results.json").read_text())
    one = run_suite(load_suite(synth_suite), out=tmp_path / "one", show_progress=False, use_cache=False)
    assert two["timing"]["processes"] == 2
    assert two["collections"] == json.loads(json.dumps(one["collections"]))
    assert (out2 / "runs" / "synth" / "lex.run").read_text() == (
        tmp_path / "one" / "runs" / "synth" / "lex.run"
    ).read_text()


def test_real_rerankers_tiny_models(synth_suite, tmp_path):
    pytest.importorskip("rerank_align.scoring")
    from rerank_align.scoring import Reranker
    from rerank_align_testing.tiny import build_tiny_bert

    tiny = build_tiny_bert(tmp_path / "tiny-bert")
    saved = tmp_path / "saved"
    Reranker.from_base(str(tiny), kind="head", device="cpu").save_pretrained(saved)
    overrides = [
        f"systems.1={{name: base, type: base, path: {tiny}, contract: {{kind: head}}}}",
        f"systems.2={{name: saved, type: reranker, path: {saved}}}",
        "depth=10",
    ]
    raw_suite = load_suite(synth_suite, overrides[:1] + ["depth=10"])
    raw_suite.systems.append(
        load_suite(synth_suite, [overrides[1].replace("systems.2", "systems.1")]).systems[1]
    )
    first = run_suite(raw_suite, out=tmp_path / "o", show_progress=False, limit_queries=5)
    again = run_suite(raw_suite, out=tmp_path / "o", show_progress=False, limit_queries=5)
    assert again["timing"]["per_system"]["base"]["synth"]["scored"] == 0
    assert again["timing"]["per_system"]["saved"]["synth"]["scored"] == 0
    assert again["collections"]["synth"]["per_query"] == first["collections"]["synth"]["per_query"]
    info = first["systems"]["saved"]
    assert info["reranker_json_sha256"] and info["contract_kind"] == "head"
    # the saved model is the base model with its seeded head: same scores, same metrics
    pq = first["collections"]["synth"]["per_query"]
    assert pq["saved"] == pq["base"]
