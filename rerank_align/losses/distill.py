"""Distillation losses from a teacher's scores: Margin-MSE, KL / ListNet distillation, PLD and CPRD.

All take the student's ``scores`` and the teacher's ``teacher_scores`` (B, G) (logits / raw scores, never
probabilities), the ``mask`` and, where the paper needs the gold label, ``labels``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import (
    check_group,
    clean,
    masked_log_softmax,
    mean_over,
    plackett_luce_terms,
    stable_order,
)
from .contrastive import infonce_multi


def margin_mse(scores: Tensor, mask: Tensor, labels: Tensor, teacher_scores: Tensor) -> Tensor:
    """Margin-MSE (Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation", arXiv 2010.02666)::

        L = mean over (q, d+, d-) triples of [ (s(q,d+) - s(q,d-)) - (t(q,d+) - t(q,d-)) ]²

    In a group, every (positive, negative) pair is a triple: positives are real candidates with ``label > 0``,
    negatives those with ``label <= 0``. Averaged per query over its pairs, then over queries with at least one
    pair (for equal-sized groups with one positive, the plain mean over all triples).

    Example:
        >>> s = torch.tensor([[3.0, 1.0, 0.0]]); t = torch.tensor([[5.0, 4.0, 1.0]])
        >>> m = torch.ones(1, 3, dtype=torch.bool); y = torch.tensor([[1.0, 0.0, 0.0]])
        >>> float(margin_mse(s, m, y, t))  # ((2 - 1)² + (3 - 4)²) / 2
        1.0
    """
    check_group(scores, mask, labels, teacher_scores)
    s = clean(scores, mask)
    t = clean(teacher_scores, mask)
    lab = clean(labels, mask)
    pos = mask & (lab > 0)
    neg = mask & (lab <= 0)
    pair = pos[:, :, None] & neg[:, None, :]
    ds = s[:, :, None] - s[:, None, :]
    dt = t[:, :, None] - t[:, None, :]
    sq = torch.where(pair, (ds - dt) ** 2, torch.zeros_like(ds))
    n = pair.sum(dim=(1, 2))
    per_query = sq.sum(dim=(1, 2)) / n.clamp(min=1).to(s.dtype)
    return mean_over(per_query, n > 0)


def kl_distill(
    scores: Tensor,
    mask: Tensor,
    teacher_scores: Tensor,
    labels: Tensor | None = None,
    *,
    temperature: float = 1.0,
    hinton_t2: bool = False,
    hard_label_weight: float = 0.0,
) -> Tensor:
    """KL distillation against the teacher's group softmax (Hinton et al. 2015, arXiv 1503.02531, listwise),
    optionally mixed with the hard-label objective of the same paper::

        p_t = softmax(t / τ),  p_s = softmax(s / τ)   over the real candidates of the query
        L_q = c · KL(p_t || p_s) = c · Σ_i p_t,i (log p_t,i - log p_s,i);   L_soft = mean over queries
        L   = L_soft + w · L_hard,   L_hard = group cross-entropy of softmax(s) (τ = 1) against the labels

    ``c = 1`` by default; ``hinton_t2=True`` sets ``c = τ²`` (Hinton et al.: the soft-target gradients scale as
    1/τ², so multiplying by τ² keeps their size when τ changes and when the loss is mixed with a hard-label term).
    The default stays 1 because the loss is mostly used alone, where τ² only rescales the learning rate; at τ = 1
    the two agree.

    ``w = hard_label_weight`` (default 0: soft targets alone). Hinton et al. add "the cross entropy with the
    correct labels ... using exactly the same logits ... at a temperature of 1", with a lower weight than the soft
    term. Here the correct labels are the judged ones (``labels > 0``): ``L_hard`` is
    :func:`~rerank_align.losses.contrastive.infonce_multi`, the group softmax cross-entropy of each positive
    against the negatives, averaged over queries with a positive. It matters when the teacher is weaker than the
    judgements, e.g. a BM25 + bi-encoder ensemble that often ranks the judged document below a negative.

    Same gradient as :func:`listnet_distill` at ``w = 0``; the value differs by the teacher entropy (0 at a
    perfect student).

    Shapes: ``scores``, ``teacher_scores``, ``labels`` (B, G); ``mask`` (B, G) bool.

    Example:
        >>> s = torch.tensor([[1.0, 1.0]]); t = torch.tensor([[1.0, 1.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> float(kl_distill(s, m, t))
        0.0
        >>> y = torch.tensor([[1.0, 0.0]])  # the soft term is 0; the hard term is -log(1/2)
        >>> round(float(kl_distill(s, m, t, y, hard_label_weight=0.5)), 4)  # 0.5 · log 2
        0.3466
    """
    check_group(scores, mask, teacher_scores)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if hard_label_weight < 0:
        raise ValueError(f"hard_label_weight must be >= 0, got {hard_label_weight}")
    log_ps = masked_log_softmax(clean(scores, mask) / temperature, mask)
    log_pt = masked_log_softmax(clean(teacher_scores, mask) / temperature, mask)
    per = torch.where(mask, log_pt.exp() * (log_pt - log_ps), torch.zeros_like(log_ps))
    scale = temperature**2 if hinton_t2 else 1.0
    loss = scale * mean_over(per.sum(dim=1), mask.any(dim=1))
    if hard_label_weight == 0:
        return loss
    if labels is None:
        raise ValueError("hard_label_weight > 0 needs labels (the judged positives of each group)")
    return loss + hard_label_weight * infonce_multi(scores, mask, labels)


def listnet_distill(
    scores: Tensor, mask: Tensor, teacher_scores: Tensor, *, temperature: float = 1.0
) -> Tensor:
    """ListNet distillation (Cao et al. 2007, top-one probabilities) against the teacher's softmax::

        L_q = -Σ_i softmax(t/τ)_i · log softmax(s/τ)_i;   L = mean over queries

    Example:
        >>> s = torch.tensor([[0.0, 0.0]]); t = torch.tensor([[3.0, 3.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> round(float(listnet_distill(s, m, t)), 4)  # log 2
        0.6931
    """
    check_group(scores, mask, teacher_scores)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_ps = masked_log_softmax(clean(scores, mask) / temperature, mask)
    pt = masked_log_softmax(clean(teacher_scores, mask) / temperature, mask).exp()
    per = torch.where(mask, -pt * log_ps, torch.zeros_like(log_ps))
    return mean_over(per.sum(dim=1), mask.any(dim=1))


def pld(
    scores: Tensor, mask: Tensor, labels: Tensor, teacher_scores: Tensor, *, temperature: float = 1.0
) -> Tensor:
    """Plackett-Luce Distillation (PLD, arXiv 2506.12542).

    The teacher-optimal permutation π* puts the gold candidate(s) first (``label > 0``, among themselves in teacher
    order) followed by every other candidate in descending teacher score. Each position k of π* contributes a
    Plackett-Luce "choose π*_k among the rest" cross-entropy weighted by the teacher's confidence in that item::

        α_k = softmax(t / τ)_{π*_k}                       (from teacher *logits*, not probabilities)
        L_q = Σ_k α_k · ( log Σ_{j >= k} exp(s_{π*_j}) - s_{π*_k} );   L = mean over queries

    Pass the teacher logits: the weights are ``softmax(t/τ)``; passing probabilities would flatten them.

    Example:
        >>> s = torch.tensor([[0.0, 0.0]]); t = torch.tensor([[0.0, 0.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> y = torch.tensor([[1.0, 0.0]])
        >>> round(float(pld(s, m, y, t)), 4)  # 0.5 · log 2 + 0.5 · 0
        0.3466
    """
    check_group(scores, mask, labels, teacher_scores)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    s = clean(scores, mask)
    t = clean(teacher_scores, mask)
    gold = (mask & (clean(labels, mask) > 0)).to(s.dtype)
    # teacher order, then stable gold-first: ties in gold keep the teacher order
    by_teacher = stable_order(t, mask)
    order = by_teacher.gather(1, stable_order(gold.gather(1, by_teacher), mask.gather(1, by_teacher)))
    alpha = masked_log_softmax(t / temperature, mask).exp().gather(1, order)
    m_ord = mask.gather(1, order)
    terms = plackett_luce_terms(s.gather(1, order), m_ord)
    per = torch.where(m_ord, alpha * terms, torch.zeros_like(terms))
    return mean_over(per.sum(dim=1), mask.any(dim=1))


def cprd(scores: Tensor, mask: Tensor, labels: Tensor, teacher_scores: Tensor, *, top_k: int = 8) -> Tensor:
    """Contrastive Partial Ranking Distillation (CPRD, arXiv 2407.07479): a ListMLE-style loss over the teacher's
    order of the top-K hard negatives only.

    The target is a *partial* ranking: the positive(s) (``label > 0``) first, then the K negatives the teacher scores
    highest, in teacher order; the remaining negatives are not ordered among themselves but stay in every
    denominator (the contrastive part). With π the first ``n_pos + K`` positions of that order and R all real
    candidates::

        L_q = Σ_{k=1}^{n_pos+K} ( log Σ_{j ∈ R not yet placed before k} exp(s_j) - s_{π_k} );  L = mean over queries

    i.e. the negative Plackett-Luce log-likelihood of a top-(n_pos+K) list. ``top_k <= 0`` orders all negatives
    (plain ListMLE on the gold-first teacher order).

    Example:
        >>> s = torch.tensor([[0.0, 0.0, 0.0]]); t = torch.tensor([[0.0, 2.0, 1.0]])
        >>> m = torch.ones(1, 3, dtype=torch.bool); y = torch.tensor([[1.0, 0.0, 0.0]])
        >>> round(float(cprd(s, m, y, t, top_k=1)), 4)  # log 3 + log 2
        1.7918
    """
    check_group(scores, mask, labels, teacher_scores)
    s = clean(scores, mask)
    t = clean(teacher_scores, mask)
    gold = (mask & (clean(labels, mask) > 0)).to(s.dtype)
    by_teacher = stable_order(t, mask)
    order = by_teacher.gather(1, stable_order(gold.gather(1, by_teacher), mask.gather(1, by_teacher)))
    m_ord = mask.gather(1, order)
    terms = plackett_luce_terms(s.gather(1, order), m_ord)
    n_gold = gold.sum(dim=1, keepdim=True).long()
    positions = torch.arange(s.shape[1], device=s.device)[None, :]
    if top_k > 0:
        ranked = m_ord & (positions < n_gold + top_k)
    else:
        ranked = m_ord
    per = torch.where(ranked, terms, torch.zeros_like(terms))
    return mean_over(per.sum(dim=1), mask.any(dim=1))
