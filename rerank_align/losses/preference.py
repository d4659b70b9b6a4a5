"""Preference losses: the DPO sigmoid pure function, IRPO, Plackett-Luce listwise DPO, ADPA and DCKD.

Sequence-level losses take summed or mean per-sequence log-probabilities (policy and reference); token-level
losses (ADPA, DCKD) take *aligned* logits — ``logits[:, t]`` predicts ``labels[:, t]`` — so the causal shift is done
once, by :func:`rerank_align.losses.token_weights.token_logps` / :func:`~rerank_align.losses.token_weights.causal_shift`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import mean_over, neg_fill, plackett_luce_terms, stable_order
from .token_weights import token_logps

# --------------------------------------------------------------------------------------------------------------
# sequence level


def dpo_sigmoid(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> Tensor:
    """DPO sigmoid loss (Rafailov et al. 2023, arXiv 2305.18290) on sequence log-ratio differences::

        Δ = (log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))
        L = mean_b [ -(1 - ε) log σ(β Δ) - ε log σ(-β Δ) ]          (ε = label_smoothing, cDPO; 0 = DPO)

    All inputs ``(B,)``: per-sequence log-probabilities (summed over the completion tokens, as TRL's "sigmoid").

    Example:
        >>> z = torch.zeros(1)
        >>> round(float(dpo_sigmoid(z, z, z, z)), 4)  # log 2
        0.6931
    """
    delta = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    loss = (1 - label_smoothing) * F.softplus(-beta * delta) + label_smoothing * F.softplus(beta * delta)
    return loss.mean()


def mean_token_logps(logits: Tensor, input_ids: Tensor, mask: Tensor) -> Tensor:
    """Mean per-token log-probability of the masked tokens of ``input_ids`` (B,), causal shift done right.

    ``logits`` (B, T, V) are the outputs for ``input_ids`` (B, T); ``mask`` (B, T) marks the completion tokens on the
    ``input_ids`` positions. ``logits[:, t]`` predicts ``input_ids[:, t + 1]``.
    """
    lp, m = token_logps(logits, input_ids, mask)
    return lp.sum(dim=1) / m.sum(dim=1).clamp(min=1).to(lp.dtype)


def irpo_loss(
    policy_logps: Tensor,
    ref_logps: Tensor,
    relevance: Tensor,
    mask: Tensor,
    *,
    beta: float = 0.1,
    item_mean: Literal["all", "relevant"] = "all",
) -> Tensor:
    """IRPO — listwise preference optimisation with IR-metric weights (arXiv 2504.15477).

    For the K items of a query, ``r_i`` is the *mean-token* log-ratio of item i (policy minus reference, each from
    :func:`mean_token_logps`), ``rel_i`` its graded relevance and ``ideal_rank_i`` its 1-based rank in the ideal
    (relevance-descending, ties by position) order::

        w_i = (2^{rel_i} - 1) / log2(1 + ideal_rank_i)
        ℓ_i = w_i · softplus( LogMeanExp_{j ≠ i} β (r_j - r_i) )
        L_q = (1 / K_q) Σ_i ℓ_i                     item_mean="all" (default, the released ``rdpo_loss``)
        L_q = mean_{i: rel_i > 0} ℓ_i               item_mean="relevant"
        L   = mean over queries with a relevant item and at least two items

    ``K_q`` is the number of real items of query q. Items of relevance 0 have ``w_i = 0``: they only compete
    (they appear as j). The two averagings differ by the factor ``K_q / #relevant`` per query (×5 for relevances
    ``[1, 0, 0, 0, 0]``), so "all" weights queries with many relevant items more. The paper's equation does not fix
    the denominator; the released code divides by K (``losses.mean()`` over every item), hence the default. With one
    relevant item (rel 1) and one other item, ``item_mean="relevant"`` is exactly DPO (``w = 1``,
    ``softplus(β(r_l - r_w)) = -log σ(β(r_w - r_l))``) and the default is half of it.

    Two reference-implementation bugs are not repeated here (each has a test):

    * the reference gathers ``log_softmax(logits)[:, t]`` at ``input_ids[:, t]``, i.e. scores each token with the
      logits computed *at* that token instead of at the previous position; :func:`mean_token_logps` shifts
      (``logits[:, t]`` predicts ``input_ids[:, t + 1]``);
    * the reference removes the self-pair j = i by subtracting 100 from ``r_i - r_i`` before ``β ·``, which leaves
      ``exp(-100 β)`` in the sum (4.5e-5 at β = 0.1, 0.37 at β = 0.01); here j = i is excluded exactly.

    The batch reduction is the mean over queries (the reference sums its micro-batch's queries: a learning-rate
    scale).

    Shapes: ``policy_logps``, ``ref_logps``, ``relevance`` (B, K) float; ``mask`` (B, K) bool.

    Example:
        >>> r_pol = torch.tensor([[0.0, 0.0]]); r_ref = torch.zeros(1, 2)
        >>> rel = torch.tensor([[1.0, 0.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> round(float(irpo_loss(r_pol, r_ref, rel, m, item_mean="relevant")), 4)  # = DPO at Δ = 0: log 2
        0.6931
        >>> round(float(irpo_loss(r_pol, r_ref, rel, m)), 4)  # (log 2) / K with K = 2
        0.3466
    """
    if item_mean not in ("all", "relevant"):
        raise ValueError(f"item_mean must be 'all' or 'relevant', got {item_mean!r}")
    if policy_logps.shape != mask.shape or ref_logps.shape != mask.shape or relevance.shape != mask.shape:
        raise ValueError("policy_logps, ref_logps, relevance and mask must all be (B, K)")
    zero = torch.zeros_like(policy_logps)
    r = torch.where(mask, policy_logps - ref_logps, zero)
    rel = torch.where(mask, relevance.to(r.dtype), zero)
    order = stable_order(rel, mask)
    ideal_rank = torch.empty_like(order)
    ideal_rank.scatter_(
        1, order, torch.arange(1, r.shape[1] + 1, device=r.device).expand_as(order).contiguous()
    )
    w = (torch.pow(2.0, rel) - 1) / torch.log2(1.0 + ideal_rank.to(r.dtype))
    x = beta * (r[:, None, :] - r[:, :, None])  # x[b, i, j] = β (r_j - r_i)
    k = r.shape[1]
    eye = torch.eye(k, dtype=torch.bool, device=r.device)[None]
    others = mask[:, None, :] & ~eye
    n_others = others.sum(dim=2)
    x = torch.where(others, x, torch.full_like(x, neg_fill(x)))
    lme = torch.logsumexp(x, dim=2) - torch.log(n_others.clamp(min=1).to(r.dtype))
    term = w * F.softplus(lme)
    relevant = mask & (rel > 0) & (n_others > 0)
    term = torch.where(relevant, term, zero)
    n_rel = relevant.sum(dim=1)
    denom = n_rel if item_mean == "relevant" else mask.sum(dim=1)
    per_query = term.sum(dim=1) / denom.clamp(min=1).to(r.dtype)
    return mean_over(per_query, n_rel > 0)


def plackett_luce_dpo(
    policy_logps: Tensor,
    ref_logps: Tensor,
    ranking: Tensor,
    *,
    beta: float = 0.1,
) -> Tensor:
    """Plackett-Luce listwise DPO (Rafailov et al. 2023, arXiv 2305.18290, Appendix A.3 / Eq. 18).

    ``K`` responses of a prompt are ranked best first by ``ranking`` (B, K) (indices into the K responses, ``-1``
    padding at the end). With the implicit rewards ``u_i = β (log π(y_i) - log π_ref(y_i))`` the loss is the negative
    Plackett-Luce log-likelihood of the whole ranking, position by position::

        L_q = -Σ_{k=1}^{K_q} log( exp(u_{τ(k)}) / Σ_{j=k}^{K_q} exp(u_{τ(j)}) );   L = mean over queries

    For K = 2 this is exactly :func:`dpo_sigmoid`. For a listwise reranker, a response is a whole generated
    permutation and its ``log π`` is the sum of the identifier-token log-probabilities position by position
    (``token_logps(...)[0].sum(1)``), policy vs reference; any number of ranked permutations can be compared at once.

    Shapes: ``policy_logps``, ``ref_logps`` (B, K) per-sequence log-probabilities; ``ranking`` (B, K) long.

    Example:
        >>> z = torch.zeros(1, 2); rk = torch.tensor([[0, 1]])
        >>> round(float(plackett_luce_dpo(z, z, rk)), 4)  # log 2, like DPO at Δ = 0
        0.6931
    """
    if policy_logps.shape != ref_logps.shape or ranking.shape != policy_logps.shape:
        raise ValueError("policy_logps, ref_logps and ranking must all be (B, K)")
    valid = ranking >= 0
    idx = ranking.clamp(min=0).long()
    u = beta * (policy_logps - ref_logps)
    u_ord = torch.where(valid, u.gather(1, idx), torch.zeros_like(u))
    if bool((valid[:, 1:] & ~valid[:, :-1]).any()):
        raise ValueError("ranking must list its items first and pad with -1 at the end")
    terms = plackett_luce_terms(u_ord, valid)
    return mean_over(terms.sum(dim=1), valid.sum(dim=1) > 0)


# --------------------------------------------------------------------------------------------------------------
# token level (aligned logits: logits[:, t] predicts labels[:, t])

TopkTail = Literal["remaining", "renormalize", "truncate"]
"""How :func:`forward_kl_topk` treats the teacher's mass outside its top-k (see there)."""

AdvantageOn = Literal["rejected", "chosen", "both"]
"""Which sequences ADPA's advantage term is computed on (see :func:`adpa_loss`)."""

# the released ADPA code passes its advantages through a probability stabiliser that clamps them to this range
_RELEASED_CLAMP = (1e-8, 1.0 - 1e-8)


def _log_softmax(logits: Tensor) -> Tensor:
    return torch.log_softmax(
        logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, dim=-1
    )


def token_nll(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Mean negative log-likelihood of ``labels`` (B, T) under aligned ``logits`` (B, T, V) over the masked tokens
    of the whole batch (one mean over all tokens, as ``F.cross_entropy`` on the flattened batch)."""
    lp = _log_softmax(logits).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return mean_over(-lp, mask)


def adpa_advantage_term(
    student_logits: Tensor,
    mask: Tensor,
    teacher_topk_ids: Tensor,
    teacher_dpo_topk_logps: Tensor,
    teacher_ref_topk_logps: Tensor,
    *,
    released_clamp: bool = False,
) -> Tensor:
    """ADPA's expected token advantage ``mean_t Σ_{a ∈ top-k} π_θ(a|s_t) · A(s_t, a)`` (to be *maximised*).

    ``A(s_t, a) = log π_dpo-teacher(a|s_t) - log π_ref-teacher(a|s_t)``, given on the dpo-teacher's top-k support:
    ``teacher_topk_ids`` (B, T, k) and the two teachers' log-probabilities of those tokens (B, T, k), precomputed so
    that no (B, T, V) teacher tensor is ever held. ``π_θ`` is the student's full-vocabulary softmax, gathered at the
    top-k ids (not renormalised). Mean over the masked tokens of the whole batch.

    ``released_clamp=True`` clamps ``A`` to [1e-8, 1 − 1e-8] first, as the released code effectively does (its
    advantages go through the same probability stabiliser as its KL targets): negative advantages then count as 0
    and positive ones at most 1.
    """
    p = _log_softmax(student_logits).exp().gather(-1, teacher_topk_ids.long())
    adv = (teacher_dpo_topk_logps - teacher_ref_topk_logps).to(p.dtype)
    if released_clamp:
        adv = adv.clamp(*_RELEASED_CLAMP)
    return mean_over((p * adv).sum(dim=-1), mask)


def adpa_loss(
    chosen_logits: Tensor,
    chosen_labels: Tensor,
    chosen_mask: Tensor,
    rejected_logits: Tensor,
    rejected_mask: Tensor,
    rejected_teacher_topk_ids: Tensor,
    rejected_teacher_dpo_topk_logps: Tensor,
    rejected_teacher_ref_topk_logps: Tensor,
    chosen_teacher_topk_ids: Tensor | None = None,
    chosen_teacher_dpo_topk_logps: Tensor | None = None,
    chosen_teacher_ref_topk_logps: Tensor | None = None,
    *,
    lambda_sft: float = 1.0,
    lambda_adpa: float = 1.0,
    advantage_on: AdvantageOn = "rejected",
    released_clamp: bool = False,
    parts: dict[str, Tensor] | None = None,
) -> Tensor:
    """ADPA — Advantage-Guided Distillation for Preference Alignment (Gao et al. 2025, arXiv 2502.17927)::

        A(s_t, a) = log π_dpo-teacher(a | s_t) - log π_ref-teacher(a | s_t)      on the dpo-teacher's top-k tokens
        Adv(y)    = mean_{t ∈ y} Σ_{a ∈ top-k(s_t)} π_θ(a | s_t) · A(s_t, a)
        L         = λ_sft · NLL(y_w) - λ_adpa · Adv(y_l)                          advantage_on="rejected" (default)

    which sequences each term sees — the released code's semantics: the NLL is on the chosen answer ``y_w``; the
    advantage is on the *student's own generations*, which the released pipeline stores in the "rejected" column
    (samples of the SFT / DCKD student, not dispreferred human answers). So pass as ``rejected_*`` a sample of the
    student (e.g. ``preference_source: student``); the teachers' top-k must be computed on that same sequence.
    Options (not the released behaviour): ``advantage_on="chosen"`` puts ``Adv`` on ``y_w`` (``-λ_adpa · Adv(y_w)``),
    ``"both"`` uses ``½ (Adv(y_w) + Adv(y_l))``; both need the ``chosen_teacher_*`` tensors.

    Means are over all masked tokens of the batch (the released ``F.cross_entropy`` on the flattened batch and
    ``.sum(-1).mean()`` over the masked positions). Differences from the released code, on purpose:

    * the released advantage goes through a probability stabiliser that clamps it to [1e-8, 1 − 1e-8] (negative
      advantages vanish, positive ones are capped at 1); the paper's A is the plain log-ratio, the default here;
      ``released_clamp=True`` reproduces the clamp;
    * the released merge script floors both teachers' probabilities at 1e-7 and, for a top-k token missing from
      the reference teacher's own top-k, uses the *aligned* teacher's smallest top-k probability as the reference
      value; here the reference teacher's exact log-probability of each token is used;
    * the released code also clamps the student's probabilities to [1e-8, 1 − 1e-8] and adds a "remaining mass"
      bin whose target is (clamped) 0 — a contribution below 1e-8, left out here.

    ``parts``, when given, receives the detached ``nll`` and ``advantage`` (for logging).

    Shapes (aligned: ``logits[:, t]`` predicts ``labels[:, t]``): logits (B, T, V), labels (B, T) long, masks
    (B, T) bool, ``*_topk_ids`` (B, T, k) long, teacher log-probs (B, T, k).

    Example:
        >>> V = 3; lg = torch.zeros(1, 1, V); y = torch.tensor([[0]]); m = torch.ones(1, 1, dtype=torch.bool)
        >>> ids = torch.tensor([[[0, 1]]]); dpo = torch.log(torch.tensor([[[0.6, 0.3]]]))
        >>> ref = torch.log(torch.tensor([[[0.3, 0.3]]]))
        >>> # NLL = log 3; Adv = (1/3)·log 2 + (1/3)·0
        >>> round(float(adpa_loss(lg, y, m, lg, m, ids, dpo, ref)), 4)
        0.8676
    """
    if advantage_on not in ("rejected", "chosen", "both"):
        raise ValueError(f"advantage_on must be 'rejected', 'chosen' or 'both', got {advantage_on!r}")
    nll = token_nll(chosen_logits, chosen_labels, chosen_mask)

    def adv_of(
        logits: Tensor, mask: Tensor, ids: Tensor | None, dpo: Tensor | None, ref: Tensor | None
    ) -> Tensor:
        if ids is None or dpo is None or ref is None:
            raise ValueError(f"advantage_on={advantage_on!r} needs the chosen answer's teacher top-k tensors")
        return adpa_advantage_term(logits, mask, ids, dpo, ref, released_clamp=released_clamp)

    rejected = (
        rejected_logits,
        rejected_mask,
        rejected_teacher_topk_ids,
        rejected_teacher_dpo_topk_logps,
        rejected_teacher_ref_topk_logps,
    )
    chosen = (
        chosen_logits,
        chosen_mask,
        chosen_teacher_topk_ids,
        chosen_teacher_dpo_topk_logps,
        chosen_teacher_ref_topk_logps,
    )
    if advantage_on == "rejected":
        adv = adv_of(*rejected)
    elif advantage_on == "chosen":
        adv = adv_of(*chosen)
    else:
        adv = 0.5 * (adv_of(*chosen) + adv_of(*rejected))
    if parts is not None:
        parts.update(nll=nll.detach(), advantage=adv.detach())
    return lambda_sft * nll - lambda_adpa * adv


def forward_kl_topk(
    student_logits: Tensor,
    mask: Tensor,
    teacher_topk_ids: Tensor,
    teacher_topk_logps: Tensor,
    *,
    tail: TopkTail = "remaining",
) -> Tensor:
    """Forward KL(p_teacher || p_student) per token on the teacher's top-k support, mean over masked tokens.

    ``teacher_topk_logps`` are the teacher's full-vocabulary log-probabilities of its top-k tokens ``S``; the
    student's are its full-vocabulary ones gathered at ``S``. ``tail`` decides what happens to the mass outside S:

    * ``"remaining"`` (default, the released ADPA/DCKD code): a (k+1)-th bin holds each side's remaining mass,
      ``p_T(rest) = 1 - Σ_S p_T``, ``p_S(rest) = 1 - Σ_S p_S``::

          KL_t = Σ_{a ∈ S} p_T(a) log(p_T(a) / p_S(a)) + p_T(rest) log(p_T(rest) / p_S(rest))

      a true KL between two distributions over k+1 outcomes, hence >= 0 and <= the exact KL; equal to it at k = V;
    * ``"renormalize"``: the teacher renormalised over S, ``q_T = p_T / Σ_S p_T``;
      ``KL_t = Σ_S q_T log(q_T / p_S)`` (can exceed the exact KL many times: it asks the student to put all of
      the teacher's mass on S);
    * ``"truncate"``: ``Σ_S p_T log(p_T / p_S)`` without renormalising (not a divergence: can be negative).

    At k = V all three are the exact KL. The released code also clamps every probability to [1e-8, 1 − 1e-8] (the
    student's at 1e-7 from below) before the logarithm; here log-probabilities are used as they are, and only the
    student's remaining mass is floored at 1e-12 so the log stays finite: the values differ only where a
    probability is below ~1e-7.

    Example (V = 3, k = 1; the exact KL is 0.0225):
        >>> lt = torch.log(torch.tensor([[[0.5, 0.3, 0.2]]])); ls = torch.log(torch.tensor([[[0.4, 0.4, 0.2]]]))
        >>> m = torch.ones(1, 1, dtype=torch.bool); ids = torch.tensor([[[0]]])
        >>> round(float(forward_kl_topk(ls, m, ids, lt[..., :1])), 4)  # 0.5 log(0.5/0.4) + 0.5 log(0.5/0.6)
        0.0204
        >>> round(float(forward_kl_topk(ls, m, ids, lt[..., :1], tail="renormalize")), 4)  # log(1/0.4)
        0.9163
    """
    if tail not in ("remaining", "renormalize", "truncate"):
        raise ValueError(f"tail must be 'remaining', 'renormalize' or 'truncate', got {tail!r}")
    log_ps = _log_softmax(student_logits).gather(-1, teacher_topk_ids.long())
    log_pt = teacher_topk_logps.to(log_ps.dtype)
    if tail == "renormalize":
        log_pt = log_pt - torch.logsumexp(log_pt, dim=-1, keepdim=True)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=-1)
    if tail == "remaining":
        pt_rest = (1.0 - log_pt.exp().sum(dim=-1)).clamp(min=0.0)
        # 1 - Σ_S p_S without cancellation: -expm1(log Σ_S p_S)
        ps_rest = (-torch.expm1(torch.logsumexp(log_ps, dim=-1))).clamp(min=1e-12)
        safe_pt = pt_rest.clamp(min=1e-30)
        rest = torch.where(pt_rest > 0, pt_rest * (safe_pt.log() - ps_rest.log()), torch.zeros_like(pt_rest))
        kl = kl + rest
    return mean_over(kl, mask)


def dckd_loss(
    chosen_logits: Tensor,
    chosen_labels: Tensor,
    chosen_mask: Tensor,
    chosen_teacher_topk_ids: Tensor,
    chosen_teacher_topk_logps: Tensor,
    rejected_logits: Tensor,
    rejected_mask: Tensor,
    rejected_teacher_topk_ids: Tensor,
    rejected_teacher_topk_logps: Tensor,
    *,
    lambda_sft: float = 1.0,
    lambda_kd: float = 1.0,
    rejected_weight: float = 1.0,
    tail: TopkTail = "remaining",
    parts: dict[str, Tensor] | None = None,
) -> Tensor:
    """DCKD — Dual-Constrained Knowledge Distillation (the distillation baseline of ADPA, arXiv 2502.17927)::

        L = λ_sft · NLL(y_w) + λ_kd · ( KL(π_T || π_θ)(y_w) + w_l · KL(π_T || π_θ)(y_l) )

    each KL the token-mean forward KL to the preference-aligned teacher on the chosen and on the rejected response
    (:func:`forward_kl_topk` on the teacher's top-k support, by default with the released code's remaining-mass
    bin). ``w_l = rejected_weight`` (the released ``rejected_distil_weight`` relative to ``chosen_distil_weight``;
    1 = the paper's two equal constraints). Here y_l is a dispreferred answer of the preference data (the released
    DCKD pipeline precomputes the teacher on the data set's chosen and rejected responses). ``parts``, when given,
    receives the detached ``nll``, ``kl_chosen`` and ``kl_rejected``. All logits aligned with their labels.
    """
    nll = token_nll(chosen_logits, chosen_labels, chosen_mask)
    kl_w = forward_kl_topk(
        chosen_logits, chosen_mask, chosen_teacher_topk_ids, chosen_teacher_topk_logps, tail=tail
    )
    kl_l = forward_kl_topk(
        rejected_logits, rejected_mask, rejected_teacher_topk_ids, rejected_teacher_topk_logps, tail=tail
    )
    if parts is not None:
        parts.update(nll=nll.detach(), kl_chosen=kl_w.detach(), kl_rejected=kl_l.detach())
    return lambda_sft * nll + lambda_kd * (kl_w + rejected_weight * kl_l)
