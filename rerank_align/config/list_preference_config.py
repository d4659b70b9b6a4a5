"""The list preference family (methods ``irpo`` and ``pl_dpo``): losses over the K items of a query on TRL's
DPOTrainer (``training/list_preference_trainer.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rerank_align.config.dpo_config import DPOMethod
from rerank_align.config.method_section import check_loss_args
from rerank_align.losses.preference import irpo_loss, plackett_luce_dpo
from rerank_align.strict import field


@dataclass
class ListPreferenceMethod(DPOMethod):
    trainer: ClassVar[str] = "list_preference_trainer"
    losses: ClassVar[dict[str, Callable]] = {"irpo": irpo_loss, "pl_dpo": plackett_luce_dpo}

    irpo_rounds: int = field(
        1,
        help="IRPO: >1 = iterative IRPO, the policy regenerates its lists this many times over training.",
        min=1,
    )

    @classmethod
    def record_kind(cls, name: str) -> str:
        # IRPO's items are the identifiers of the lists the policy generates: it reads list records only;
        # PL-DPO ranks a preference pair, or permutations of a list record
        return "list" if name == "irpo" else cls.records

    @classmethod
    def check(cls, recipe: Any, architecture: str) -> None:
        super().check(recipe, architecture)
        check_loss_args(recipe.method.loss_args, cls.losses[recipe.method.name])
