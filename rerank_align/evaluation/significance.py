"""Paired significance per query against a baseline, Holm correction, wins/ties/losses, bootstrap CIs.

All tests are two-sided and paired over the same queries:

- paired t-test: ``scipy.stats.ttest_rel(system, baseline)``; ``t = mean(d) / (sd(d, ddof=1) / sqrt(n))``.
- randomisation (sign-flip) test: under H0 each per-query difference ``d_i`` is equally likely to have either sign;
  the statistic is ``mean(d)``; exact over all ``2**n`` sign patterns when that is at most ``permutations``, else
  ``permutations`` random patterns from a seeded generator (``scipy.stats.permutation_test``,
  ``permutation_type="samples"``); the Monte-Carlo p-value counts the observed pattern, so it is never 0
  (two-sided = twice the smaller one-sided p, capped at 1, as scipy computes it).
- Holm–Bonferroni across the systems compared with the baseline (per collection and metric).
- When every difference is 0 both p-values are 1 (no evidence of a difference), not NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TIE_TOLERANCE = 1e-12


def paired_t(system: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """``(t, p)`` of the two-sided paired t-test; ``(0.0, 1.0)`` when all differences are equal to 0."""
    from scipy import stats

    a, b = np.asarray(system, float), np.asarray(baseline, float)
    d = a - b
    if len(d) < 2 or np.all(np.abs(d) <= TIE_TOLERANCE):
        return 0.0, 1.0
    if np.allclose(d, d[0]):  # constant non-zero difference: infinite t
        return math.copysign(math.inf, d[0]), 0.0
    res = stats.ttest_rel(a, b)
    return float(res.statistic), float(res.pvalue)


def randomisation_test(
    system: Sequence[float], baseline: Sequence[float], *, permutations: int = 10000, seed: int = 0
) -> float:
    """Two-sided paired sign-flip randomisation test of ``mean(system - baseline) == 0``; returns p."""
    from scipy import stats

    d = np.asarray(system, float) - np.asarray(baseline, float)
    if len(d) == 0 or np.all(np.abs(d) <= TIE_TOLERANCE):
        return 1.0
    res = stats.permutation_test(
        (d,),
        lambda x, axis=-1: np.mean(x, axis=axis),
        permutation_type="samples",
        n_resamples=permutations,
        alternative="two-sided",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(min(1.0, res.pvalue))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def wins_ties_losses(system: Sequence[float], baseline: Sequence[float]) -> tuple[int, int, int]:
    d = np.asarray(system, float) - np.asarray(baseline, float)
    return (
        int((d > TIE_TOLERANCE).sum()),
        int((np.abs(d) <= TIE_TOLERANCE).sum()),
        int((d < -TIE_TOLERANCE).sum()),
    )


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple:
    """Percentile bootstrap confidence interval of the mean over queries."""
    x = np.asarray(values, float)
    if len(x) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def compare(
    per_query: dict[str, dict[str, dict[str, float]]],
    baseline: str,
    metrics: Sequence[str],
    *,
    permutations: int = 10000,
    seed: int = 0,
) -> dict[str, dict[str, dict]]:
    """``per_query[system][metric][qid]`` → ``{system: {metric: {delta, t, p_t, p_perm, *_holm, wins, ...}}}``."""
    others = [s for s in per_query if s != baseline]
    out: dict[str, dict[str, dict]] = {s: {} for s in others}
    for metric in metrics:
        qids = sorted(per_query[baseline][metric])
        base = [per_query[baseline][metric][q] for q in qids]
        for s in others:
            sys_v = [per_query[s][metric][q] for q in qids]
            t, p_t = paired_t(sys_v, base)
            p_perm = randomisation_test(sys_v, base, permutations=permutations, seed=seed)
            w, ti, lo = wins_ties_losses(sys_v, base)
            delta = float(np.mean(sys_v) - np.mean(base)) if qids else 0.0
            out[s][metric] = {
                "delta": delta,
                "t": t,
                "p_t": p_t,
                "p_perm": p_perm,
                "wins": w,
                "ties": ti,
                "losses": lo,
            }
        for key in ("p_t", "p_perm"):
            adj = holm([out[s][metric][key] for s in others])
            for s, p in zip(others, adj):
                out[s][metric][f"{key}_holm"] = p
    return out
