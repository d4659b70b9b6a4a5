"""The SmolLM2 InfoNCE recipe, run by name on a tiny stand-in, fits the groups it is trained on: the loss that the
trainer sees falls, the LoRA weights move, and the saved model ranks through the evaluator's path (``Reranker`` with
the query prefix reused) as it ranked in training.

A check of the whole training path of the real-LLM quickstart (recipe → collator → score forward → loss → optimizer
and scheduler → save → evaluator), the diagnosis to run before any long job on the real model: a path that loses the
gradient, a schedule that spends every step in warm-up or a score that differs between trainer and evaluator fails
here in seconds."""

from __future__ import annotations

import json
import math

import torch


def _groups(recipe_path: str, overrides: list[str]):
    """The training groups exactly as the trainer's collator builds them: (query, [positive, negatives...])."""
    from rerank_align.config import load_recipe
    from rerank_align.train import load_training_records
    from rerank_align.training.collator import GroupCollator

    recipe = load_recipe(recipe_path, overrides)
    records = load_training_records(recipe)
    coll = GroupCollator(None, recipe.method.group_size, seed=recipe.seed)  # type: ignore[arg-type]
    return [(r["query"], coll.group(i, r)[0]) for i, r in enumerate(records)]


def _infonce(rr, groups) -> float:
    """Mean InfoNCE (positive first) of a reranker's scores over the groups, computed here from the scores."""
    losses = []
    for query, docs in groups:
        s = torch.tensor(rr.score(query, docs), dtype=torch.float64)
        losses.append(float(torch.logsumexp(s, 0) - s[0]))
    return sum(losses) / len(losses)


def test_infonce_recipe_fits_its_groups_and_the_evaluator_sees_it(named_cache, tmp_path):
    from safetensors.torch import load_file

    from rerank_align.cli import main
    from rerank_align.scoring import Reranker

    recipe = "recipes/smollm2-135m/infonce/lora.yaml"
    data = ["data.max_train_samples=2", "data.depth=5", "model.max_document_length=32"]
    out = tmp_path / "trained"
    rc = main(
        [
            "train", recipe, *data, f"training.output_dir={out}", "training.num_train_epochs=12",
            "training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=1",
            "training.learning_rate=3.0e-3", "peft.dropout=0.0",
        ]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 12

    # the LoRA B matrices start at zero: trained ones are not (the gradient reached the adapter)
    lora_b = {k: v for k, v in load_file(out / "adapter_model.safetensors").items() if "lora_B" in k}
    assert lora_b and all(v.abs().max() > 0 for v in lora_b.values())

    groups = _groups(recipe, data)
    assert len(groups) == 2 and all(len(d) == 4 for _, d in groups)
    from rerank_align.config import load_recipe

    m = load_recipe(recipe, data).model
    fields = ("template", "instruction", "max_query_length", "max_document_length", "max_length")
    base = Reranker.from_base(str(named_cache), kind="yesno", **{f: getattr(m, f) for f in fields})
    trained = Reranker.from_pretrained(out)
    trained.reuse_prefix = True  # the evaluator's path in the quickstart suites
    before, after = _infonce(base, groups), _infonce(trained, groups)
    assert before > 0.5 * math.log(4), before  # the untrained model does not already rank the positives first
    assert after < 0.25 * before, (before, after)
