"""Policy-gradient ranking loss: Neural PG-Rank (Gao, Wang & Joachims 2023, arXiv 2310.04407).

A score reranker defines a Plackett-Luce policy over rankings of a query's candidates, ``π(σ | s) = Π_k
exp(s_{σ(k)}) / Σ_{j ≥ k} exp(s_{σ(j)})``. Rankings are sampled with the Gumbel trick (sort ``s + Gumbel``), each
is rewarded with its nDCG@k against the graded labels, and REINFORCE with a leave-one-out baseline (the mean reward
of the query's other samples) gives an unbiased gradient of the expected nDCG@k.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import check_group, mean_over, plackett_luce_terms


def ndcg_of_permutations(permutations: Tensor, labels: Tensor, mask: Tensor, *, k: int = 10) -> Tensor:
    """nDCG@k of each sampled ranking: ``permutations`` (B, S, G) indices best first (real items first, padding
    last), graded ``labels`` (B, G), ``mask`` (B, G). Gain ``2^rel - 1``, discount ``1/log2(1 + rank)``. A query
    without a relevant item scores 0. Returns (B, S)."""
    rel = torch.where(mask, labels.float(), torch.zeros_like(labels, dtype=torch.float32))
    g = rel.shape[1]
    top = min(k, g)
    disc = 1.0 / torch.log2(torch.arange(2, top + 2, dtype=torch.float32, device=rel.device))
    gains = torch.pow(2.0, rel) - 1  # (B, G)
    b, s, _ = permutations.shape
    picked = gains[:, None, :].expand(b, s, g).gather(2, permutations[..., :top].long())  # (B, S, top)
    dcg = (picked * disc).sum(-1)
    ideal = (torch.sort(gains, dim=1, descending=True).values[:, :top] * disc).sum(-1)  # (B,)
    return torch.where(ideal[:, None] > 0, dcg / ideal.clamp(min=1e-12)[:, None], torch.zeros_like(dcg))


def pg_rank_from_samples(
    scores: Tensor, mask: Tensor, labels: Tensor, permutations: Tensor, *, k: int = 10
) -> Tensor:
    """The PG-Rank REINFORCE loss for given sampled rankings (the deterministic part of :func:`pg_rank`)::

        log π(σ_s) = Σ_k [ s_{σ_s(k)} - log Σ_{j ≥ k} exp(s_{σ_s(j)}) ]      (Plackett-Luce, real items only)
        R_s = nDCG@k(σ_s),   b_s = mean_{s' ≠ s} R_{s'}                      (leave-one-out baseline)
        L   = - mean_{queries} mean_s (R_s - b_s) · log π(σ_s)

    Shapes: ``scores``, ``labels`` (B, G), ``mask`` (B, G) bool, ``permutations`` (B, S, G) long with S ≥ 2, each
    row a permutation of the query's real items first and its padded positions last.

    Example:
        >>> s = torch.tensor([[0.0, 0.0]]); m = torch.ones(1, 2, dtype=torch.bool)
        >>> perms = torch.tensor([[[0, 1], [1, 0]]]); rel = torch.tensor([[1.0, 0.0]])
        >>> # R = (1, 1/log2 3); log π = log 1/2 for both; loss = -(1/2)((R0-R1) + (R1-R0)) log(1/2) = 0
        >>> round(float(pg_rank_from_samples(s, m, rel, perms)), 4)
        0.0
    """
    check_group(scores, mask, labels)
    b, n_samples, g = permutations.shape
    if n_samples < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 sampled rankings per query")
    with torch.no_grad():
        reward = ndcg_of_permutations(permutations, labels, mask, k=k)  # (B, S)
        baseline = (reward.sum(dim=1, keepdim=True) - reward) / (n_samples - 1)
        advantage = reward - baseline
    idx = permutations.long()
    ordered = scores[:, None, :].expand(b, n_samples, g).gather(2, idx)
    ordered_mask = mask[:, None, :].expand(b, n_samples, g).gather(2, idx)
    logp = -plackett_luce_terms(ordered, ordered_mask).sum(-1)  # (B, S)
    per_query = -(advantage.to(logp.dtype) * logp).mean(dim=1)
    return mean_over(per_query, mask.sum(dim=1) > 1)


def sample_plackett_luce(scores: Tensor, mask: Tensor, num_samples: int, temperature: float = 1.0) -> Tensor:
    """``num_samples`` rankings per query from the Plackett-Luce policy of ``scores / temperature`` (Gumbel-max
    trick: sorting ``s + Gumbel noise`` samples the Plackett-Luce distribution exactly). Padding goes last.
    Returns (B, S, G) long; draws from torch's global generator (seeded by ``set_seed``)."""
    s = scores.detach().float() / temperature
    b, g = s.shape
    u = torch.rand(b, num_samples, g, device=s.device).clamp(min=1e-10, max=1 - 1e-7)
    noisy = s[:, None, :] - torch.log(-torch.log(u))
    noisy = torch.where(mask[:, None, :], noisy, torch.full_like(noisy, float("-inf")))
    return torch.sort(noisy, dim=-1, descending=True, stable=True).indices


def pg_rank(
    scores: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    num_samples: int = 8,
    k: int = 10,
    temperature: float = 1.0,
) -> Tensor:
    """Neural PG-Rank (arXiv 2310.04407): REINFORCE on the expected nDCG@k of rankings sampled from the
    Plackett-Luce policy over ``scores``, with a leave-one-out baseline (:func:`pg_rank_from_samples` on
    :func:`sample_plackett_luce` draws). ``temperature`` divides the scores of the sampling policy *and* of the
    log-likelihood, so the gradient is that of the same tempered policy.

    Shapes: ``scores``, ``labels`` (B, G) (graded; 0 = not relevant), ``mask`` (B, G) bool.
    """
    perms = sample_plackett_luce(scores, mask, num_samples, temperature)
    return pg_rank_from_samples(scores / temperature, mask, labels, perms, k=k)
