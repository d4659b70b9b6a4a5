"""The ``sft_yesno`` family: TRL's SFT on the answer token of each (query, doc) of a group
(``training/sft_yesno_trainer.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rerank_align.config.method_section import GroupMethod
from rerank_align.errors import RecipeError


@dataclass
class SFTYesNoMethod(GroupMethod):
    args_class: ClassVar[str] = "SFTConfig"
    trainer: ClassVar[str] = "sft_yesno_trainer"

    @classmethod
    def check(cls, recipe: Any, architecture: str) -> None:
        super().check(recipe, architecture)
        if recipe.model.kind != "yesno":
            raise RecipeError(
                "sft_yesno trains the yes/no answer token", where="model.kind", hint="set model.kind: yesno"
            )
