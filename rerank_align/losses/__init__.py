"""Training objectives as pure tensor functions (docs/design.md §3). See ``docs/losses.md`` for the table of losses.

``SCORE_LOSSES`` maps a recipe key (``method.loss``) to a score-trainer loss. A trainer feeds every parameter whose
name is in the tensor vocabulary from the batch and every other keyword-only parameter from ``method.loss_args``:

* ``scores`` (B, G) float, ``mask`` (B, G) bool (True = real candidate), ``labels`` (B, G) float (graded),
* ``teacher_scores`` (B, G) float, ``yes_logits`` / ``no_logits`` (B, G) float,
* ``in_batch_scores`` (B, M) float and ``in_batch_mask`` (B, M) bool (optional in-batch negatives, see
  :mod:`rerank_align.losses.contrastive`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .contrastive import infonce, infonce_multi
from .distill import cprd, kl_distill, listnet_distill, margin_mse, pld
from .ltr import lambdaloss, listmle, listnet, plistmle, ranknet, wasserstein
from .pointwise import bce, binary_ce
from .policy_gradient import pg_rank, pg_rank_from_samples
from .preference import (
    adpa_advantage_term,
    adpa_loss,
    dckd_loss,
    dpo_sigmoid,
    forward_kl_topk,
    irpo_loss,
    mean_token_logps,
    plackett_luce_dpo,
    token_nll,
)
from .token_weights import (
    IDENTIFIER_PATTERN,
    causal_shift,
    fullrank_token_weights,
    identifier_spans,
    rank_weight,
    token_logps,
    weighted_token_nll,
)
from .unified import unified

TENSOR_ARGS: frozenset[str] = frozenset(
    {
        "scores",
        "mask",
        "labels",
        "teacher_scores",
        "yes_logits",
        "no_logits",
        "in_batch_scores",
        "in_batch_mask",
    }
)
"""Parameter names a trainer fills from the batch; every other keyword-only parameter is a hyper-parameter."""


def required_tensors(fn: Callable) -> list[str]:
    """The batch tensors a loss cannot run without: its ``TENSOR_ARGS`` parameters that have no default.

    >>> required_tensors(margin_mse)
    ['scores', 'mask', 'labels', 'teacher_scores']
    """
    sig = inspect.signature(fn)
    return [n for n, p in sig.parameters.items() if n in TENSOR_ARGS and p.default is inspect.Parameter.empty]


SCORE_LOSSES: dict[str, Callable] = {
    "bce": bce,
    "binary_ce": binary_ce,
    "infonce": infonce,
    "infonce_multi": infonce_multi,
    "unified": unified,
    "margin_mse": margin_mse,
    "kl": kl_distill,
    "listnet_distill": listnet_distill,
    "pld": pld,
    "cprd": cprd,
    "ranknet": ranknet,
    "listnet": listnet,
    "listmle": listmle,
    "plistmle": plistmle,
    "lambdaloss": lambdaloss,
    "wasserstein": wasserstein,
    "pg_rank": pg_rank,
}

__all__ = [
    "IDENTIFIER_PATTERN",
    "SCORE_LOSSES",
    "TENSOR_ARGS",
    "adpa_advantage_term",
    "adpa_loss",
    "bce",
    "binary_ce",
    "causal_shift",
    "cprd",
    "dckd_loss",
    "dpo_sigmoid",
    "forward_kl_topk",
    "fullrank_token_weights",
    "identifier_spans",
    "infonce",
    "infonce_multi",
    "irpo_loss",
    "kl_distill",
    "lambdaloss",
    "listmle",
    "listnet",
    "listnet_distill",
    "margin_mse",
    "mean_token_logps",
    "pg_rank",
    "pg_rank_from_samples",
    "plackett_luce_dpo",
    "pld",
    "plistmle",
    "rank_weight",
    "ranknet",
    "required_tensors",
    "token_logps",
    "token_nll",
    "unified",
    "wasserstein",
    "weighted_token_nll",
]
