"""What every method family's config section shares (the families: score_config.py, sft_yesno_config.py,
listwise_config.py, dpo_config.py, list_preference_config.py, distill_preference_config.py).

A family's section is a dataclass: its fields are the keys of the recipe's ``method:`` mapping that the family
reads (each documented once in its ``help``), its class attributes say what it trains on (``records``), with which
transformers / TRL arguments class (``args_class``), whether it trains a listwise reranker (``listwise``) and which
module under ``rerank_align/training`` builds its trainer (``trainer``; that module defines ``build_trainer``), and
its ``check`` holds the family's parse-time rules. ``config.recipe.MethodConfig`` (the ``method:`` mapping) is the
union of the sections' fields, so recipes keep one flat ``method:`` mapping; ``config.recipe.METHODS`` maps each
method name to its family's section.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rerank_align.errors import RecipeError
from rerank_align.strict import field, unknown_key_error


@dataclass
class MethodSection:
    records: ClassVar[str]  # "group" | "list" | "preference": the training records it reads
    args_class: ClassVar[
        str
    ]  # "TrainingArguments" | "SFTConfig" | "DPOConfig": the `training:` section's class
    listwise: ClassVar[bool] = False  # trains a listwise reranker (model.kind listwise, a causal LM)
    trainer: ClassVar[str]  # its module under rerank_align/training (which defines build_trainer)

    name: str = field("score", help="Training method (see the method table in the README).")
    loss_args: dict[str, Any] = field({}, help="Hyper-parameters of the loss (its keyword arguments).")

    @classmethod
    def record_kind(cls, name: str) -> str:
        """The records method ``name`` trains on: its family's ``records``."""
        return cls.records

    @classmethod
    def check(cls, recipe: Any, architecture: str) -> None:
        """The family's rules on a parsed recipe (``architecture``: the model's, ``auto`` resolved); every error
        names the key and the fix. Subclasses add theirs after ``super().check``."""
        m, name = recipe.model, recipe.method.name
        if cls.listwise and architecture == "encoder":
            raise RecipeError(
                f"method '{name}' generates rankings and needs a causal LM, but the model is an encoder",
                where="method.name",
                hint="use method: score with an encoder, or a causal base model",
            )
        if cls.listwise and m.kind != "listwise":
            raise RecipeError(
                f"method '{name}' trains a listwise reranker",
                where="model.kind",
                hint="set model.kind: listwise",
            )
        if not cls.listwise and m.kind == "listwise":
            raise RecipeError(
                f"method '{name}' trains a pointwise scorer", where="model.kind", hint="use yesno or head"
            )


def check_loss_args(loss_args: dict[str, Any], loss: Callable) -> None:
    """``method.loss_args`` are keyword-only hyper-parameters of ``loss``, less those the trainer sets (``beta``:
    ``training.beta``; ``parts``, the logged terms)."""
    allowed = tuple(
        p.name
        for p in inspect.signature(loss).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("beta", "parts")
    )
    for k in loss_args:
        if k not in allowed:
            raise unknown_key_error("method.loss_args", k, allowed)


@dataclass
class GroupMethod(MethodSection):
    """Families that train on groups of one query's candidates (score, sft_yesno)."""

    records: ClassVar[str] = "group"

    group_size: int = field(
        8, help="Candidates per query in a training group (1 positive + group_size-1 negatives).", min=1
    )


@dataclass
class ListMethod(MethodSection):
    """Families that train a listwise reranker: the list inference saved in its reranker.json."""

    listwise: ClassVar[bool] = True

    listwise_decoding: Literal["auto", "generate", "first"] = field(
        "auto",
        help="Listwise inference saved in reranker.json: 'auto' = first for FIRST, generate for fullrank and the "
        "preference methods.",
    )
    listwise_strategy: Literal["sliding", "full"] = field(
        "sliding", help="Listwise inference: sliding windows (back to front) or one full-list pass."
    )
    listwise_window: int = field(20, help="Listwise inference: candidates per window.", min=2)
    listwise_stride: int = field(10, help="Listwise inference: window step (≤ window).", min=1)
