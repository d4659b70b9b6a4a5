"""Prompt + completion sequences, shared by the listwise and preference trainers: the one collator helper that
left-pads a batch of them, and the forward pass that returns the logits of the completion positions only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rerank_align.scoring.encode import left_pad


def completion_batch(
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    pad_id: int,
    **columns: tuple[Sequence[Sequence[float]], float, torch.dtype],
) -> dict[str, torch.Tensor]:
    """``prompt + completion`` per row, left-padded (``scoring.encode.left_pad``, with the same per-token
    ``columns``), and ``logits_to_keep``: the longest completion + 1, since the position before a completion
    predicts its first token. Left padding ends every completion at the last position, so the model's head runs
    on the completion span only."""
    batch = left_pad([[*p, *c] for p, c in zip(prompts, completions)], pad_id, **columns)
    batch["logits_to_keep"] = torch.tensor(max(len(c) for c in completions) + 1)
    return batch


def forward_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """Logits of the last ``keep`` positions (left padding: the completions end there), positions from the mask."""
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False, logits_to_keep=keep
    )
    return out.logits[:, -keep:]


def pad_id_of(tokenizer: Any) -> int:
    """The padding id of a batch: the tokenizer's pad token, else its eos (padded positions are masked anyway)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
