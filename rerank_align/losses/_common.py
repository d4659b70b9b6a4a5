"""Shared helpers for the loss functions: masking, sorting and reductions.

Conventions used everywhere in :mod:`rerank_align.losses`:

* ``scores``/``labels``/``teacher_scores`` are ``(B, G)``; ``mask`` is ``(B, G)`` bool, True = real candidate.
* Padded entries are first replaced by a neutral value with :func:`torch.where` (never multiplied), so padding
  that holds ``nan``/``inf`` changes neither the value nor the gradient of real entries, and padded entries get an
  exact zero gradient.
* Log-sum-exp over a masked set uses a large *finite* negative fill (:func:`neg_fill`) instead of ``-inf``, so a
  row with nothing to sum never produces ``nan`` in the backward pass.
"""

from __future__ import annotations

import torch
from torch import Tensor


def neg_fill(t: Tensor) -> float:
    """A finite value so negative that ``exp(value - anything_real)`` is exactly 0 in ``t``'s dtype."""
    return torch.finfo(t.dtype).min / 4


def check_group(scores: Tensor, mask: Tensor, *others: Tensor | None) -> None:
    if scores.dim() != 2:
        raise ValueError(f"scores must be (B, G), got shape {tuple(scores.shape)}")
    if mask.shape != scores.shape or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(scores.shape)}, got {mask.dtype} {tuple(mask.shape)}"
        )
    for t in others:
        if t is not None and t.shape != scores.shape:
            raise ValueError(f"expected shape {tuple(scores.shape)}, got {tuple(t.shape)}")


def clean(x: Tensor, mask: Tensor, value: float = 0.0) -> Tensor:
    """``x`` with padded entries replaced by ``value`` (gradient to padding is exactly zero)."""
    return torch.where(mask, x, torch.full_like(x, value))


def masked_logsumexp(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """log Σ exp(x) over entries where ``mask``; a fully masked row gives a huge negative finite number."""
    return torch.logsumexp(torch.where(mask, x, torch.full_like(x, neg_fill(x))), dim=dim)


def masked_log_softmax(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """log-softmax over the real entries; padded entries of the result are 0 (never use them)."""
    lse = masked_logsumexp(x, mask, dim=dim).unsqueeze(dim)
    return torch.where(mask, x - lse, torch.zeros_like(x))


def mean_over(values: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``values`` over the entries where ``valid``; 0 (with a graph) when nothing is valid."""
    v = torch.where(valid, values, torch.zeros_like(values))
    return v.sum() / valid.sum().clamp(min=1).to(values.dtype)


def stable_order(key: Tensor, mask: Tensor, descending: bool = True) -> Tensor:
    """Indices sorting each row by ``key`` (stable: ties keep input order); padded entries always go last."""
    fill = float("-inf") if descending else float("inf")
    k = torch.where(mask, key.detach(), torch.full_like(key, fill))
    return torch.sort(k, dim=-1, descending=descending, stable=True).indices


def reverse_logcumsumexp(x: Tensor, mask: Tensor) -> Tensor:
    """``out[..., k] = log Σ_{j >= k, mask_j} exp(x_j)`` (suffix log-sum-exp along the last dim)."""
    xf = torch.where(mask, x, torch.full_like(x, neg_fill(x)))
    return torch.logcumsumexp(xf.flip(-1), dim=-1).flip(-1)


def plackett_luce_terms(ordered_scores: Tensor, ordered_mask: Tensor) -> Tensor:
    """Per-position negative Plackett-Luce log-likelihood ``lse_{j>=k} s_j - s_k`` for already ordered rows.

    Real entries must come first in each row (padding last). Padded positions of the result are 0.
    """
    lse = reverse_logcumsumexp(ordered_scores, ordered_mask)
    return torch.where(ordered_mask, lse - ordered_scores, torch.zeros_like(ordered_scores))
