"""Learnability of the score objectives on the synthetic task (table and commands: docs/learnability.md).

Default run: two representative objectives (InfoNCE on the tiny BERT, LambdaLoss on the tiny causal LM) on a
reduced task must lift held-out nDCG@10 well above its untrained value. Slow run (the acceptance check): every
objective on every tiny model it applies to reaches held-out nDCG@10 ≥ 0.9 on the full task (200 training,
50 held-out queries) from an untrained value below it.
"""

from __future__ import annotations

import pytest

from rerank_align_testing.learnability import OBJECTIVES, applicable, run_objective

ACCEPTANCE = [(model, obj) for model in ("causal", "bert") for obj in applicable(model)]


@pytest.mark.parametrize(("model", "objective"), [("bert", "infonce"), ("causal", "lambdaloss")])
def test_objective_learns_on_a_reduced_task(model, objective, tmp_path):
    r = run_objective(model, objective, tmp_path, n_train=100, n_test=30, num_train_epochs=8)
    # Observed gains: +0.24 to +0.39 across runs. The tiny models are not rebuilt bit-identically from run to run
    # (docs/learnability.md), so the bar leaves room for that spread; an objective that does not learn gains ~0.
    assert r["trained"] >= r["untrained"] + 0.15, r


def test_every_objective_is_in_the_acceptance_list():
    assert {obj for _, obj in ACCEPTANCE} == set(OBJECTIVES)
    assert ("bert", "sft_full_vocab") not in ACCEPTANCE  # yes/no answer tokens: causal kind only


@pytest.mark.slow
@pytest.mark.parametrize(("model", "objective"), ACCEPTANCE)
def test_objective_reaches_the_bar(model, objective, tmp_path):
    r = run_objective(model, objective, tmp_path)
    assert r["trained"] >= 0.9 > r["untrained"], r
