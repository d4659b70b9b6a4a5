"""A NaN / inf loss stops training with one line (step + example ids) and leaves a loadable checkpoint."""

from __future__ import annotations

import functools
import re

import pytest
import torch

from rerank_align.losses import SCORE_LOSSES
from rerank_align.scoring import Reranker
from tests.reliability.conftest import tiny_recipe


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_loss_stops_saves_and_names_the_batch(
    tiny_causal, syn_task, tmp_path, monkeypatch, capsys, bad
):
    real = SCORE_LOSSES["infonce"]
    calls = {"n": 0}

    @functools.wraps(real)
    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * bad if calls["n"] == 3 else loss  # the third batch goes non-finite

    monkeypatch.setitem(SCORE_LOSSES, "infonce", poisoned)
    out = tmp_path / "run"
    recipe = tiny_recipe(tiny_causal, syn_task, out, tmp_path / "r.yaml", max_steps=6)
    from rerank_align.cli import main

    rc = main(["train", str(recipe)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("error:")]  # (progress bars share stderr)
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: training step 3: loss is ")
    assert ("nan" if bad != bad else "inf") in line
    ids = re.search(r"examples \[([^\]]*)\]", line)
    assert ids and len(ids.group(1).split(",")) == 2  # the two example ids of the batch
    fault = out / "checkpoint-fault-step3"
    assert f"saved to {fault}" in line
    assert not (out / "train_summary.json").exists()
    # the fault checkpoint holds the finite weights from before the bad step and serves scores
    scores = Reranker.from_pretrained(fault).score("query", ["a doc", "another doc"])
    assert all(torch.isfinite(torch.tensor(scores)))


def test_nonfinite_loss_also_stops_the_sft_trainers(tiny_causal, syn_task, tmp_path, monkeypatch, capsys):
    """The same guard lives in the shared trainer mixin, so TRL-based trainers (SFT yes/no) stop the same way."""
    from trl import SFTTrainer

    real = SFTTrainer.compute_loss
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = real(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(SFTTrainer, "compute_loss", poisoned)
    out = tmp_path / "sft"
    recipe = tiny_recipe(tiny_causal, syn_task, out, tmp_path / "r.yaml", max_steps=4)
    from rerank_align.cli import main

    rc = main(["train", str(recipe), "method.name=sft_yesno"])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: training step 2: loss is nan") and "checkpoint-fault-step2" in lines[0]
    Reranker.from_pretrained(out / "checkpoint-fault-step2").score("query", ["a doc"])
