"""Token-level losses for listwise generation: fullrank importance weights and a weighted token NLL, plus the
causal shift helper shared with the preference losses.

fullrank ("Sliding Windows Are Not the End: Exploring Full Ranking with Long-Context Large Language Models",
Liu et al., arXiv 2412.14574) trains a listwise reranker on the full target permutation ``"[3] > [1] > [2]"`` with
an importance-aware language-modelling loss: every token of the identifier at rank r (1-based) gets weight
``1 + 1/log2(r + 1)`` and every other (separator) token weight 1, so the head of the ranking matters more.

Known reference bug not repeated here: the reference implementation finds identifier tokens by looking for a
hard-coded separator token id (the id of ``>``) and assigning ranks to the tokens between separators. That breaks as
soon as the tokenizer merges the separator with neighbouring characters (``"] >"``, ``" >"``) or splits an identifier
such as ``[12]`` into several tokens. Here the weights are computed from the *character offsets* of the target
(``offset_mapping`` of a fast tokenizer), so every token that overlaps an identifier's characters gets that
identifier's weight, whatever the tokenizer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

IDENTIFIER_PATTERN = r"\[\d+\]"


def identifier_spans(target: str, pattern: str = IDENTIFIER_PATTERN) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the identifiers in ``target``, in order of appearance (= rank order).

    >>> identifier_spans("[3] > [12] > [2]")
    [(0, 3), (6, 10), (13, 16)]
    """
    return [(m.start(), m.end()) for m in re.finditer(pattern, target)]


def rank_weight(rank: int) -> float:
    """fullrank's importance weight of the identifier at 1-based ``rank``: ``1 + 1/log2(rank + 1)``."""
    if rank < 1:
        raise ValueError(f"rank is 1-based, got {rank}")
    return 1.0 + 1.0 / math.log2(rank + 1)


def fullrank_token_weights(
    target: str,
    offsets: Sequence[tuple[int, int]] | Tensor,
    *,
    spans: Sequence[tuple[int, int]] | None = None,
    pattern: str = IDENTIFIER_PATTERN,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Per-token importance weights (fullrank, arXiv 2412.14574) for one target permutation.

    Args:
        target: the target text, e.g. ``"[3] > [1] > [2]"``.
        offsets: the tokenizer's offset mapping *for the target text* (``tokenizer(target,
            return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]``), one ``(start, end)`` per
            token. Zero-width offsets (special tokens) get weight 1.
        spans: identifier character spans in rank order; default: parsed from ``target`` with ``pattern``.

    Returns:
        ``(T,)`` weights: a token overlapping the identifier at rank r gets ``1 + 1/log2(r + 1)`` (the largest one if a
        merged token overlaps several identifiers), every other token 1.

    Example (a tokenizer that splits ``[12]`` into ``[``, ``1``, ``2``, ``]``):
        >>> fullrank_token_weights("[12] > [3]", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 7), (7, 8), (8, 9), (9, 10)])
        tensor([2.0000, 2.0000, 2.0000, 2.0000, 1.0000, 1.6309, 1.6309, 1.6309])
    """
    if spans is None:
        spans = identifier_spans(target, pattern)
    offs = offsets.tolist() if isinstance(offsets, Tensor) else [tuple(o) for o in offsets]
    weights = []
    for start, end in offs:
        w = 1.0
        if end > start:
            for r, (a, b) in enumerate(spans, start=1):
                if start < b and a < end:  # character overlap
                    w = max(w, rank_weight(r))
        weights.append(w)
    return torch.tensor(weights, dtype=dtype)


def weighted_token_nll(
    token_logps: Tensor,
    weights: Tensor,
    mask: Tensor,
    *,
    normalize: Literal["tokens", "weights"] = "tokens",
    denominator: float | Tensor | None = None,
) -> Tensor:
    """Importance-weighted token negative log-likelihood (fullrank's loss)::

        L = -Σ_{b,t} mask · w_{b,t} · log p(x_{b,t}) / N
        N = Σ mask               ("tokens", the paper's normalisation by token count)
          = Σ mask · w           ("weights", a proper weighted mean)

    Args:
        token_logps: ``(B, T)`` log-probabilities of the target tokens, already aligned (see :func:`causal_shift`).
        weights: ``(B, T)`` per-token weights (e.g. from :func:`fullrank_token_weights`, padded with anything).
        mask: ``(B, T)`` bool, True on the target tokens that count.
        denominator: overrides N (e.g. the number of items over a gradient-accumulation window).

    Example:
        >>> lp = torch.log(torch.tensor([[0.5, 0.25]])); w = torch.tensor([[2.0, 1.0]])
        >>> m = torch.ones(1, 2, dtype=torch.bool)
        >>> round(float(weighted_token_nll(lp, w, m)), 4)  # (2 log 2 + log 4) / 2
        1.3863
    """
    if token_logps.shape != weights.shape or token_logps.shape != mask.shape:
        raise ValueError("token_logps, weights and mask must have the same shape")
    if normalize not in ("tokens", "weights"):
        raise ValueError(f"normalize must be 'tokens' or 'weights', got {normalize!r}")
    lp = torch.where(mask, token_logps, torch.zeros_like(token_logps))
    w = torch.where(mask, weights.to(lp.dtype), torch.zeros_like(lp))
    total = -(w * lp).sum()
    if denominator is None:
        denominator = mask.sum().to(lp.dtype) if normalize == "tokens" else w.sum()
    if isinstance(denominator, Tensor):
        denominator = denominator.to(lp.dtype).clamp(min=1e-12)
    else:
        denominator = max(float(denominator), 1e-12)
    return total / denominator


def causal_shift(logits: Tensor, input_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Align a causal LM's outputs with the tokens they predict: the logits at position t predict token t + 1.

    Returns ``(logits[:, :-1], input_ids[:, 1:], mask[:, 1:])`` where ``mask`` marks the tokens to score (e.g. the
    completion tokens), expressed on ``input_ids`` positions.
    """
    return logits[:, :-1], input_ids[:, 1:], mask[:, 1:]


def token_logps(logits: Tensor, input_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities of ``input_ids`` under a causal LM, with the shift done right.

    ``logits`` (B, T, V) are the model outputs for ``input_ids`` (B, T); ``mask`` (B, T) bool marks the tokens whose
    probability is wanted. Returns ``(logps, mask)`` of shape (B, T - 1): ``logps[:, t] = log p(input_ids[:, t+1] |
    input_ids[:, :t+1])``; masked positions hold 0.
    """
    lg, ids, m = causal_shift(logits, input_ids, mask)
    lp = torch.log_softmax(lg.float() if lg.dtype in (torch.float16, torch.bfloat16) else lg, dim=-1)
    out = lp.gather(-1, ids.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(m, out, torch.zeros_like(out)), m
