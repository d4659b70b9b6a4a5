"""Each preference / distillation loss against a hand computation (numpy, written here from the released code's
formula, independent of the package): ADPA and DCKD (SLIT-AI/ADPA, arXiv 2502.17927), IRPO (``rdpo_loss`` of
arXiv 2504.15477's code), LambdaLoss (allRank), KL distillation with Hinton's T².

Each example also pins the value the package gave before it followed the released code (the "before" numbers in
docs/losses.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rerank_align.losses import (
    adpa_loss,
    dckd_loss,
    forward_kl_topk,
    irpo_loss,
    kl_distill,
    lambdaloss,
)

F64 = torch.float64


def _t(x, dtype=F64):
    return torch.tensor(np.asarray(x), dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------
# top-k forward KL (DCKD): the released code's (k+1)-th "remaining mass" bin

P_T = np.array([0.5, 0.2, 0.15, 0.1, 0.05])  # teacher over a 5-token vocabulary
P_S = np.array([0.4, 0.25, 0.15, 0.12, 0.08])  # student
K = 3


def released_topk_kl(p_t: np.ndarray, p_s: np.ndarray, k: int) -> float:
    """One token of the released DCKD KL: teacher top-k probabilities + remaining mass, the student's probabilities
    of the same tokens + its remaining mass, every bin clamped to [1e-8, 1 - 1e-8], the student's at 1e-7 from
    below, then Σ target · (log target - log input)."""
    top = np.argsort(-p_t, kind="stable")[:k]
    target = np.append(p_t[top], 1 - p_t[top].sum())
    output = np.append(p_s[top], 1 - p_s[top].sum())
    target = np.clip(target, 1e-8, 1 - 1e-8)
    output = np.maximum(np.clip(output, 1e-8, 1 - 1e-8), 1e-7)
    return float((target * (np.log(target) - np.log(output))).sum())


def _kl_inputs(p_t, p_s, k):
    s_logits = _t(np.log(p_s))[None, None]
    top = np.argsort(-p_t, kind="stable")[:k]
    ids = torch.tensor(top)[None, None]
    return s_logits, ids, _t(np.log(p_t[top]))[None, None]


def test_topk_kl_default_is_the_released_remaining_mass_bin():
    exact = float((P_T * np.log(P_T / P_S)).sum())
    top = np.argsort(-P_T)[:K]
    q = P_T[top] / P_T[top].sum()
    renorm = float((q * np.log(q / P_S[top])).sum())
    released = released_topk_kl(P_T, P_S, K)
    assert (round(exact, 4), round(renorm, 4), round(released, 4)) == (0.0252, 0.2413, 0.0238)

    s_logits, ids, t_lp = _kl_inputs(P_T, P_S, K)
    m = torch.ones(1, 1, dtype=torch.bool)
    assert float(forward_kl_topk(s_logits, m, ids, t_lp)) == pytest.approx(released, abs=1e-9)
    # before: the default renormalised the teacher over its top-k (10× the exact KL here)
    assert float(forward_kl_topk(s_logits, m, ids, t_lp, tail="renormalize")) == pytest.approx(
        renorm, abs=1e-12
    )
    # the remaining-mass KL is a KL over k + 1 outcomes: never above the exact one, equal at k = V
    assert released <= exact
    s_logits, ids, t_lp = _kl_inputs(P_T, P_S, 5)
    for tail in ("remaining", "renormalize", "truncate"):
        assert float(forward_kl_topk(s_logits, m, ids, t_lp, tail=tail)) == pytest.approx(exact, abs=1e-9)


def test_dckd_loss_is_the_released_weighted_sum():
    rng = np.random.default_rng(0)
    V, T = 7, 3
    s_c, s_r = rng.normal(size=(T, V)), rng.normal(size=(T, V))
    t_c, t_r = rng.normal(size=(T, V)) * 2, rng.normal(size=(T, V)) * 2
    labels = rng.integers(0, V, size=T)

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    nll = float(np.mean([-np.log(softmax(s_c[t])[labels[t]]) for t in range(T)]))
    kl_c = np.mean([released_topk_kl(softmax(t_c[t]), softmax(s_c[t]), 3) for t in range(T)])
    kl_r = np.mean([released_topk_kl(softmax(t_r[t]), softmax(s_r[t]), 3) for t in range(T)])
    # released: sft_on_chosen · NLL + distillation_weight · (chosen_distil_weight · KL_c + rejected_distil_weight · KL_r)
    want = 0.5 * nll + 2.0 * (1.0 * kl_c + 0.3 * kl_r)

    def topk(t_logits):
        lp = torch.log_softmax(_t(t_logits), -1)
        v, i = lp.topk(3, dim=-1)
        return i[None], v[None]

    ids_c, lp_c = topk(t_c)
    ids_r, lp_r = topk(t_r)
    m = torch.ones(1, T, dtype=torch.bool)
    got = dckd_loss(
        _t(s_c)[None], torch.tensor(labels)[None], m, ids_c, lp_c, _t(s_r)[None], m, ids_r, lp_r,
        lambda_sft=0.5, lambda_kd=2.0, rejected_weight=0.3,
    )  # fmt: skip
    assert float(got) == pytest.approx(want, rel=1e-8)


# ---------------------------------------------------------------------------------------------------------------
# ADPA: NLL on the chosen answer, the teacher's advantage on the student's own sample ("rejected" column)

# student logits on 2 chosen tokens and 2 tokens of its own sample, V = 5
S_CHOSEN = np.array([[2.0, 0.5, 0.0, -1.0, 0.3], [0.1, 1.5, 0.2, 0.0, -0.5]])
Y_CHOSEN = np.array([0, 1])
S_SAMPLE = np.array([[0.3, 1.2, -0.4, 0.8, 0.0], [1.0, 0.0, 0.5, -0.2, 0.1]])
# aligned (DPO) and reference teachers' probabilities at each position of each sequence (same top-3 sets)
DPO_C = np.array([[0.55, 0.25, 0.1, 0.06, 0.04], [0.2, 0.5, 0.2, 0.05, 0.05]])
REF_C = np.array([[0.4, 0.3, 0.2, 0.06, 0.04], [0.3, 0.35, 0.25, 0.05, 0.05]])
DPO_S = np.array([[0.1, 0.6, 0.05, 0.2, 0.05], [0.5, 0.1, 0.3, 0.05, 0.05]])
REF_S = np.array([[0.2, 0.3, 0.05, 0.4, 0.05], [0.3, 0.2, 0.4, 0.05, 0.05]])
KA = 3


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _hand_adv(student_logits, dpo, ref, clamp):
    """mean_t Σ_{a ∈ dpo top-k} π_θ(a) · A(a), A = log(p_dpo / p_ref) (floors of the released merge at 1e-7);
    ``clamp``: the released stabiliser's [1e-8, 1 - 1e-8] on A and on π_θ."""
    vals = []
    for t in range(student_logits.shape[0]):
        p = _softmax(student_logits[t])
        top = np.argsort(-dpo[t], kind="stable")[:KA]
        a = np.log(np.maximum(dpo[t, top], 1e-7) / np.maximum(ref[t, top], 1e-7))
        pt = p[top]
        if clamp:
            a, pt = np.clip(a, 1e-8, 1 - 1e-8), np.clip(pt, 1e-8, 1 - 1e-8)
        vals.append(float((pt * a).sum()))
    return float(np.mean(vals))


