"""Pointwise losses: BCE-with-logits and the binary yes/no cross-entropy.

Both are averaged over the *real* (query, document) pairs of the batch (not per query first): every labelled
pair counts once, which is what a pointwise objective means. Padding never enters the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_group, clean, mean_over


def _targets(labels: Tensor, mask: Tensor, max_label: float) -> Tensor:
    if max_label <= 0:
        raise ValueError(f"max_label must be > 0, got {max_label}")
    return clean(labels, mask).div(max_label).clamp(0.0, 1.0)


def bce(
    scores: Tensor, mask: Tensor, labels: Tensor, *, max_label: float = 1.0, pos_weight: float = 1.0
) -> Tensor:
    """Binary cross-entropy with logits on binary or graded labels (monoT5 / RankLLaMA-style pointwise training).

    Formula, per real pair with target ``y = clamp(label / max_label, 0, 1)``::

        l = -[ pos_weight · y · log σ(s) + (1 - y) · log(1 - σ(s)) ]
        L = mean over real pairs of l

    Graded labels (e.g. 0..3) become soft targets with ``max_label=3``.

    Shapes: ``scores``, ``labels`` (B, G) float; ``mask`` (B, G) bool.

    Example:
        >>> s = torch.tensor([[2.0, -1.0, 9.0]]); m = torch.tensor([[True, True, False]])
        >>> y = torch.tensor([[1.0, 0.0, 0.0]])
        >>> round(float(bce(s, m, y)), 4)  # (softplus(-2) + softplus(-1)) / 2
        0.2201
    """
    check_group(scores, mask, labels)
    s = clean(scores, mask)
    y = _targets(labels, mask, max_label)
    pw = torch.tensor(pos_weight, dtype=s.dtype, device=s.device)
    per = F.binary_cross_entropy_with_logits(s, y, reduction="none", pos_weight=pw)
    return mean_over(per, mask)


def binary_ce(
    yes_logits: Tensor, no_logits: Tensor, mask: Tensor, labels: Tensor, *, max_label: float = 1.0
) -> Tensor:
    """Binary yes/no cross-entropy: softmax over the two answer-token logits {z_yes, z_no} (SFT pointwise).

    This is the "SFT" objective of arXiv 2510.14824 (predict "yes" for a relevant pair, "no" otherwise) restricted
    to the two answer tokens. With ``y = clamp(label / max_label, 0, 1)``::

        p(yes) = exp(z_yes) / (exp(z_yes) + exp(z_no)) = σ(z_yes - z_no)
        l = -[ y · log p(yes) + (1 - y) · log p(no) ]
        L = mean over real pairs of l

    Only the difference ``z_yes - z_no`` matters, so this equals :func:`bce` on ``scores = z_yes - z_no``.
    (Full-vocabulary CE on the answer token is an SFTTrainer objective, not this function.)

    Shapes: ``yes_logits``, ``no_logits``, ``labels`` (B, G) float; ``mask`` (B, G) bool.

    Example:
        >>> zy = torch.tensor([[3.0, 0.0]]); zn = torch.tensor([[1.0, 1.0]])
        >>> m = torch.tensor([[True, True]]); y = torch.tensor([[1.0, 0.0]])
        >>> round(float(binary_ce(zy, zn, m, y)), 4)  # (softplus(-2) + softplus(-1)) / 2
        0.2201
    """
    check_group(yes_logits, mask, no_logits, labels)
    zy = clean(yes_logits, mask)
    zn = clean(no_logits, mask)
    y = _targets(labels, mask, max_label)
    pair = torch.stack([zy, zn], dim=-1).log_softmax(dim=-1)
    per = -(y * pair[..., 0] + (1 - y) * pair[..., 1])
    return mean_over(per, mask)
