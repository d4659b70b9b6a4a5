"""Learning-to-rank losses on graded labels: RankNet, ListNet, ListMLE, PListMLE, LambdaLoss and the 2-Wasserstein
listwise loss.

Labels are graded relevance (higher = better). Ties in labels: pairwise losses ignore tied pairs; permutation
losses (ListMLE, PListMLE) break ties by input position (stable sort), so their value depends on the order of tied
candidates — exactly as any implementation that sorts the labels.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import (
    check_group,
    clean,
    masked_log_softmax,
    mean_over,
    plackett_luce_terms,
    stable_order,
)


def ranknet(
    scores: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    sigma: float = 1.0,
    weighting: Literal["none", "first"] = "none",
) -> Tensor:
    """RankNet (Burges et al. 2005, "Learning to Rank using Gradient Descent") over all pairs with different labels::

        L_q = (1/|P_q|) Σ_{(i,j): y_i > y_j} w_ij · log(1 + exp(-σ (s_i - s_j)));   L = mean over queries with a pair

    ``weighting="first"``: FIRST's pair weights (Reddy et al. 2024, "FIRST: Faster Improved Listwise Reranking with
    Single Token Decoding", arXiv 2406.15657) ``w_ij = 1 / (r_i + r_j)``, where r is the 1-based rank of a candidate
    in the target order (competition rank: ``r_i = 1 + #{j: y_j > y_i}``), so mistakes near the top cost more.
    ``"none"``: ``w_ij = 1``. For a full target permutation pass ``labels = G - position``.

    Example:
        >>> s = torch.tensor([[1.0, 1.0]]); y = torch.tensor([[1.0, 0.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> round(float(ranknet(s, m, y)), 4)  # log 2
        0.6931
    """
    check_group(scores, mask, labels)
    if weighting not in ("none", "first"):
        raise ValueError(f"weighting must be 'none' or 'first', got {weighting!r}")
    s = clean(scores, mask)
    y = clean(labels, mask)
    pair = mask[:, :, None] & mask[:, None, :] & (y[:, :, None] > y[:, None, :])
    per = F.softplus(-sigma * (s[:, :, None] - s[:, None, :]))
    if weighting == "first":
        better = (mask[:, None, :] & (y[:, None, :] > y[:, :, None])).sum(dim=2)  # #{j: y_j > y_i}
        r = (better + 1).to(s.dtype)
        per = per / (r[:, :, None] + r[:, None, :])
    per = torch.where(pair, per, torch.zeros_like(per))
    n = pair.sum(dim=(1, 2))
    return mean_over(per.sum(dim=(1, 2)) / n.clamp(min=1).to(s.dtype), n > 0)


def listnet(
    scores: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    label_temperature: float = 1.0,
) -> Tensor:
    """ListNet (Cao et al. 2007, "Learning to Rank: From Pairwise Approach to Listwise Approach"), top-one
    probabilities::

        L_q = -Σ_i softmax(y / τ_y)_i · log softmax(s / τ)_i;   L = mean over queries

    Example:
        >>> s = torch.tensor([[0.0, 0.0]]); y = torch.tensor([[1.0, 1.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> round(float(listnet(s, m, y)), 4)  # log 2
        0.6931
    """
    check_group(scores, mask, labels)
    log_ps = masked_log_softmax(clean(scores, mask) / temperature, mask)
    py = masked_log_softmax(clean(labels, mask) / label_temperature, mask).exp()
    per = torch.where(mask, -py * log_ps, torch.zeros_like(log_ps))
    return mean_over(per.sum(dim=1), mask.any(dim=1))


def _ordered_terms(scores: Tensor, mask: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    s = clean(scores, mask)
    order = stable_order(clean(labels, mask), mask)
    m_ord = mask.gather(1, order)
    return plackett_luce_terms(s.gather(1, order), m_ord), m_ord


def listmle(scores: Tensor, mask: Tensor, labels: Tensor) -> Tensor:
    """ListMLE (Xia et al. 2008, "Listwise Approach to Learning to Rank: Theory and Algorithm"): the negative
    Plackett-Luce log-likelihood of the label order π (labels descending, ties by position)::

        L_q = Σ_{k=1}^{n_q} ( log Σ_{j=k}^{n_q} exp(s_{π_j}) - s_{π_k} );   L = mean over queries

    Only the ``n_q`` real candidates enter the sums: padded slots are never in a normaliser.

    Example:
        >>> s = torch.tensor([[0.0, 0.0, 7.0]]); y = torch.tensor([[1.0, 0.0, 5.0]])
        >>> m = torch.tensor([[True, True, False]])
        >>> round(float(listmle(s, m, y)), 4)  # log 2 (the padded slot never counts)
        0.6931
    """
    check_group(scores, mask, labels)
    terms, _ = _ordered_terms(scores, mask, labels)
    return mean_over(terms.sum(dim=1), mask.any(dim=1))


def plistmle(scores: Tensor, mask: Tensor, labels: Tensor) -> Tensor:
    """Position-aware ListMLE (PListMLE; Lan et al. 2014, "Position-Aware ListMLE: A Sequential Learning Process
    for Ranking", UAI)::

        L_q = Σ_{k=1}^{n_q} α(k) · ( log Σ_{j=k}^{n_q} exp(s_{π_j}) - s_{π_k} ),   α(k) = 2^{n_q - k} - 1

    with ``n_q`` the number of *real* candidates of query q. Known reference bug not repeated here: implementations
    that take the list length from the padded tensor (``α(k) = 2^{G - k} - 1`` and/or normalisers that include padded
    slots) change the loss of a query when it is padded; here neither the weights nor the normalisers see padding
    (a test checks that padding a query leaves its loss unchanged). The weights grow as 2^{n_q}; keep groups under
    ~120 candidates in float32.

    Example:
        >>> s = torch.tensor([[0.0, 0.0, 0.0, 9.0]]); y = torch.tensor([[2.0, 1.0, 0.0, 0.0]])
        >>> m = torch.tensor([[True, True, True, False]])
        >>> round(float(plistmle(s, m, y)), 4)  # 3·log 3 + 1·log 2 + 0
        3.989
    """
    check_group(scores, mask, labels)
    terms, m_ord = _ordered_terms(scores, mask, labels)
    n = mask.sum(dim=1, keepdim=True).to(terms.dtype)
    k = torch.arange(1, terms.shape[1] + 1, device=terms.device, dtype=terms.dtype)[None, :]
    alpha = torch.where(m_ord, torch.pow(2.0, n - k) - 1, torch.zeros_like(terms))
    return mean_over((alpha * terms).sum(dim=1), mask.any(dim=1))


def lambdaloss(
    scores: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    weighing_scheme: Literal["ndcgLoss2PP", "ndcgLoss1", "ndcgLoss2", "lambdaRank", "none"] = "ndcgLoss2PP",
    k: int = 0,
    sigma: float = 1.0,
    mu: float = 10.0,
    eps: float = 1e-10,
    ndcgloss1_pairs: Literal["all", "better"] = "all",
) -> Tensor:
    """LambdaLoss (Wang et al. 2018, "The LambdaLoss Framework for Ranking Metric Optimization", CIKM), in the
    formulation of allRank (Pobrotyn et al. 2020, arXiv 2002.08604).

    Candidates are sorted by the current scores (positions i = 1..n_q); with gains ``G_i = (2^{y_i} - 1) / maxDCG``
    (maxDCG over the ideal order, cut at k) and discounts ``D_i = log2(1 + i)``, over a set of pairs P::

        L_q = -Σ_{(i, j) ∈ P} log2( σ(σ_s (s_i - s_j)) ^ w_ij );   L = mean over queries (allRank: sum)

    P is every pair with ``y_i > y_j``, except for ``ndcgLoss1``: allRank keeps there *every* pair of real items,
    j = i and ``y_i <= y_j`` included (the paper's NDCG-Loss1 is ``-Σ_i Σ_j log2 σ(s_i - s_j)^{G_i/D_i}``, j over
    all items), which is the default ``ndcgloss1_pairs="all"``; ``"better"`` restricts ndcgLoss1 to ``y_i > y_j``
    like the other schemes. Example, scores [2, 1, 0] and labels [0, 2, 1]: 2.5657 ("all", = allRank) vs 1.6458
    ("better"). Per query the value is allRank's ``reduction="sum"``; queries are averaged.

    weighing schemes ``w_ij``:

    * ``none``         — 1 (a RankNet in base 2)
    * ``ndcgLoss1``    — G_i / D_i
    * ``ndcgLoss2``    — δ_ij |G_i - G_j|,  δ_ij = |1/D_{|i-j|} - 1/D_{|i-j|+1}|
    * ``lambdaRank``   — |1/D_i - 1/D_j| |G_i - G_j|
    * ``ndcgLoss2PP``  — μ · ndcgLoss2 + lambdaRank   (NDCGLoss2++, μ = 10 in the paper)

    ``k > 0`` keeps only pairs whose both items are in the top k positions of the current ranking (0 = all).
    ``σ(·)`` is clamped at ``eps`` before the power, as in allRank.

    Example:
        >>> s = torch.tensor([[0.0, 0.0]]); y = torch.tensor([[1.0, 0.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> float(lambdaloss(s, m, y, weighing_scheme="none"))  # -log2 σ(0)
        1.0
    """
    check_group(scores, mask, labels)
    schemes = ("ndcgLoss2PP", "ndcgLoss1", "ndcgLoss2", "lambdaRank", "none")
    if weighing_scheme not in schemes:
        raise ValueError(f"weighing_scheme must be one of {schemes}, got {weighing_scheme!r}")
    s = clean(scores, mask)
    y = clean(labels, mask)
    n_items = s.shape[1]

    order = stable_order(s, mask)  # sorted by current prediction, padding last
    s_sorted = s.gather(1, order)
    y_sorted = y.gather(1, order)
    m_sorted = mask.gather(1, order)

    pos = torch.arange(1, n_items + 1, device=s.device, dtype=s.dtype)
    D = torch.log2(1.0 + pos)[None, :]  # (1, G)
    ideal = torch.sort(torch.where(mask, y, torch.full_like(y, float("-inf"))), dim=1, descending=True).values
    real_ideal = torch.isfinite(ideal)
    ideal = torch.where(real_ideal, ideal, torch.zeros_like(ideal))
    gain_ideal = torch.where(real_ideal, torch.pow(2.0, ideal) - 1, torch.zeros_like(ideal))
    topk = n_items if k <= 0 else min(k, n_items)
    max_dcg = (gain_ideal[:, :topk] / D[:, :topk]).sum(dim=1).clamp(min=eps)
    G = torch.where(m_sorted, (torch.pow(2.0, y_sorted) - 1) / max_dcg[:, None], torch.zeros_like(y_sorted))

    if ndcgloss1_pairs not in ("all", "better"):
        raise ValueError(f"ndcgloss1_pairs must be 'all' or 'better', got {ndcgloss1_pairs!r}")
    pair = m_sorted[:, :, None] & m_sorted[:, None, :]
    if not (weighing_scheme == "ndcgLoss1" and ndcgloss1_pairs == "all"):
        pair = pair & (y_sorted[:, :, None] > y_sorted[:, None, :])
    if k > 0:
        in_top = pos[None, :] <= topk
        pair = pair & in_top[:, :, None] & in_top[:, None, :]

    if weighing_scheme == "none":
        w = torch.ones_like(pair, dtype=s.dtype)
    else:
        inv_d = 1.0 / D
        lambda_rank = (inv_d[:, :, None] - inv_d[:, None, :]).abs() * (G[:, :, None] - G[:, None, :]).abs()
        if weighing_scheme in ("ndcgLoss2", "ndcgLoss2PP"):
            idx = torch.arange(n_items, device=s.device)
            dist = (idx[:, None] - idx[None, :]).abs()  # |i - j| >= 0
            # δ_ij = |1/D_{|i-j|} - 1/D_{|i-j|+1}| with D_m = log2(1 + m); zero on the diagonal
            d1 = torch.log2(1.0 + dist.clamp(min=1).to(s.dtype))
            d2 = torch.log2(2.0 + dist.clamp(min=1).to(s.dtype))
            delta = torch.where(dist > 0, (1.0 / d1 - 1.0 / d2).abs(), torch.zeros_like(d1))
            ndcg2 = delta[None] * (G[:, :, None] - G[:, None, :]).abs()
        if weighing_scheme == "ndcgLoss1":
            w = (G / D)[:, :, None].expand(-1, -1, n_items)
        elif weighing_scheme == "ndcgLoss2":
            w = ndcg2
        elif weighing_scheme == "lambdaRank":
            w = lambda_rank
        else:
            w = mu * ndcg2 + lambda_rank

    diffs = (s_sorted[:, :, None] - s_sorted[:, None, :]).clamp(min=-1e8, max=1e8)
    # log2(max(σ(x), eps)^w) = w · log2(max(σ(x), eps)); the outer clamp of allRank only matters at underflow
    log_p = torch.log(torch.sigmoid(sigma * diffs).clamp(min=eps)) / math.log(2.0)
    per = torch.where(pair, -(w * log_p), torch.zeros_like(log_p))
    return mean_over(per.sum(dim=(1, 2)), mask.any(dim=1))


def _w2_sq_1d(x: Tensor, p: Tensor, q: Tensor, mask: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between Σ p_i δ(x_i) and Σ q_i δ(x_i) on the real line, row-wise.

    W2² = ∫_0^1 (F_p^{-1}(u) - F_q^{-1}(u))² du, computed exactly from the merged breakpoints of the two CDFs.
    ``x`` carries no gradient; ``p`` and ``q`` are probability vectors (zero on padding).
    """
    order = stable_order(x, mask, descending=False)
    xs = x.gather(1, order)
    ps = p.gather(1, order)
    qs = q.gather(1, order)
    n_real = mask.sum(dim=1, keepdim=True)
    cp = ps.cumsum(dim=1)
    cq = qs.cumsum(dim=1)
    u = torch.sort(torch.cat([cp, cq], dim=1), dim=1).values
    u_prev = torch.cat([torch.zeros_like(u[:, :1]), u[:, :-1]], dim=1)
    seg = (u - u_prev).clamp(min=0)
    mid = ((u + u_prev) / 2).detach().contiguous()
    last = (n_real - 1).clamp(min=0)
    ip = torch.minimum(torch.searchsorted(cp.detach().contiguous(), mid), last)
    iq = torch.minimum(torch.searchsorted(cq.detach().contiguous(), mid), last)
    gap = xs.gather(1, ip) - xs.gather(1, iq)
    return (seg * gap**2).sum(dim=1)


def wasserstein(
    scores: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    label_temperature: float = 1.0,
    squared: bool = True,
) -> Tensor:
    """2-Wasserstein listwise loss of "Beyond Contrastive Learning: Synthetic Data Enables List-wise Training with
    Multiple Levels of Relevance" (Esfandiarpoor et al. 2025, arXiv 2503.23239, EMNLP Findings).

    The student's scores and the graded labels are turned into two distributions over the query's candidates,
    ``P = softmax(s / τ)`` and ``Q = softmax(y / τ_y)``, and compared with the 2-Wasserstein distance whose ground
    metric places each candidate at its relevance level on the real line (moving predicted mass between two
    candidates costs the squared difference of their relevance grades, so confusing grade 3 with grade 0 costs more
    than 3 with 2)::

        L_q = W2²(P, Q) = ∫_0^1 (F_P^{-1}(u) - F_Q^{-1}(u))² du    (exact, 1-D closed form);   L = mean over queries

    ``squared=False`` returns W2 itself (its gradient is infinite at W2 = 0). Caveat: the paper's exact ground cost and
    normalisation could not be checked against its released code; this is the 2-Wasserstein distance between the
    two softmax distributions with the relevance grade as the 1-D ground metric.

    Example:
        >>> s = torch.tensor([[0.0, 0.0]]); y = torch.tensor([[1.0, 0.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> p_top = torch.sigmoid(torch.tensor(1.0)).item()  # Q puts σ(1) on the grade-1 doc, P puts 0.5
        >>> round(float(wasserstein(s, m, y)), 4) == round(p_top - 0.5, 4)  # mass (σ(1) - 0.5) moves distance 1
        True
    """
    check_group(scores, mask, labels)
    if temperature <= 0 or label_temperature <= 0:
        raise ValueError("temperatures must be > 0")
    y = clean(labels, mask)
    p = torch.where(
        mask, masked_log_softmax(clean(scores, mask) / temperature, mask).exp(), torch.zeros_like(y)
    )
    q = torch.where(mask, masked_log_softmax(y / label_temperature, mask).exp(), torch.zeros_like(y)).detach()
    w2 = _w2_sq_1d(y.detach(), p, q, mask)
    if not squared:
        w2 = w2.clamp(min=0).sqrt()
    return mean_over(w2, mask.any(dim=1))