def _adpa_tensors():
    def top(dpo, ref):
        lp_d, lp_r = _t(np.log(dpo)), _t(np.log(ref))
        v, i = lp_d.topk(KA, dim=-1)
        return i[None], v[None], lp_r.gather(-1, i)[None]

    m = torch.ones(1, 2, dtype=torch.bool)
    return (
        (_t(S_CHOSEN)[None], torch.tensor(Y_CHOSEN)[None], m, _t(S_SAMPLE)[None], m, *top(DPO_S, REF_S)),
        top(DPO_C, REF_C),
    )


def test_adpa_default_puts_the_advantage_on_the_students_sample():
    nll = float(np.mean([-np.log(_softmax(S_CHOSEN[t])[Y_CHOSEN[t]]) for t in range(2)]))
    adv_sample = _hand_adv(S_SAMPLE, DPO_S, REF_S, clamp=False)
    adv_chosen = _hand_adv(S_CHOSEN, DPO_C, REF_C, clamp=False)
    args, chosen_teacher = _adpa_tensors()

    after = float(adpa_loss(*args))
    assert after == pytest.approx(nll - adv_sample, rel=1e-10)
    # the two former losses of the same name, now options
    chosen = float(adpa_loss(*args, *chosen_teacher, advantage_on="chosen"))  # was losses.adpa_loss
    both = float(adpa_loss(*args, *chosen_teacher, advantage_on="both"))  # was the trainer's inline formula
    assert chosen == pytest.approx(nll - adv_chosen, rel=1e-10)
    assert both == pytest.approx(nll - 0.5 * (adv_chosen + adv_sample), rel=1e-10)
    assert (round(chosen, 4), round(both, 4), round(after, 4)) == (0.4372, 0.4898, 0.5423)
    with pytest.raises(ValueError, match="chosen answer's teacher"):
        adpa_loss(*args, advantage_on="both")


