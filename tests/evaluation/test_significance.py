"""Significance tests on constructed cases whose answers are computed by hand."""

from __future__ import annotations

import math

import pytest

from rerank_align.evaluation.significance import (
    bootstrap_ci,
    compare,
    holm,
    paired_t,
    randomisation_test,
    wins_ties_losses,
)

SYS = [0.5, 0.7, 0.9, 0.6]
BASE = [0.4, 0.5, 0.6, 0.6]  # d = [0.1, 0.2, 0.3, 0.0]


def test_paired_t_by_hand():
    # mean(d) = 0.15; sd(d, ddof=1) = sqrt(0.05 / 3); t = 0.15 / (sd / sqrt(4)) = 0.3 / sqrt(0.05 / 3)
    t, p = paired_t(SYS, BASE)
    assert t == pytest.approx(0.3 / math.sqrt(0.05 / 3), rel=1e-12)
    assert t == pytest.approx(2.3237900077244502, rel=1e-12)
    # two-sided p from Student's t with 3 degrees of freedom: 2 * (1 - F_3(t)), F_3 in closed form
    # closed form for nu=3: F(t) = 1/2 + (1/pi) * (t/sqrt(3) / (1 + t^2/3) + atan(t/sqrt(3)))
    f = 0.5 + (t / math.sqrt(3) / (1 + t * t / 3) + math.atan(t / math.sqrt(3))) / math.pi
    assert p == pytest.approx(2 * (1 - f), rel=1e-9)


def test_exact_randomisation_p_by_hand():
    # 2**4 = 16 sign patterns (the 0 difference doubles each); |mean| >= 0.15 only when 0.1, 0.2, 0.3 share a
    # sign: 2 patterns x 2 = 4 of 16 -> p = 0.25 exactly
    assert randomisation_test(SYS, BASE, permutations=10000) == pytest.approx(0.25, abs=1e-12)
    # one positive difference of 3: patterns with |sum| >= 3 out of 2**3 for d = [1, 1, 1] -> 2/8
    assert randomisation_test([1, 1, 1], [0, 0, 0], permutations=10000) == pytest.approx(0.25, abs=1e-12)


def test_monte_carlo_randomisation_is_seeded_and_never_zero():
    sys_v = [0.3 + 0.01 * i for i in range(30)]
    base = [0.1 + 0.01 * i for i in range(30)]
    p1 = randomisation_test(sys_v, base, permutations=999, seed=3)
    p2 = randomisation_test(sys_v, base, permutations=999, seed=3)
    # no resampled mean reaches the observed one; the observed pattern is counted, (0 + 1) / (999 + 1) per side,
    # and scipy's two-sided p doubles the smaller one-sided p
    assert p1 == p2 == pytest.approx(2 / 1000)


def test_all_equal_is_not_significant():
    assert paired_t([0.2, 0.3], [0.2, 0.3]) == (0.0, 1.0)
    assert randomisation_test([0.2, 0.3], [0.2, 0.3]) == 1.0


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.6, 0.6]) == [1.0, 1.0]


def test_wins_ties_losses_and_compare():
    assert wins_ties_losses(SYS, BASE) == (3, 1, 0)
    pq = {
        "base": {"m": dict(zip("abcd", BASE))},
        "good": {"m": dict(zip("abcd", SYS))},
        "same": {"m": dict(zip("abcd", BASE))},
    }
    out = compare(pq, "base", ["m"], permutations=10000)
    assert out["good"]["m"]["p_perm"] == pytest.approx(0.25)
    assert out["good"]["m"]["p_perm_holm"] == pytest.approx(0.5)  # 2 systems: 0.25 * 2
    assert out["same"]["m"]["p_perm_holm"] == 1.0
    assert out["good"]["m"]["delta"] == pytest.approx(0.15)
    assert (out["good"]["m"]["wins"], out["good"]["m"]["ties"], out["good"]["m"]["losses"]) == (3, 1, 0)


def test_bootstrap_ci_contains_mean_and_is_seeded():
    vals = [0.1, 0.4, 0.5, 0.9, 0.3, 0.7]
    lo, hi = bootstrap_ci(vals, resamples=500, seed=1)
    assert lo <= sum(vals) / len(vals) <= hi
    assert (lo, hi) == bootstrap_ci(vals, resamples=500, seed=1)
