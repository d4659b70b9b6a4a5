"""Unified weight / direction reranking loss of "Supervised Fine-Tuning or Contrastive Learning? Towards Better
Multimodal LLM Reranking" (Dai, Zhang et al., arXiv 2510.14824).

The paper compares two objectives for a yes/no LLM reranker on a group (1 positive d+, negatives d-_i):

* SFT — per-pair cross-entropy on the answer token, summed over the group::

      L_SFT = -log p(yes | d+) - Σ_i log p(no | d-_i),      p(yes|d) = σ(z_yes(d) - z_no(d))

* CL — InfoNCE over the group with the "yes" score::

      L_CL = -log( exp(σ(d+)) / (exp(σ(d+)) + Σ_i exp(σ(d-_i))) )

It then decomposes each gradient w.r.t. the hidden state h into a scalar *weight* W (how hard each document
pushes) times a *direction* D (which score's gradient ∂D/∂h the update follows)::

      ∂L/∂h = -W+ · ∂D(d+)/∂h + Σ_i W-_i · ∂D(d-_i)/∂h

      SFT: W+ = p(no | d+),  W-_i = p(yes | d-_i),          D(d) = z_yes(d) - z_no(d)
      CL : W+ = 1 - softmax(c)_+, W-_i = softmax(c)_i,       D(d) = z_yes(d)     (c = z_yes / τ over the group)

(These weights follow from differentiating L_SFT and L_CL; for CL the softmax carries the 1/τ factor of the
temperature, ``W = softmax/τ``.) The unified loss (the paper's URL) lets the weight source and the direction source
be chosen independently, giving the four configurations of the paper's probing table.

How the direction is realised here: the loss is the surrogate::

      S = -sg(W+) · D(d+) + Σ_i sg(W-_i) · D(d-_i)

where ``sg`` is stop-gradient (``.detach()``): the weights are computed from the current logits but no gradient
flows through them, and the gradient flows only through ``D``, i.e. through ``z_yes - z_no`` (direction "sft": the
"yes" logit is pushed up and the "no" logit down with the same weight) or through ``z_yes`` alone (direction "cl":
``z_no`` gets no gradient). So ``∂S/∂h`` is exactly the paper's ``-W+ ∂D+/∂h + Σ W- ∂D-/∂h``.

The *value* returned is made readable for logging: ``S - sg(S) + sg(V)``, where ``V`` is the loss of the weight
source (L_SFT for ``weight="sft"``, L_CL on ``z_yes/τ`` for ``weight="cl"``). The value is therefore V, the gradient
is that of S. For the matched configurations (sft, sft) and (cl, cl) value and gradient are exactly those of L_SFT
and L_CL (a test checks this); for the mixed ones the gradient is not the gradient of any scalar, by design.

Multiple positives: with ``weight="sft"`` each labelled positive is a d+ with its own p(no|d); with
``weight="cl"`` the first labelled positive is d+ and the other positives are left out (weight 0), as in
:func:`rerank_align.losses.contrastive.infonce`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_group, clean, masked_log_softmax, mean_over


def unified(
    yes_logits: Tensor,
    no_logits: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    weight: Literal["sft", "cl"] = "sft",
    direction: Literal["sft", "cl"] = "sft",
    temperature: float = 1.0,
) -> Tensor:
    """Unified reranking loss (arXiv 2510.14824) with independent weight and direction sources.

    See the module docstring for the full derivation. Per query, summed over its group, then averaged over the
    queries that have a labelled positive::

        S_q = -sg(W+) · D(d+) + Σ_i sg(W-_i) · D(d-_i)

    ``weight``: "sft" → W+ = p(no|d+), W-_i = p(yes|d-_i); "cl" → W = (softmax over the group of z_yes/τ − onehot(d+))/τ.
    ``direction``: "sft" → D = z_yes − z_no; "cl" → D = z_yes.
    ``temperature`` only affects the CL weight (and the CL value).

    Shapes: ``yes_logits``, ``no_logits``, ``labels`` (B, G) float; ``mask`` (B, G) bool.

    Example (weight=sft, direction=sft equals the summed yes/no cross-entropy of the group):
        >>> zy = torch.tensor([[3.0, 0.0]]); zn = torch.tensor([[1.0, 1.0]])
        >>> m = torch.tensor([[True, True]]); y = torch.tensor([[1.0, 0.0]])
        >>> round(float(unified(zy, zn, m, y)), 4)  # softplus(-2) + softplus(-1)
        0.4402
    """
    check_group(yes_logits, mask, no_logits, labels)
    if weight not in ("sft", "cl") or direction not in ("sft", "cl"):
        raise ValueError(f"weight and direction must be 'sft' or 'cl', got {weight!r}, {direction!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    zy = clean(yes_logits, mask)
    zn = clean(no_logits, mask)
    lab = clean(labels, mask)
    pos = mask & (lab > 0)
    neg = mask & (lab <= 0)
    has_pos = pos.any(dim=1)
    sign = torch.where(pos, -torch.ones_like(zy), torch.ones_like(zy))  # -1 for d+, +1 for d-

    if weight == "sft":
        d = zy - zn
        # W+ = p(no|d+) = σ(-(z_yes - z_no)); W- = p(yes|d-) = σ(z_yes - z_no)
        w = torch.where(pos, torch.sigmoid(-d), torch.sigmoid(d))
        member = mask
        value = torch.where(member, F.softplus(sign * d), torch.zeros_like(d)).sum(dim=1)
    else:
        first = pos.to(torch.int8).argmax(dim=1)
        onehot = F.one_hot(first, zy.shape[1]).bool() & has_pos[:, None]
        member = onehot | neg
        logp = masked_log_softmax(zy / temperature, member)
        p = logp.exp()
        # ∂L_CL/∂z_yes = (softmax - onehot)/τ; as a positive weight on -D(d+) and +D(d-): W+ = (1-p+)/τ, W- = p/τ
        w = torch.where(onehot, 1 - p, p) / temperature
        value = -(torch.where(onehot, logp, torch.zeros_like(logp)).sum(dim=1))
    w = torch.where(member, w, torch.zeros_like(w)).detach()

    direction_score = zy - zn if direction == "sft" else zy
    surrogate = (w * sign * direction_score).sum(dim=1)
    per_query = surrogate - surrogate.detach() + value.detach()
    return mean_over(per_query, has_pos)
