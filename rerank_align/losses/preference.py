"""Preference losses: the DPO sigmoid pure function, IRPO, Plackett-Luce listwise DPO, ADPA and DCKD.

Sequence-level losses take summed or mean per-sequence log-probabilities (policy and reference); token-level
losses (ADPA, DCKD) take *aligned* logits — ``logits[:, t]`` predicts ``labels[:, t]`` — so the causal shift is done
once, by :func:`rerank_align.losses.token_weights.token_logps` / :func:`~rerank_align.losses.token_weights.causal_shift`.
"""

from __future__ import annotations

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
) -> Tensor:
    """IRPO — listwise preference optimisation with IR-metric weights (arXiv 2504.15477).

    For the K items of a query, ``r_i`` is the *mean-token* log-ratio of item i (policy minus reference, each from
    :func:`mean_token_logps`), ``rel_i`` its graded relevance and ``ideal_rank_i`` its 1-based rank in the ideal
    (relevance-descending, ties by position) order::

        w_i = (2^{rel_i} - 1) / log2(1 + ideal_rank_i)
        L_q = mean_{i: rel_i > 0} w_i · softplus( LogMeanExp_{j ≠ i} β (r_j - r_i) )
        L   = mean over queries with a relevant item and at least two items

    Items of relevance 0 never get a term of their own; they only compete (they appear as j). With one relevant item
    (rel 1) and one other item this is exactly DPO: ``w = 1``, ``softplus(β(r_l - r_w)) = -log σ(β(r_w - r_l))``.

    Known reference bug not repeated here: the reference implementation gathers ``log_softmax(logits)[:, t]`` at
    ``input_ids[:, t]``, i.e. it scores each token with the logits computed *at* that token instead of at the
    previous position. :func:`mean_token_logps` shifts (``logits[:, t]`` predicts ``input_ids[:, t + 1]``).

    Shapes: ``policy_logps``, ``ref_logps``, ``relevance`` (B, K) float; ``mask`` (B, K) bool.

    Example:
        >>> r_pol = torch.tensor([[0.0, 0.0]]); r_ref = torch.zeros(1, 2)
        >>> rel = torch.tensor([[1.0, 0.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> round(float(irpo_loss(r_pol, r_ref, rel, m)), 4)  # = DPO at Δ = 0: log 2
        0.6931
    """
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
    per_query = term.sum(dim=1) / n_rel.clamp(min=1).to(r.dtype)
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


def _log_softmax(logits: Tensor) -> Tensor:
    return torch.log_softmax(
        logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, dim=-1
    )


def token_nll(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Mean negative log-likelihood of ``labels`` (B, T) under aligned ``logits`` (B, T, V) over the masked tokens."""
    lp = _log_softmax(logits).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return mean_over(-lp, mask)


def adpa_advantage_term(
    student_logits: Tensor,
    mask: Tensor,
    teacher_topk_ids: Tensor,
    teacher_dpo_topk_logps: Tensor,
    teacher_ref_topk_logps: Tensor,
) -> Tensor:
    """ADPA's expected token advantage ``mean_t Σ_{a ∈ top-k} π_θ(a|s_t) · A(s_t, a)`` (to be *maximised*).

    ``A(s_t, a) = log π_dpo-teacher(a|s_t) - log π_ref-teacher(a|s_t)``, given on the dpo-teacher's top-k support:
    ``teacher_topk_ids`` (B, T, k) and the two teachers' log-probabilities of those tokens (B, T, k), precomputed so
    that no (B, T, V) teacher tensor is ever held. ``π_θ`` is the student's full-vocabulary softmax, gathered at the
    top-k ids (not renormalised). Mean over the masked tokens.
    """
    p = _log_softmax(student_logits).exp().gather(-1, teacher_topk_ids.long())
    adv = (teacher_dpo_topk_logps - teacher_ref_topk_logps).to(p.dtype)
    return mean_over((p * adv).sum(dim=-1), mask)


def adpa_loss(
    student_logits: Tensor,
    labels: Tensor,
    mask: Tensor,
    teacher_topk_ids: Tensor,
    teacher_dpo_topk_logps: Tensor,
    teacher_ref_topk_logps: Tensor,
    *,
    lambda_sft: float = 1.0,
    lambda_adpa: float = 1.0,
) -> Tensor:
    """ADPA — Advantage-Guided Distillation for Preference Alignment (arXiv 2502.17927)::

        A(s_t, a) = log π_dpo-teacher(a | s_t) - log π_ref-teacher(a | s_t)
        L = λ_sft · NLL(y_w) - λ_adpa · mean_t Σ_a π_θ(a | s_t) · A(s_t, a)

    with Σ_a over the dpo-teacher's top-k tokens at each step (bounded memory; see :func:`adpa_advantage_term`).
    Here both terms are computed on the same sequence (the chosen response y_w); a trainer that wants the advantage
    on other sequences combines :func:`token_nll` and :func:`adpa_advantage_term` itself.

    Shapes (aligned, ``student_logits[:, t]`` predicts ``labels[:, t]``): ``student_logits`` (B, T, V), ``labels``
    (B, T) long, ``mask`` (B, T) bool, ``teacher_topk_ids`` (B, T, k) long, teacher log-probs (B, T, k).
    """
    nll = token_nll(student_logits, labels, mask)
    adv = adpa_advantage_term(
        student_logits, mask, teacher_topk_ids, teacher_dpo_topk_logps, teacher_ref_topk_logps
    )
    return lambda_sft * nll - lambda_adpa * adv


def forward_kl_topk(
    student_logits: Tensor,
    mask: Tensor,
    teacher_topk_ids: Tensor,
    teacher_topk_logps: Tensor,
    *,
    renormalize: bool = True,
) -> Tensor:
    """Forward KL(p_teacher || p_student) per token on the teacher's top-k support, mean over masked tokens::

        KL_t = Σ_{a ∈ top-k} p_T(a) (log p_T(a) - log p_S(a))

    ``renormalize=True`` renormalises the teacher's top-k probabilities to sum to 1 (with k = V it is the exact
    KL); the student's log-probabilities are always the full-vocabulary ones.
    """
    log_pt = teacher_topk_logps.to(
        student_logits.dtype if student_logits.is_floating_point() else torch.float32
    )
    if renormalize:
        log_pt = log_pt - torch.logsumexp(log_pt, dim=-1, keepdim=True)
    log_ps = _log_softmax(student_logits).gather(-1, teacher_topk_ids.long())
    log_pt = log_pt.to(log_ps.dtype)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=-1)
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
    renormalize: bool = True,
) -> Tensor:
    """DCKD — Dual-Constrained Knowledge Distillation (the distillation baseline of ADPA, arXiv 2502.17927)::

        L = λ_sft · NLL(y_w) + λ_kd · ( KL(π_T || π_θ)(y_w) + KL(π_T || π_θ)(y_l) )

    where each KL is the token-mean forward KL to the (preference-aligned) teacher on the chosen and on the rejected
    response (:func:`forward_kl_topk`, on the teacher's top-k support). All logits aligned with their labels.
    """
    nll = token_nll(chosen_logits, chosen_labels, chosen_mask)
    kl_w = forward_kl_topk(
        chosen_logits,
        chosen_mask,
        chosen_teacher_topk_ids,
        chosen_teacher_topk_logps,
        renormalize=renormalize,
    )
    kl_l = forward_kl_topk(
        rejected_logits,
        rejected_mask,
        rejected_teacher_topk_ids,
        rejected_teacher_topk_logps,
        renormalize=renormalize,
    )
    return lambda_sft * nll + lambda_kd * (kl_w + kl_l)
