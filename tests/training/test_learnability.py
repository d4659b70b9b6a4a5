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
    # The median gain over three training seeds. One seed is not enough: 8 epochs at these learning rates land
    # far apart from seed to seed, and where they land also depends on the CPU's float kernels (LambdaLoss on
    # the causal model, seeds 42, 1, 2, 3, 4, 5 on an AMX Xeon: +0.06, +0.35, +0.29, +0.20, +0.29, +0.42; seed 42
    # gained +0.24 to +0.39 on AVX2 EPYCs). An objective that does not learn gains ~0 under every seed.
    runs = [
        run_objective(model, objective, tmp_path, n_train=100, n_test=30, seed=s, num_train_epochs=8)
        for s in (42, 1, 2)
    ]
    gains = sorted(r["trained"] - r["untrained"] for r in runs)
    assert gains[1] >= 0.15, runs


def test_every_objective_is_in_the_acceptance_list():
    assert {obj for _, obj in ACCEPTANCE} == set(OBJECTIVES)
    assert ("bert", "sft_full_vocab") not in ACCEPTANCE  # yes/no answer tokens: causal kind only


@pytest.mark.slow
@pytest.mark.parametrize(("model", "objective"), ACCEPTANCE)
def test_objective_reaches_the_bar(model, objective, tmp_path):
    r = run_objective(model, objective, tmp_path)
    assert r["trained"] >= 0.9 > r["untrained"], r