def test_adpa_released_clamp_reproduces_the_released_code():
    """The released code feeds its advantages through the probability stabiliser: A clamped to [1e-8, 1 - 1e-8]."""
    nll = float(np.mean([-np.log(_softmax(S_CHOSEN[t])[Y_CHOSEN[t]]) for t in range(2)]))
    released = 1.0 * nll + 1.0 * (-_hand_adv(S_SAMPLE, DPO_S, REF_S, clamp=True))
    args, _ = _adpa_tensors()
    # the released remaining-mass bin adds (student's rest mass) · 1e-8: below the tolerance
    assert float(adpa_loss(*args, released_clamp=True)) == pytest.approx(released, abs=1e-7)
    assert float(adpa_loss(*args)) != pytest.approx(released, abs=1e-3)  # the paper's unclamped A differs


# ---------------------------------------------------------------------------------------------------------------
# IRPO: the released rdpo_loss averages over all K items


def released_rdpo(r: np.ndarray, rel: np.ndarray, beta: float, self_pair: str) -> float:
    """rdpo_loss for one query: w = (2^rel - 1)/log2(1 + ideal rank); lme_i = log Σ_{j≠i} exp(β(r_j - r_i)) -
    log(K - 1); loss = -mean over all K items of w_i · log σ(-lme_i). ``self_pair="released"`` keeps the released
    code's way of dropping j = i (r_j - r_i - 100 on the diagonal, inside β ·); ``"exact"`` drops it."""
    k = len(r)
    rank = np.empty(k)
    rank[np.argsort(-rel, kind="stable")] = np.arange(1, k + 1)
    w = (2.0**rel - 1) / np.log2(1 + rank)
    diffs = r[None, :] - r[:, None]
    if self_pair == "released":
        x = beta * (diffs - 100 * np.eye(k))
        lme = np.log(np.exp(x).sum(1)) - np.log(k - 1)
    else:
        lme = np.array(
            [np.log(np.mean([np.exp(beta * diffs[i, j]) for j in range(k) if j != i])) for i in range(k)]
        )
    logsig = -np.log1p(np.exp(lme))
    return float(-(w * logsig).mean())


def test_irpo_default_is_the_released_average_over_all_items():
    r = np.array([0.3, -0.2, 0.5, 0.1, -0.4])
    rel = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    m = torch.ones(1, 5, dtype=torch.bool)
    pol, zero, relt = _t(r)[None], torch.zeros(1, 5, dtype=F64), _t(rel)[None]
    want = released_rdpo(r, rel, 0.1, "exact")
    after = float(irpo_loss(pol, zero, relt, m, beta=0.1))
    before = float(irpo_loss(pol, zero, relt, m, beta=0.1, item_mean="relevant"))
    assert after == pytest.approx(want, rel=1e-12)
    assert before == pytest.approx(5 * after, rel=1e-12)  # ×5: one relevant item among five
    # graded relevance, several relevant items
    rel2 = np.array([2.0, 0.0, 1.0, 3.0, 0.0])
    got = float(irpo_loss(pol, zero, _t(rel2)[None], m, beta=0.7))
    assert got == pytest.approx(released_rdpo(r, rel2, 0.7, "exact"), rel=1e-12)


def test_irpo_excludes_the_self_pair_exactly_where_the_released_code_leaves_exp_minus_100_beta():
    r = np.array([0.3, -0.2, 0.5, 0.1, -0.4])
    rel = np.array([2.0, 0.0, 1.0, 3.0, 0.0])
    m = torch.ones(1, 5, dtype=torch.bool)
    got = float(irpo_loss(_t(r)[None], torch.zeros(1, 5, dtype=F64), _t(rel)[None], m, beta=0.01))
    exact, released = released_rdpo(r, rel, 0.01, "exact"), released_rdpo(r, rel, 0.01, "released")
    assert got == pytest.approx(exact, rel=1e-12)
    assert abs(released - exact) > 1e-2  # at β = 0.01 the diagonal's exp(-1) is a fifth of a term


# ---------------------------------------------------------------------------------------------------------------
# LambdaLoss: allRank keeps every finite pair for ndcgLoss1


def allrank_lambda_loss(y_pred, y_true, scheme, k=None, sigma=1.0, mu=10.0, eps=1e-10):
    """allRank's lambdaLoss (reduction "sum", binary log) for one slate, written with numpy."""
    n = len(y_pred)
    k = n if k is None else k
    order = np.argsort(-y_pred, kind="stable")
    s = y_pred[order]
    y = y_true[order]
    ideal = np.sort(y_true)[::-1]
    pairs = np.isfinite(y[:, None] - y[None, :])
    if scheme != "ndcgLoss1":
        pairs &= (y[:, None] - y[None, :]) > 0
    at_k = np.zeros((n, n), dtype=bool)
    at_k[:k, :k] = True
    D = np.log2(1.0 + np.arange(1, n + 1))
    max_dcg = max(((2**ideal - 1) / D)[:k].sum(), eps)
    G = (2**y - 1) / max_dcg
    dist = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    with np.errstate(divide="ignore"):
        delta = np.abs(1 / D[np.maximum(dist - 1, 0)] - 1 / D[dist])
    delta[dist == 0] = 0
    lam = np.abs(1 / D[:, None] - 1 / D[None, :]) * np.abs(G[:, None] - G[None, :])
    w = {
        "ndcgLoss1": np.repeat((G / D)[:, None], n, 1),
        "ndcgLoss2": delta * np.abs(G[:, None] - G[None, :]),
        "lambdaRank": lam,
        "ndcgLoss2PP": mu * delta * np.abs(G[:, None] - G[None, :]) + lam,
    }[scheme]
    p = np.maximum(1 / (1 + np.exp(-sigma * (s[:, None] - s[None, :]))), eps) ** w
    return float(-np.log2(p)[pairs & at_k].sum())


