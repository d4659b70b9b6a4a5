"""The ``score`` family (methods ``score`` and ``pg_rank``): a pure loss from ``rerank_align.losses.SCORE_LOSSES``
on groups scored through the contract (``training/score_trainer.py``).

What a loss needs is read from its signature, never from a list of loss names: teacher scores (a required
``teacher_scores``), yes/no logits (a required ``yes_logits``), in-batch negatives (an ``in_batch_scores``
parameter), its hyper-parameters (the other parameters with defaults); a pointwise loss is one of
``rerank_align.losses.pointwise``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rerank_align.config.method_section import GroupMethod
from rerank_align.errors import RecipeError
from rerank_align.losses import SCORE_LOSSES, TENSOR_ARGS, pointwise, required_tensors
from rerank_align.strict import coerce, field, suggest, unknown_key_error


def score_loss(name: str) -> Callable:
    """The score loss ``method.loss`` names (unknown: one line with the closest name)."""
    if name not in SCORE_LOSSES:
        raise RecipeError(
            f"unknown loss {name!r}",
            where="method.loss",
            hint=suggest(name, SCORE_LOSSES) or f"one of {', '.join(SCORE_LOSSES)}",
        )
    return SCORE_LOSSES[name]


def loss_hyperparameters(loss: Callable) -> dict[str, inspect.Parameter]:
    """The parameters of a score loss that ``method.loss_args`` may set: those with a default, not a tensor."""
    return {
        n: p
        for n, p in inspect.signature(loss).parameters.items()
        if n not in TENSOR_ARGS and p.default is not inspect.Parameter.empty
    }


def is_pointwise(loss: Callable) -> bool:
    """A pointwise loss scores each candidate on its own: it needs no negative in a group."""
    return loss.__module__ == pointwise.__name__


def pointwise_losses() -> list[str]:
    return [n for n, f in SCORE_LOSSES.items() if is_pointwise(f)]


def in_batch_losses() -> list[str]:
    return [n for n, f in SCORE_LOSSES.items() if "in_batch_scores" in inspect.signature(f).parameters]


@dataclass
class ScoreMethod(GroupMethod):
    args_class: ClassVar[str] = "TrainingArguments"
    trainer: ClassVar[str] = "score_trainer"

    loss: str = field("infonce", help="Loss of the score trainer: a key of rerank_align.losses.SCORE_LOSSES.")
    in_batch_negatives: bool = field(
        False, help="Also score each query against the other groups' documents (losses with in_batch_scores)."
    )
    chunk_size: int | None = field(
        None, help="Score groups in sub-batches of this many pairs (memory ∝ chunk).", min=1
    )

    @classmethod
    def check(cls, recipe: Any, architecture: str) -> None:
        super().check(recipe, architecture)
        method = recipe.method
        if method.name == "pg_rank" and method.loss != "pg_rank":
            raise RecipeError(
                "method pg_rank trains with the pg_rank loss",
                where="method.loss",
                hint="set method.loss: pg_rank",
            )
        fn = score_loss(method.loss)
        hp = loss_hyperparameters(fn)
        hints = typing.get_type_hints(fn)
        for k, v in method.loss_args.items():
            if k not in hp:
                raise unknown_key_error("method.loss_args", k, hp)
            if k in hints:
                coerce(v, hints[k], f"method.loss_args.{k}")
        if method.in_batch_negatives and "in_batch_scores" not in inspect.signature(fn).parameters:
            raise RecipeError(
                f"loss '{method.loss}' takes no in-batch negatives",
                where="method.in_batch_negatives",
                hint=f"use {' / '.join(in_batch_losses())}, or set it to false",
            )
        if not is_pointwise(fn) and method.group_size < 2:
            raise RecipeError(
                f"loss '{method.loss}' compares candidates within a group, but group_size is {method.group_size}",
                where="method.group_size",
                hint=f"use group_size >= 2, or a pointwise loss ({', '.join(pointwise_losses())})",
            )
        if "yes_logits" in required_tensors(fn) and recipe.model.kind != "yesno":
            raise RecipeError(
                f"loss '{method.loss}' needs yes/no logits", where="method.loss", hint="set model.kind: yesno"
            )
        if "teacher_scores" in required_tensors(fn) and not (
            recipe.data.teacher_files or recipe.data.train_file
        ):
            raise RecipeError(
                f"loss '{method.loss}' distils a teacher but no teacher scores are given",
                where="data.teacher_files",
                hint="list teacher score files, or a train_file whose groups carry 'scores'",
            )

    @classmethod
    def min_negatives(cls, recipe: Any) -> int:
        """A contrastive group needs a negative: with none (and no in-batch negatives) its loss is 0, silently."""
        m = recipe.method
        if m.group_size < 2 or m.in_batch_negatives or is_pointwise(score_loss(m.loss)):
            return 0
        return 1
