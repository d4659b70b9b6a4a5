"""PG-Rank (arXiv 2310.04407): the REINFORCE loss with leave-one-out baseline against a hand computation, the
Gumbel sampler against the Plackett-Luce probabilities, and the expected-nDCG gradient direction."""

from __future__ import annotations

import math

import torch

from rerank_align.losses.policy_gradient import (
    ndcg_of_permutations,
    pg_rank,
    pg_rank_from_samples,
    sample_plackett_luce,
)


def test_pg_rank_from_samples_by_hand():
    s = torch.tensor([[1.0, 0.0, -1.0]], requires_grad=True)
    m = torch.ones(1, 3, dtype=torch.bool)
    rel = torch.tensor([[0.0, 2.0, 0.0]])
    perms = torch.tensor([[[0, 1, 2], [1, 0, 2], [2, 0, 1]]])
    loss = pg_rank_from_samples(s, m, rel, perms, k=10)

    def logp(order):
        x = [float(s[0, i]) for i in order]
        return sum(x[k] - math.log(sum(math.exp(v) for v in x[k:])) for k in range(len(x)))

    # nDCG: only doc 1 is relevant (gain 3): at rank r its nDCG is 1/log2(r + 1)
    r = [1 / math.log2(3), 1.0, 1 / math.log2(4)]
    lps = [logp(p) for p in perms[0].tolist()]
    adv = [r[i] - (sum(r) - r[i]) / 2 for i in range(3)]
    expected = -sum(a * lp for a, lp in zip(adv, lps)) / 3
    assert float(loss) == pytest_approx(expected)
    loss.backward()
    assert s.grad[0, 1] < 0  # descending the loss raises the relevant doc's score


def pytest_approx(x):
    import pytest

    return pytest.approx(x, rel=1e-5, abs=1e-7)


def test_ndcg_of_permutations_and_padding():
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    perms = torch.tensor([[[0, 1, 2], [1, 0, 2]]])
    out = ndcg_of_permutations(perms, labels, mask, k=10)
    assert out[0, 0] == pytest_approx(1.0)
    assert out[0, 1] == pytest_approx(1 / math.log2(3))


def test_gumbel_sampler_matches_plackett_luce_first_position():
    torch.manual_seed(0)
    s = torch.tensor([[2.0, 0.0, -1.0, 5.0]])
    m = torch.tensor([[True, True, True, False]])  # the padded item is never sampled ahead of real ones
    perms = sample_plackett_luce(s, m, 20000)
    assert (perms[0, :, 3] == 3).all()
    freq = torch.bincount(perms[0, :, 0], minlength=4).float() / 20000
    p = torch.softmax(s[0, :3], dim=0)
    assert torch.allclose(freq[:3], p, atol=0.015)


def test_pg_rank_gradient_raises_the_relevant_items_in_expectation():
    torch.manual_seed(0)
    s = torch.zeros(4, 6, requires_grad=True)
    m = torch.ones(4, 6, dtype=torch.bool)
    rel = torch.zeros(4, 6)
    rel[:, 2] = 2.0
    rel[:, 4] = 1.0
    pg_rank(s, m, rel, num_samples=64).backward()
    g = s.grad.mean(0)
    assert g[2] < g[4] < 0 < g[0]
