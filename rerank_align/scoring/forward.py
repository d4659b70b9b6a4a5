"""The one scoring forward pass (docs/design.md §1): a tokenised batch → one score per pair.

Used verbatim by the score trainer and by ``Reranker``; nothing else computes scores.

- ``yesno``: run the backbone (no lm_head), take the hidden state at the last non-pad position, multiply by the two
  rows of lm_head for the yes/no answer tokens (never the full vocabulary), apply the contract's formula in float32.
- ``head`` on a causal LM: the same last-position hidden state through the single-logit ``score`` head.
- ``head`` on an encoder: the model's own sequence-classification forward ([CLS] pooler + classifier).

Position ids are derived from the attention mask, so left and right padding give the same scores (for the Qwen2-VL
family, the 3-D M-RoPE positions of scoring/vision.py; ``pixel_values`` / ``image_grid_thw`` go to the backbone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rerank_align.scoring.contract import ScoringContract


@dataclass
class ScoreOutput:
    scores: torch.Tensor  # (N,) float32
    yes_logits: torch.Tensor | None = None  # (N,) float32, yesno kind only
    no_logits: torch.Tensor | None = None


def unwrap(model: Any) -> Any:
    """The transformers model under PEFT / DDP / DeepSpeed wrappers (LoRA layers stay injected)."""
    while True:
        if hasattr(model, "module") and not hasattr(model, "config"):  # DDP / DeepSpeed engine
            model = model.module
        elif hasattr(model, "get_base_model") and hasattr(model, "peft_config"):
            model = model.get_base_model()
        else:
            return model


def backbone(model: Any) -> Any:
    base = unwrap(model)
    return getattr(base, base.base_model_prefix)


def _is_partitioned(weight: torch.Tensor) -> bool:
    return hasattr(weight, "ds_id")  # DeepSpeed ZeRO-3 parameter


def last_hidden(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Hidden state of the last non-pad token of each row, ``(N, H)``."""
    mask = batch["attention_mask"]
    bb = backbone(model)
    # Qwen2-VL family: 3-D M-RoPE positions from the image grids and the mask
    if hasattr(bb, "get_rope_index"):
        position_ids = mrope_positions(bb, batch)
    else:
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    extra = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "token_type_ids")}
    out = bb(
        input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids, use_cache=False, **extra
    )
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    n, t = mask.shape
    # index of the last 1 in each row works for left and right padding alike
    idx = (torch.arange(t, device=mask.device).unsqueeze(0) * mask).argmax(-1)
    return hidden[torch.arange(n, device=hidden.device), idx]


def answer_logits(
    model: Any, contract: ScoringContract, h: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """z_yes, z_no from the two lm_head rows only."""
    lm_head = unwrap(model).get_output_embeddings()
    ids = [contract.answer_token_ids["yes"], contract.answer_token_ids["no"]]
    h = h.float()  # the two answer rows in float32, also under autocast (bf16 logits would create ties)
    if _is_partitioned(lm_head.weight):
        # ZeRO-3: weights live in shards; calling the module gathers them (and partitions the gradient).
        z = lm_head(h)[:, ids]
    else:
        bias = lm_head.bias[ids].float() if getattr(lm_head, "bias", None) is not None else None
        with torch.autocast(device_type=h.device.type, enabled=False):
            z = F.linear(h, lm_head.weight[ids].float(), bias)
    z = z.float()
    return z[:, 0], z[:, 1]


def apply_formula(formula: str, z_yes: torch.Tensor, z_no: torch.Tensor) -> torch.Tensor:
    if formula == "logit_diff":
        return z_yes - z_no
    if formula == "log_softmax_yes":
        return z_yes - torch.logaddexp(z_yes, z_no)
    if formula == "yes_logit":
        return z_yes
    raise ValueError(f"formula {formula!r} is not a yes/no formula")


def scores_from_hidden(model: Any, contract: ScoringContract, h: torch.Tensor) -> ScoreOutput:
    """Causal kinds: the last-position hidden states ``(N, H)`` → scores (the yes/no rows, or the ``score`` head)."""
    if contract.kind == "yesno":
        z_yes, z_no = answer_logits(model, contract, h)
        return ScoreOutput(apply_formula(contract.formula, z_yes, z_no), z_yes, z_no)
    return ScoreOutput(unwrap(model).score(h)[:, 0].float())


def score_forward(model: Any, contract: ScoringContract, batch: dict[str, torch.Tensor]) -> ScoreOutput:
    if contract.kind == "head" and contract.architecture == "encoder":
        return ScoreOutput(model(**batch).logits[:, 0].float())
    if contract.kind in ("yesno", "head"):
        return scores_from_hidden(model, contract, last_hidden(model, batch))
    raise ValueError(f"score_forward does not handle kind {contract.kind!r}; listwise rerankers rank lists")


def mrope_positions(backbone: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Qwen2-VL M-RoPE position ids ``(3, N, T)`` from the ids, the image grids and the attention mask.

    For a text-only row all three rows equal the 1-D positions of the text path (0, 1, … over the unmasked
    tokens), so a text-only pair scores as a text model with the same weights would."""
    ids = batch["input_ids"]
    mm_types = (ids == backbone.config.image_token_id).int()
    positions, _ = backbone.get_rope_index(
        ids,
        mm_token_type_ids=mm_types,
        image_grid_thw=batch.get("image_grid_thw"),
        attention_mask=batch["attention_mask"],
    )
    return positions
