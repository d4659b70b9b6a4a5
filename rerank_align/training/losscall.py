"""Calling a pure loss with the tensors it names (docs/design.md §3): the trainer never special-cases a loss."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from rerank_align.errors import RecipeError
from rerank_align.losses import TENSOR_ARGS, required_tensors


def tensor_params(fn: Callable) -> list[str]:
    return [n for n in inspect.signature(fn).parameters if n in TENSOR_ARGS]


def call_loss(
    fn: Callable, tensors: dict[str, torch.Tensor | None], loss_args: dict[str, Any]
) -> torch.Tensor:
    kwargs: dict[str, Any] = {}
    for name in tensor_params(fn):
        value = tensors.get(name)
        if value is None:
            if name in required_tensors(fn):
                raise RecipeError(
                    f"loss {fn.__name__} needs '{name}' but the batch has none",
                    where="method.loss",
                    hint="teacher scores come from data.teacher_files or group 'scores'; yes/no logits need kind yesno",
                )
            continue
        kwargs[name] = value
    return fn(**kwargs, **loss_args)
