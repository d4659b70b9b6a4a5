"""Group contrastive losses: InfoNCE (1 positive + N negatives, optional in-batch negatives) and a multi-positive
variant.

Positives and negatives come from ``labels``, never from the column position: a candidate is a positive when
``label > 0`` and a negative when ``label <= 0``.

In-batch negatives (other queries' documents) are passed as two optional extra tensors:

* ``in_batch_scores`` ``(B, M)`` float — the student's scores of query ``b`` against ``M`` documents that belong to
  *other* queries of the batch (e.g. every document of the other ``B - 1`` groups, ``M = (B - 1) · G``),
* ``in_batch_mask`` ``(B, M)`` bool — True where that score is a real negative (False for padding, or for a
  document that is a known positive of query ``b``).

They only ever enter the denominator, as extra negatives. The trainer builds them (a cross-encoder needs a forward
pass per (query, other document) pair); the loss never guesses which columns are "its own" group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_group, clean, masked_logsumexp, mean_over


def _in_batch_lse(
    in_batch_scores: Tensor | None, in_batch_mask: Tensor | None, temperature: float, ref: Tensor
):
    if in_batch_scores is None:
        return None
    if in_batch_scores.dim() != 2 or in_batch_scores.shape[0] != ref.shape[0]:
        raise ValueError(
            f"in_batch_scores must be (B, M) with B={ref.shape[0]}, got {tuple(in_batch_scores.shape)}"
        )
    if in_batch_mask is None:
        in_batch_mask = torch.ones_like(in_batch_scores, dtype=torch.bool)
    if in_batch_mask.shape != in_batch_scores.shape or in_batch_mask.dtype != torch.bool:
        raise ValueError("in_batch_mask must be a bool tensor shaped like in_batch_scores")
    ib = clean(in_batch_scores, in_batch_mask) / temperature
    return masked_logsumexp(ib, in_batch_mask)


def infonce(
    scores: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    in_batch_scores: Tensor | None = None,
    in_batch_mask: Tensor | None = None,
) -> Tensor:
    """InfoNCE / group softmax cross-entropy over one positive and its negatives (van den Oord et al. 2018,
    arXiv 1807.03748; the "localized contrastive estimation" of Gao et al. 2021, arXiv 2101.08751, for rerankers).

    The positive ``p`` is the *first* labelled positive of the group (``label > 0``); the negatives ``N`` are the
    real candidates with ``label <= 0`` plus the optional in-batch negatives. Other labelled positives of the same
    group are left out of the denominator (they are not negatives). With ``τ = temperature``::

        L_q = -log( exp(s_p/τ) / (exp(s_p/τ) + Σ_{n∈N} exp(s_n/τ)) )
        L   = mean over queries that have a positive

    Shapes: ``scores``, ``labels`` (B, G); ``mask`` (B, G) bool; ``in_batch_scores``/``in_batch_mask`` (B, M)
    (see the module docstring).

    Example:
        >>> s = torch.tensor([[2.0, 1.0, 0.0]]); m = torch.ones(1, 3, dtype=torch.bool)
        >>> y = torch.tensor([[1.0, 0.0, 0.0]])
        >>> round(float(infonce(s, m, y)), 4)  # -log(e^2 / (e^2 + e^1 + e^0))
        0.4076
    """
    check_group(scores, mask, labels)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = clean(scores, mask) / temperature
    lab = clean(labels, mask)
    pos = mask & (lab > 0)
    neg = mask & (lab <= 0)
    has_pos = pos.any(dim=1)
    first = pos.to(torch.int8).argmax(dim=1)  # index of the first labelled positive
    onehot = F.one_hot(first, scores.shape[1]).bool() & has_pos[:, None]
    lse = masked_logsumexp(logits, onehot | neg)
    extra = _in_batch_lse(in_batch_scores, in_batch_mask, temperature, scores)
    if extra is not None:
        lse = torch.logaddexp(lse, extra)
    pos_logit = logits.gather(1, first[:, None]).squeeze(1)
    return mean_over(lse - pos_logit, has_pos)


def infonce_multi(
    scores: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    in_batch_scores: Tensor | None = None,
    in_batch_mask: Tensor | None = None,
) -> Tensor:
    """Multi-positive InfoNCE: every labelled positive is contrasted with all negatives, positives never compete.

    With ``P`` the positives (``label > 0``), ``N`` the negatives (``label <= 0`` plus in-batch negatives)::

        L_q = (1/|P|) Σ_{p∈P} -log( exp(s_p/τ) / (exp(s_p/τ) + Σ_{n∈N} exp(s_n/τ)) )
        L   = mean over queries that have a positive

    With a single positive this is exactly :func:`infonce`.

    Example:
        >>> s = torch.tensor([[2.0, 1.0, 0.0]]); m = torch.ones(1, 3, dtype=torch.bool)
        >>> y = torch.tensor([[1.0, 1.0, 0.0]])
        >>> round(float(infonce_multi(s, m, y)), 4)  # (softplus(0-2) + softplus(0-1)) / 2
        0.2201
    """
    check_group(scores, mask, labels)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = clean(scores, mask) / temperature
    lab = clean(labels, mask)
    pos = mask & (lab > 0)
    neg = mask & (lab <= 0)
    neg_lse = masked_logsumexp(logits, neg)
    extra = _in_batch_lse(in_batch_scores, in_batch_mask, temperature, scores)
    if extra is not None:
        neg_lse = torch.logaddexp(neg_lse, extra)
    per_pos = torch.logaddexp(logits, neg_lse[:, None]) - logits  # -log p(positive beats the negatives)
    per_pos = torch.where(pos, per_pos, torch.zeros_like(per_pos))
    n_pos = pos.sum(dim=1)
    per_query = per_pos.sum(dim=1) / n_pos.clamp(min=1).to(per_pos.dtype)
    return mean_over(per_query, n_pos > 0)
