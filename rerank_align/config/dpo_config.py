"""The ``dpo`` family: TRL's DPO on listwise preference pairs (``training/dpo_trainer.py``); the list preference
and distillation families build on it (their pairs and permutations come from the same keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from rerank_align.config.method_section import ListMethod
from rerank_align.strict import field


@dataclass
class DPOMethod(ListMethod):
    records: ClassVar[str] = "preference"
    args_class: ClassVar[str] = "DPOConfig"
    trainer: ClassVar[str] = "dpo_trainer"

    preference_source: Literal["qrels", "samples", "student", "pointwise"] = field(
        "qrels",
        help="dpo/adpa/dckd without a preference train_file: rejected = the first-stage order ('qrels'), the "
        "farthest by nDCG of num_samples permutations sampled from the starting model ('samples'), one sample of the "
        "starting model as it is ('student': ADPA's released semantics, the advantage applies to the student's own "
        "generation), or pointwise pairs (a higher- vs a lower-graded passage, num_samples per query; the answer is "
        "the passage to rank first).",
    )
    num_samples: int = field(
        4,
        help="Permutations sampled per list (preference_source samples; PL-DPO's ranked permutations).",
        min=1,
    )
    sample_temperature: float = field(1.0, help="Sampling temperature of those permutations.", min=1e-3)
