"""Preference losses: DPO sigmoid, IRPO, Plackett-Luce DPO, ADPA, DCKD."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_align.losses import (
    adpa_loss,
    dckd_loss,
    dpo_sigmoid,
    forward_kl_topk,
    irpo_loss,
    mean_token_logps,
    plackett_luce_dpo,
)
from rerank_align_testing import reference_losses as ref

SETTINGS = settings(max_examples=25, deadline=None)
F64 = torch.float64


def rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ---------------------------------------------------------------------------------------------------------------
# DPO


def test_dpo_sigmoid_hand():
    pc, pr, rc, rr = (torch.tensor([v], dtype=F64) for v in (-1.0, -3.0, -2.0, -2.5))
    delta = (-1.0 + 2.0) - (-3.0 + 2.5)  # 1.5
    assert float(dpo_sigmoid(pc, pr, rc, rr, beta=0.5)) == pytest.approx(math.log1p(math.exp(-0.75)))
    smoothed = 0.9 * math.log1p(math.exp(-0.75)) + 0.1 * math.log1p(math.exp(0.75))
    assert float(dpo_sigmoid(pc, pr, rc, rr, beta=0.5, label_smoothing=0.1)) == pytest.approx(smoothed)
    assert delta == 1.5


def test_dpo_sigmoid_gradcheck():
    xs = tuple(rand(i, 3).requires_grad_() for i in range(4))
    assert torch.autograd.gradcheck(lambda *a: dpo_sigmoid(*a, beta=0.3), xs)


# ---------------------------------------------------------------------------------------------------------------
# IRPO


def irpo_batch(seed, B=3, K=5, distinct=False):
    g = torch.Generator().manual_seed(seed)
    pol = torch.randn(B, K, generator=g, dtype=F64)
    rf = torch.randn(B, K, generator=g, dtype=F64)
    if distinct:
        rel = torch.stack([torch.randperm(K, generator=g) for _ in range(B)]).to(F64)
    else:
        rel = torch.randint(0, 4, (B, K), generator=g).to(F64)
    mask = torch.ones(B, K, dtype=torch.bool)
    for b in range(B):
        n = int(torch.randint(2, K + 1, (1,), generator=g))
        mask[b, n:] = False
    rel[:, 0] = torch.clamp(rel[:, 0], min=1)
    return pol, rf, rel, mask


@pytest.mark.parametrize("beta", [0.1, 1.0, 3.0])
@SETTINGS
@given(a=st.floats(-5, 5), b=st.floats(-5, 5), c=st.floats(-5, 5), d=st.floats(-5, 5))
def test_irpo_equals_dpo_for_one_relevant_and_one_other(beta, a, b, c, d):
    t = lambda *v: torch.tensor([v], dtype=F64)  # noqa: E731
    m = torch.ones(1, 2, dtype=torch.bool)
    irpo = irpo_loss(t(a, b), t(c, d), t(1.0, 0.0), m, beta=beta, item_mean="relevant")
    dpo = dpo_sigmoid(t(a)[0], t(b)[0], t(c)[0], t(d)[0], beta=beta)
    torch.testing.assert_close(irpo, dpo)
    # the released averaging divides by all K = 2 items
    torch.testing.assert_close(irpo_loss(t(a, b), t(c, d), t(1.0, 0.0), m, beta=beta), dpo / 2)


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    beta=st.sampled_from([0.1, 1.0]),
    item_mean=st.sampled_from(["all", "relevant"]),
)
def test_irpo_matches_reference(seed, beta, item_mean):
    pol, rf, rel, mask = irpo_batch(seed)
    got = float(irpo_loss(pol, rf, rel, mask, beta=beta, item_mean=item_mean))
    want = ref.irpo(pol, rf, rel, mask, beta=beta, item_mean=item_mean)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_irpo_hand():
    # three items, relevance (2, 1, 0), log-ratios r = (0, 1, 2), beta = 1
    r = torch.tensor([[0.0, 1.0, 2.0]], dtype=F64)
    rel = torch.tensor([[2.0, 1.0, 0.0]], dtype=F64)
    m = torch.ones(1, 3, dtype=torch.bool)
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    lme = lambda xs: math.log(sum(math.exp(x) for x in xs) / len(xs))  # noqa: E731
    t0 = 3 / math.log2(2) * sp(lme([1.0, 2.0]))
    t1 = 1 / math.log2(3) * sp(lme([-1.0, 1.0]))
    got = float(irpo_loss(r, torch.zeros_like(r), rel, m, beta=1.0, item_mean="relevant"))
    assert got == pytest.approx((t0 + t1) / 2)
    assert float(irpo_loss(r, torch.zeros_like(r), rel, m, beta=1.0)) == pytest.approx((t0 + t1) / 3)


def test_irpo_padding_permutation_gradcheck():
    pol, rf, rel, mask = irpo_batch(3, distinct=True)
    base = irpo_loss(pol, rf, rel, mask)
    garbage = torch.full_like(pol, float("nan"))
    nan_pad = irpo_loss(torch.where(mask, pol, garbage), torch.where(mask, rf, garbage), rel, mask)
    torch.testing.assert_close(nan_pad, base)
    perm = torch.tensor([4, 2, 0, 3, 1])
    torch.testing.assert_close(irpo_loss(pol[:, perm], rf[:, perm], rel[:, perm], mask[:, perm]), base)
    f = lambda p, q: irpo_loss(p, q, rel, mask, beta=0.7)  # noqa: E731
    assert torch.autograd.gradcheck(f, (pol.clone().requires_grad_(), rf.clone().requires_grad_()))


def test_irpo_mean_token_logps_does_the_causal_shift():
    """The reference implementation scores token t with the logits at t (no shift); we use the logits at t - 1."""
    g = torch.Generator().manual_seed(0)
    V, T = 6, 6
    logits = torch.randn(2, T, V, generator=g, dtype=F64)
    ids = torch.randint(0, V, (2, T), generator=g)
    completion = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    got = mean_token_logps(logits, ids, completion)
    lsm = torch.log_softmax(logits, -1)
    for b in range(2):
        pos = [t for t in range(T) if completion[b, t]]
        shifted = sum(float(lsm[b, t - 1, ids[b, t]]) for t in pos) / len(pos)
        unshifted = sum(float(lsm[b, t, ids[b, t]]) for t in pos) / len(pos)
        assert float(got[b]) == pytest.approx(shifted)
        assert float(got[b]) != pytest.approx(unshifted)
    # a model that is certain of each *next* token: shifted log-probs are ~0, unshifted ones are not
    ids = torch.tensor([[1, 2, 3, 4, 5, 0]])
    sure = torch.full((1, T, V), -30.0, dtype=F64)
    for t in range(T - 1):
        sure[0, t, ids[0, t + 1]] = 30.0
    lp = mean_token_logps(sure, ids, torch.ones(1, T, dtype=torch.bool))
    assert float(lp[0]) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Plackett-Luce DPO


@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_plackett_luce_dpo_matches_reference_and_k2_is_dpo(seed):
    g = torch.Generator().manual_seed(seed)
    pol, rf = rand(seed, 3, 4), rand(seed + 1, 3, 4)
    ranking = torch.stack([torch.randperm(4, generator=g) for _ in range(3)])
    ranking[1, 2:] = -1
    got = float(plackett_luce_dpo(pol, rf, ranking, beta=0.5))
    assert got == pytest.approx(ref.plackett_luce_dpo(pol, rf, ranking, beta=0.5), rel=1e-9)
    two = torch.tensor([[0, 1]])
    pl = plackett_luce_dpo(pol[:1, :2], rf[:1, :2], two, beta=0.5)
    dpo = dpo_sigmoid(pol[:1, 0], pol[:1, 1], rf[:1, 0], rf[:1, 1], beta=0.5)
    torch.testing.assert_close(pl, dpo)


def test_plackett_luce_dpo_hand_padding_gradcheck():
    u = torch.tensor([[1.0, 0.0, 2.0]], dtype=F64)
    ranking = torch.tensor([[2, 0, 1]])
    lse = lambda xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    hand = (lse([2.0, 1.0, 0.0]) - 2.0) + (lse([1.0, 0.0]) - 1.0)
    assert float(plackett_luce_dpo(u, torch.zeros_like(u), ranking, beta=1.0)) == pytest.approx(hand)
    # padding: an extra response that is not ranked (-1) changes nothing
    u_pad = torch.cat([u, torch.full((1, 1), float("nan"), dtype=F64)], 1)
    r_pad = torch.tensor([[2, 0, 1, -1]])
    assert float(plackett_luce_dpo(u_pad, torch.zeros_like(u_pad), r_pad, beta=1.0)) == pytest.approx(hand)
    with pytest.raises(ValueError):
        plackett_luce_dpo(u_pad, torch.zeros_like(u_pad), torch.tensor([[2, -1, 0, 1]]))
    f = lambda p, q: plackett_luce_dpo(p, q, ranking, beta=0.3)  # noqa: E731
    assert torch.autograd.gradcheck(f, (rand(1, 1, 3).requires_grad_(), rand(2, 1, 3).requires_grad_()))


# ---------------------------------------------------------------------------------------------------------------
# ADPA / DCKD (token level, aligned logits)


def token_batch(seed, B=2, T=4, V=6, k=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=F64)
    labels = torch.randint(0, V, (B, T), generator=g)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])[:B, :T]
    t_logits = torch.randn(B, T, V, generator=g, dtype=F64)
    r_logits = torch.randn(B, T, V, generator=g, dtype=F64)
    t_lp = torch.log_softmax(t_logits, -1)
    r_lp = torch.log_softmax(r_logits, -1)
    ids = t_lp.topk(k, dim=-1).indices
    return logits, labels, mask, ids, t_lp.gather(-1, ids), r_lp.gather(-1, ids), t_lp, r_lp


def test_adpa_loop_reference_and_gradcheck():
    """Default: NLL on the chosen answer, advantage on the rejected (= the student's own sample)."""
    logits, labels, mask, *_ = token_batch(0)
    r_logits, _, r_mask, ids, dpo_lp, ref_lp, *_ = token_batch(5)
    got = float(
        adpa_loss(
            logits, labels, mask, r_logits, r_mask, ids, dpo_lp, ref_lp, lambda_sft=0.7, lambda_adpa=2.0
        )
    )
    nll, n = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            if mask[b, t]:
                nll -= math.log(float(torch.softmax(logits[b, t], -1)[labels[b, t]]))
                n += 1
    adv, m = 0.0, 0
    for b in range(r_logits.shape[0]):
        for t in range(r_logits.shape[1]):
            if r_mask[b, t]:
                p = torch.softmax(r_logits[b, t], -1)
                adv += sum(
                    float(p[ids[b, t, j]]) * float(dpo_lp[b, t, j] - ref_lp[b, t, j])
                    for j in range(ids.shape[-1])
                )
                m += 1
    assert got == pytest.approx(0.7 * nll / n - 2.0 * adv / m, rel=1e-9)
    f = lambda x, y: adpa_loss(x, labels, mask, y, r_mask, ids, dpo_lp, ref_lp)  # noqa: E731
    assert torch.autograd.gradcheck(f, (logits.clone().requires_grad_(), r_logits.clone().requires_grad_()))


def test_adpa_full_support_equals_the_full_vocabulary_formula():
    logits, labels, mask, _, _, _, t_lp, r_lp = token_batch(1)
    V = logits.shape[-1]
    ids = torch.arange(V).expand(*logits.shape[:2], V)
    got = adpa_loss(logits, labels, mask, logits, mask, ids, t_lp, r_lp, lambda_sft=0.0)
    full = (torch.softmax(logits, -1) * (t_lp - r_lp)).sum(-1)
    torch.testing.assert_close(got, -full[mask].mean())


def test_dckd_full_support_is_exact_forward_kl_and_gradcheck():
    logits, labels, mask, _, _, _, t_lp, _ = token_batch(2)
    rej_logits, _, rej_mask, _, _, _, rt_lp, _ = token_batch(3)
    V = logits.shape[-1]
    ids = torch.arange(V).expand(*logits.shape[:2], V)
    got = dckd_loss(
        logits, labels, mask, ids, t_lp, rej_logits, rej_mask, ids, rt_lp, lambda_sft=0.5, lambda_kd=2.0
    )

    def kl(st_logits, tlp, m):
        per = F.kl_div(torch.log_softmax(st_logits, -1), tlp, log_target=True, reduction="none").sum(-1)
        return per[m].mean()

    nll = F.cross_entropy(logits[mask], labels[mask])
    want = 0.5 * nll + 2.0 * (kl(logits, t_lp, mask) + kl(rej_logits, rt_lp, rej_mask))
    torch.testing.assert_close(got, want)
    f = lambda a, b: dckd_loss(a, labels, mask, ids, t_lp, b, rej_mask, ids, rt_lp)  # noqa: E731
    assert torch.autograd.gradcheck(f, (logits.clone().requires_grad_(), rej_logits.clone().requires_grad_()))


def test_forward_kl_topk_renormalises_the_teacher():
    logits, _, mask, ids, dpo_lp, *_ = token_batch(4)
    got = float(forward_kl_topk(logits, mask, ids, dpo_lp, tail="renormalize"))
    lps = torch.log_softmax(logits, -1)
    total, n = 0.0, 0
    for b in range(2):
        for t in range(4):
            if not mask[b, t]:
                continue
            pt = torch.softmax(dpo_lp[b, t], -1)  # renormalised over the top-k
            total += float((pt * (pt.log() - lps[b, t, ids[b, t]])).sum())
            n += 1
    assert got == pytest.approx(total / n, rel=1e-9)
    # padded tokens (even nan logits) change nothing
    bad = torch.where(mask[..., None], logits, torch.full_like(logits, float("nan")))
    assert float(forward_kl_topk(bad, mask, ids, dpo_lp, tail="renormalize")) == pytest.approx(got)
    assert float(forward_kl_topk(bad, mask, ids, dpo_lp)) == pytest.approx(
        float(forward_kl_topk(logits, mask, ids, dpo_lp))
    )
