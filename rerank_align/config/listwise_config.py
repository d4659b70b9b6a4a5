"""The ``listwise`` family (methods ``fullrank`` and ``first``): full-list SFT on TRL's SFTTrainer
(``training/listwise_trainer.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from rerank_align.config.method_section import ListMethod
from rerank_align.strict import field


@dataclass
class ListwiseMethod(ListMethod):
    records: ClassVar[str] = "list"
    args_class: ClassVar[str] = "SFTConfig"
    trainer: ClassVar[str] = "listwise_trainer"

    first_lambda: float = field(
        10.0,
        help="FIRST: weight λ of the RankNet term on first-token identifier logits (L = L_LM + λ·RankNet).",
        min=0.0,
    )
    token_weight_norm: Literal["tokens", "weights"] = field(
        "tokens",
        help="fullrank: normalise the weighted token NLL by the token count (paper) or by Σ weights.",
    )
