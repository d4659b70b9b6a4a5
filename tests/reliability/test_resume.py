"""Interrupted training: SIGKILL mid-run, resume from the last complete checkpoint, same parameters as no kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rerank_align import train
from rerank_align.config import load_recipe
from rerank_align.errors import RerankAlignError
from rerank_align.reliability import COMMIT_FILE, latest_complete, resolve_resume
from tests.reliability.conftest import tiny_recipe

REPO = Path(__file__).resolve().parents[2]
STEPS, EVERY, KILL_AFTER = 14, 3, 3  # 6 steps per epoch: the resumed run crosses two epochs


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_sigkill_then_resume_matches_uninterrupted(tiny_causal, syn_task, tmp_path):
    common = dict(max_steps=STEPS, save_strategy="steps", save_steps=EVERY, per_device_train_batch_size=4)
    # 1. the reference: one uninterrupted run
    ref_out = tmp_path / "ref"
    train.run(load_recipe(tiny_recipe(tiny_causal, syn_task, ref_out, tmp_path / "ref.yaml", **common)))

    # 2. the same recipe in a subprocess, killed with SIGKILL once checkpoint-KILL_AFTER is committed
    out = tmp_path / "killed"
    recipe = tiny_recipe(tiny_causal, syn_task, out, tmp_path / "killed.yaml", **common)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rerank_align.train", str(recipe)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    marker = out / f"checkpoint-{KILL_AFTER}" / COMMIT_FILE
    deadline = time.time() + 180
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert not (out / "train_summary.json").exists(), "the run finished before it could be killed"
    last = latest_complete(out)
    assert last is not None and int(last.name.split("-")[1]) < STEPS

    # a checkpoint cut short while saving (no commit file) is skipped by `true`, refused by path
    partial = out / f"checkpoint-{STEPS - 1}"
    partial.mkdir(exist_ok=True)
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)
    assert resolve_resume(True, out) == str(last)
    with pytest.raises(RerankAlignError) as info:
        resolve_resume(str(partial), out)
    assert "incomplete" in str(info.value) and str(last) in str(info.value)

    # 3. resume from the latest complete checkpoint (`true`), in this process
    summary = train.run(load_recipe(recipe, ["training.resume_from_checkpoint=true"]))
    assert summary["steps"] == STEPS
    diff = max_diff(weights(ref_out), weights(out))
    print(f"resume equality: max |Δθ| = {diff:.3e} (resumed from {last.name} of {STEPS} steps)")
    assert diff <= 1e-6
    moved = max_diff(weights(ref_out), weights(tiny_causal))
    assert moved > 1e-3  # training really changed the weights


def test_resume_without_checkpoint_is_one_line(tmp_path):
    with pytest.raises(RerankAlignError) as info:
        resolve_resume("latest", tmp_path)
    assert str(info.value).startswith("training.resume_from_checkpoint: no complete checkpoint")
    with pytest.raises(RerankAlignError, match="not found"):
        resolve_resume(str(tmp_path / "checkpoint-3"), tmp_path)
    assert resolve_resume(None, tmp_path) is None and resolve_resume(False, tmp_path) is None
