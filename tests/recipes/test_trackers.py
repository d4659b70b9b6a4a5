"""Trackers: ``training.report_to`` is checked at parse time, and a 2-step run logs its loss and the in-training
ranking metrics (before training and after each evaluation) to TensorBoard."""

from __future__ import annotations

import importlib.util

import pytest

from tests.recipes.conftest import REPO, tiny_overrides

RECIPE = REPO / "recipes" / "qwen3-0.6b" / "contrastive" / "full.yaml"


def test_misspelt_tracker_is_a_parse_error_naming_the_key():
    from rerank_align.config import load_recipe
    from rerank_align.errors import RecipeError

    with pytest.raises(
        RecipeError,
        match=r"training\.report_to: unknown tracker 'tensorbord' \(did you mean 'tensorboard'\?\)",
    ):
        load_recipe(RECIPE, ["training.report_to=tensorbord"])
    with pytest.raises(RecipeError, match="expected a tracker name"):
        load_recipe(RECIPE, ["training.report_to=3"])
    assert load_recipe(RECIPE, ["training.report_to=none"]).training["report_to"] == "none"


@pytest.mark.parametrize("tracker", ["trackio", "wandb"])
def test_missing_tracker_names_the_install_command(tracker):
    from rerank_align.config import load_recipe
    from rerank_align.errors import RecipeError

    if importlib.util.find_spec(tracker) is not None:
        pytest.skip(f"{tracker} is installed here")
    with pytest.raises(RecipeError) as e:
        load_recipe(RECIPE, [f"training.report_to=[{tracker}]"])
    assert str(e.value) == (
        f"training.report_to: tracker '{tracker}' is not installed (install it: pip install 'rerank-align[{tracker}]')"
    )


def test_tensorboard_run_logs_loss_and_ranking_metrics(
    tiny_causal, tiny_bert, recipe_task, tmp_path, monkeypatch
):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rerank_align import train
    from rerank_align.config import load_recipe

    out, logs = tmp_path / "out", tmp_path / "tb"
    ov = tiny_overrides(load_recipe(RECIPE), tiny_causal, tiny_bert, recipe_task, out)
    ov += [
        f"eval.beir={recipe_task['beir']}",
        "eval.split=test",
        f"eval.run={recipe_task['run']}",
        "eval.depth=10",
        "eval.every_n_steps=1",
        "eval.at_start=true",
        "training.report_to=tensorboard",
    ]
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(logs))  # transformers 5: the TensorBoard folder
    summary = train.run(load_recipe(RECIPE, ov))
    assert summary["steps"] == 2
    events = list(logs.rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "eval/nDCG@10", "train/learning_rate"} <= tags, tags
    steps = [e.step for e in acc.Scalars("eval/nDCG@10")]
    assert steps[0] == 0 and 2 in steps  # before training, and at the last step
    assert [e.value for e in acc.Scalars("eval/nDCG@10")][0] == pytest.approx(
        summary["eval_at_start"]["nDCG@10"]
    )


@pytest.mark.parametrize("rank,printed", [("0", True), ("1", False)])
def test_only_rank_zero_prints_the_summary(rank, printed, monkeypatch, capsys):
    from rerank_align import train

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr(train, "run", lambda recipe, **_: {"steps": 2, "marker": "summary-of-the-run"})
    assert train.main([str(RECIPE)]) == 0
    assert ("summary-of-the-run" in capsys.readouterr().out) is printed