def test_lambdaloss_ndcgloss1_keeps_every_pair_like_allrank():
    s, y = np.array([2.0, 1.0, 0.0]), np.array([0.0, 2.0, 1.0])
    m = torch.ones(1, 3, dtype=torch.bool)
    want = allrank_lambda_loss(s, y, "ndcgLoss1")
    after = float(lambdaloss(_t(s)[None], m, _t(y)[None], weighing_scheme="ndcgLoss1"))
    before = float(
        lambdaloss(_t(s)[None], m, _t(y)[None], weighing_scheme="ndcgLoss1", ndcgloss1_pairs="better")
    )
    assert (round(want, 4), round(after, 4), round(before, 4)) == (2.5657, 2.5657, 1.6458)
    assert after == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("scheme", ["ndcgLoss1", "ndcgLoss2", "lambdaRank", "ndcgLoss2PP"])
@pytest.mark.parametrize("k", [None, 3])
def test_lambdaloss_matches_allrank_on_random_slates(scheme, k):
    rng = np.random.default_rng(7)
    for _ in range(5):
        s = rng.normal(size=6)
        y = rng.integers(0, 4, size=6).astype(float)
        m = torch.ones(1, 6, dtype=torch.bool)
        got = float(lambdaloss(_t(s)[None], m, _t(y)[None], weighing_scheme=scheme, k=k or 0))
        assert got == pytest.approx(allrank_lambda_loss(s, y, scheme, k=k), rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# KL distillation: Hinton's T²


def test_kl_distill_hinton_t2_factor():
    s, t, tau = np.array([1.0, 0.0, -1.0]), np.array([2.0, 0.5, 0.0]), 3.0
    ps, pt = _softmax(s / tau), _softmax(t / tau)
    kl = float((pt * np.log(pt / ps)).sum())
    m = torch.ones(1, 3, dtype=torch.bool)
    assert float(kl_distill(_t(s)[None], m, _t(t)[None], temperature=tau)) == pytest.approx(kl, rel=1e-12)
    got = float(kl_distill(_t(s)[None], m, _t(t)[None], temperature=tau, hinton_t2=True))
    assert got == pytest.approx(tau**2 * kl, rel=1e-12)
    assert math.isclose(
        float(kl_distill(_t(s)[None], m, _t(t)[None], hinton_t2=True)),
        float(kl_distill(_t(s)[None], m, _t(t)[None])),
    )


def test_kl_distill_hard_label_term_is_hintons_cross_entropy_at_temperature_one():
    """Hinton et al.: soft term at τ (times τ²) plus w × the cross-entropy with the correct label at τ = 1, from the
    same logits. Written out with numpy for two groups, one with its positive in the middle, one padded."""
    s = np.array([[1.5, 0.2, -0.3, 0.9], [0.4, -1.0, 2.0, 0.0]])
    t = np.array([[0.7, 1.1, -0.2, 0.3], [1.0, 0.5, 0.1, 0.0]])
    y = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    m = np.array([[True, True, True, True], [True, True, True, False]])
    tau, w = 2.0, 0.3
    soft, hard = [], []
    for q in range(2):
        sq, tq, yq = s[q][m[q]], t[q][m[q]], y[q][m[q]]
        ps, pt = _softmax(sq / tau), _softmax(tq / tau)
        soft.append(tau**2 * float((pt * np.log(pt / ps)).sum()))
        hard.append(-float(np.log(_softmax(sq)[yq.argmax()])))
    want = np.mean(soft) + w * np.mean(hard)
    args = (_t(s), torch.tensor(m), _t(t), _t(y))
    got = float(kl_distill(*args, temperature=tau, hinton_t2=True, hard_label_weight=w))
    assert got == pytest.approx(want, rel=1e-12)
    assert float(kl_distill(*args, temperature=tau, hinton_t2=True)) == pytest.approx(
        np.mean(soft), rel=1e-12
    )
    with pytest.raises(ValueError, match="needs labels"):
        kl_distill(_t(s), torch.tensor(m), _t(t), hard_label_weight=w)
