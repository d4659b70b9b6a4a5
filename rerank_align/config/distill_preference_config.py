"""The distillation preference family (methods ``adpa`` and ``dckd``): a student distils a preference-aligned
teacher on DPO's preference pairs (``training/distill_preference_trainer.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rerank_align.config.dpo_config import DPOMethod
from rerank_align.config.method_section import check_loss_args
from rerank_align.errors import RecipeError
from rerank_align.losses.preference import adpa_loss, dckd_loss
from rerank_align.strict import field


@dataclass
class DistillPreferenceMethod(DPOMethod):
    trainer: ClassVar[str] = "distill_preference_trainer"
    losses: ClassVar[dict[str, Callable]] = {"adpa": adpa_loss, "dckd": dckd_loss}

    teacher_model: str | None = field(
        None, help="ADPA/DCKD: the preference-aligned teacher (a model or adapter folder; same vocabulary)."
    )
    teacher_ref_model: str | None = field(
        None, help="ADPA: the aligned teacher's reference (pre-alignment) model, for the advantage."
    )
    teacher_topk: int = field(
        20,
        help="ADPA/DCKD: teacher log-probs kept on the aligned teacher's top-k tokens (0 = full vocabulary).",
        min=0,
    )
    teacher_precompute: bool = field(
        True, help="ADPA/DCKD: compute the teachers' top-k once before training and free the teachers."
    )

    @classmethod
    def check(cls, recipe: Any, architecture: str) -> None:
        super().check(recipe, architecture)
        method = recipe.method
        if not method.teacher_model:
            raise RecipeError(
                f"{method.name} distils a preference-aligned teacher, but none is given",
                where="method.teacher_model",
                hint="name the aligned (e.g. DPO-trained) teacher; it must share the student's vocabulary",
            )
        if method.name == "adpa" and not method.teacher_ref_model:
            raise RecipeError(
                "ADPA's advantage needs the aligned teacher's reference model",
                where="method.teacher_ref_model",
                hint="name the teacher's model before preference alignment",
            )
        check_loss_args(method.loss_args, cls.losses[method.name])
