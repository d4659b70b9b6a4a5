"""Unified weight / direction loss (arXiv 2510.14824): all four configurations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_align.losses import binary_ce, infonce, unified


def batch(seed, B=3, G=5, single=True):
    g = torch.Generator().manual_seed(seed)
    zy = torch.randn(B, G, generator=g, dtype=torch.float64)
    zn = torch.randn(B, G, generator=g, dtype=torch.float64)
    labels = torch.zeros(B, G, dtype=torch.float64)
    labels[:, 0] = 1.0
    if not single:
        labels[:, 1] = 1.0
    mask = torch.ones(B, G, dtype=torch.bool)
    mask[1, 3:] = False  # groups of different sizes
    return zy, zn, mask, labels


def grads(loss_fn, zy, zn):
    a, b = zy.clone().requires_grad_(True), zn.clone().requires_grad_(True)
    loss = loss_fn(a, b)
    loss.backward()
    zero = torch.zeros_like(zy)
    return loss.detach(), a.grad if a.grad is not None else zero, b.grad if b.grad is not None else zero


def test_sft_sft_is_the_summed_yes_no_cross_entropy_in_value_and_gradient():
    zy, zn, mask, labels = batch(0, single=False)
    n_per_query = mask.sum(1).double()
    v1, gy1, gn1 = grads(lambda a, b: unified(a, b, mask, labels, weight="sft", direction="sft"), zy, zn)

    # L_SFT sums over the group; binary_ce averages over pairs -> rescale per query
    def sft(a, b):
        per = []
        for q in range(a.shape[0]):
            m = mask[q : q + 1]
            per.append(binary_ce(a[q : q + 1], b[q : q + 1], m, labels[q : q + 1]) * n_per_query[q])
        return torch.stack(per).mean()

    v2, gy2, gn2 = grads(sft, zy, zn)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(gy1, gy2)
    torch.testing.assert_close(gn1, gn2)


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_cl_cl_is_infonce_on_the_yes_logit(temperature):
    zy, zn, mask, labels = batch(1)
    v1, gy1, gn1 = grads(
        lambda a, b: unified(a, b, mask, labels, weight="cl", direction="cl", temperature=temperature), zy, zn
    )
    v2, gy2, _ = grads(lambda a, b: infonce(a, mask, labels, temperature=temperature) + 0 * b.sum(), zy, zn)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(gy1, gy2)
    assert torch.all(gn1 == 0)  # direction "cl": no gradient through z_no


def expected_grads(zy, zn, mask, labels, weight, direction, temperature=1.0):
    """Hand-written gradient: -W+ ∂D+ + Σ W- ∂D-, mean over queries, with the paper's weights."""
    B, G = zy.shape
    gy = torch.zeros_like(zy)
    gn = torch.zeros_like(zn)
    for q in range(B):
        idx = [g for g in range(G) if mask[q, g]]
        pos = [g for g in idx if labels[q, g] > 0]
        negs = [g for g in idx if labels[q, g] <= 0]
        if weight == "sft":
            members = idx
            w = {
                g: (torch.sigmoid(zn[q, g] - zy[q, g]) if g in pos else torch.sigmoid(zy[q, g] - zn[q, g]))
                for g in idx
            }
        else:
            p0 = pos[0]
            members = [p0, *negs]
            c = torch.stack([zy[q, g] / temperature for g in members])
            sm = torch.softmax(c, 0)
            w = {g: ((1 - sm[i]) if g == p0 else sm[i]) / temperature for i, g in enumerate(members)}
        for g in members:
            sign = -1.0 if labels[q, g] > 0 else 1.0
            gy[q, g] += sign * w[g] / B
            if direction == "sft":
                gn[q, g] -= sign * w[g] / B
    return gy, gn


@pytest.mark.parametrize("weight", ["sft", "cl"])
@pytest.mark.parametrize("direction", ["sft", "cl"])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_all_four_configurations_have_the_papers_gradient(weight, direction, seed):
    zy, zn, mask, labels = batch(seed, single=(weight == "cl"))
    _, gy, gn = grads(
        lambda a, b: unified(a, b, mask, labels, weight=weight, direction=direction, temperature=0.7), zy, zn
    )
    ey, en = expected_grads(zy, zn, mask, labels, weight, direction, temperature=0.7)
    torch.testing.assert_close(gy, ey)
    torch.testing.assert_close(gn, en)


def test_value_is_the_weight_source_loss_and_padding_is_inert():
    zy, zn, mask, labels = batch(3)
    for weight in ("sft", "cl"):
        a = unified(zy, zn, mask, labels, weight=weight, direction="cl")
        b = unified(zy, zn, mask, labels, weight=weight, direction="sft")
        torch.testing.assert_close(a, b)  # direction changes the gradient only
        zy2 = torch.where(mask, zy, torch.full_like(zy, float("nan")))
        torch.testing.assert_close(
            unified(zy2, zn, mask, labels, weight=weight), unified(zy, zn, mask, labels, weight=weight)
        )


def test_hand_computed_mixed_configuration():
    # one query: d+ (z_yes=2, z_no=0), d- (z_yes=1, z_no=1); weight=sft, direction=cl
    zy = torch.tensor([[2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    zn = torch.tensor([[0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    m = torch.ones(1, 2, dtype=torch.bool)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    loss = unified(zy, zn, m, y, weight="sft", direction="cl")
    loss.backward()
    w_pos = 1 / (1 + math.exp(2.0))  # p(no|d+) = σ(0 - 2)
    w_neg = 0.5  # p(yes|d-) = σ(1 - 1)
    assert math.isclose(
        float(loss.detach()), F.softplus(torch.tensor(-2.0)).item() + math.log(2), rel_tol=1e-6
    )
    torch.testing.assert_close(zy.grad, torch.tensor([[-w_pos, w_neg]], dtype=torch.float64))
    assert zn.grad is None  # direction "cl": z_no is not in the graph of the gradient at all


@pytest.mark.parametrize("weight", ["sft", "cl"])
def test_gradcheck_matched_configurations(weight):
    zy, zn, mask, labels = batch(5, B=2, G=3)
    f = lambda a, b: unified(a, b, mask, labels, weight=weight, direction=weight)  # noqa: E731
    assert torch.autograd.gradcheck(f, (zy.clone().requires_grad_(), zn.clone().requires_grad_()))
