"""DPO of a listwise reranker on TRL ``DPOTrainer`` (Rafailov et al. 2023, arXiv 2305.18290), and what every
preference trainer shares: the trainer base, preference records and permutations sampled from the policy.

Every sequence is ``prompt + answer``, where the prompt is the contract's list prompt (``ListPromptBuilder``, the ids
inference uses) and the answer a ranking string ``"[3] > [1] > [2]"`` + eos (a pointwise preference answers with the
chosen passage's identifier alone: "this one goes first").

:class:`ListwiseDPOTrainer` runs TRL's own DPO loss and every ``training.loss_type`` (sigmoid, ipo, hinge, robust,
…) on pre-tokenised preference records. The reference is TRL's: a loaded copy of the base, the adapter disabled
under PEFT, or ``training.precompute_ref_log_probs``. The list preference trainer (IRPO, PL-DPO:
``list_preference_trainer.py``) and the distillation trainer (ADPA, DCKD: ``distill_preference_trainer.py``)
subclass it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset
from trl import DPOTrainer

from rerank_align.listwise.preference import (
    pointwise_preferences,
    preferences_from_qrels,
    preferences_from_samples,
    preferences_from_student_samples,
    sample_permutations,
)
from rerank_align.scoring.listwise import ListwiseRanker
from rerank_align.scoring.listwise_format import render_identifier
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.training.common import RerankTrainerMixin


def answer_ids(builder: ListPromptBuilder, answer: list[int] | int, n: int) -> list[int]:
    """The completion ids of a permutation (ranking + eos) or of a single passage index (its identifier only)."""
    if isinstance(answer, int):
        f = builder.fmt
        return builder.literal(render_identifier(f.identifier, answer, f.first_index))
    return builder.target(list(answer))[0]


def dpo_examples(records: Sequence[dict], builder: ListPromptBuilder) -> list[dict]:
    """Preference records → ``{"prompt_ids", "chosen_ids", "rejected_ids", "idx"}`` (TRL's tokenised format)."""
    out = []
    for i, r in enumerate(records):
        n = len(r["docs"])
        out.append(
            {
                "prompt_ids": builder.build(r["query"], r["docs"]).input_ids,
                "chosen_ids": answer_ids(builder, r["chosen"], n),
                "rejected_ids": answer_ids(builder, r["rejected"], n),
                "idx": i,
            }
        )
    return out


def policy_samples(
    model: Any, builder: ListPromptBuilder, records: Sequence[dict], mc: Any, k: int | None = None
) -> list:
    """``k`` (default ``mc.num_samples``) permutations per record sampled from the current listwise policy."""
    ranker = ListwiseRanker(model, builder.tokenizer, builder.contract)
    return sample_permutations(
        ranker,
        [r["query"] for r in records],
        [r["docs"] for r in records],
        k=mc.num_samples if k is None else k,
        temperature=mc.sample_temperature,
    )


def preference_records(
    recipe: Any, records: list[dict], builder: ListPromptBuilder, model: Any
) -> list[dict]:
    """Preference records as given (``data.train_file``), or built from list records: from the graded qrels, or,
    with ``method.preference_source: samples``, against the farthest of permutations sampled from ``model``, or,
    with ``student``, against one permutation sampled from ``model`` as it is (ADPA's released semantics)."""
    if not records or "chosen" in records[0]:
        return records
    mc = recipe.method
    if mc.preference_source == "qrels":
        return preferences_from_qrels(records)
    if mc.preference_source == "pointwise":
        return pointwise_preferences(records, pairs_per_query=mc.num_samples, seed=recipe.seed)
    if mc.preference_source == "student":
        return preferences_from_student_samples(records, policy_samples(model, builder, records, mc, k=1))
    samples = policy_samples(model, builder, records, mc)
    return preferences_from_samples(records, samples)


def preference_dataset(recipe: Any, records: list[dict], builder: ListPromptBuilder, model: Any, args: Any):
    """The tokenised preference pairs of a recipe as a ``Dataset``; sets ``args.max_length`` to the longest pair.

    The contract already bounds prompt + answer by model.max_length; TRL's collator must not cut them again
    (DPOConfig.max_length defaults to 1024 and would silently drop the answers of longer list prompts)."""
    examples = dpo_examples(preference_records(recipe, records, builder, model), builder)
    args.max_length = max(
        len(e["prompt_ids"]) + max(len(e["chosen_ids"]), len(e["rejected_ids"])) for e in examples
    )
    return Dataset.from_list(examples)


class ListwiseDPOTrainer(RerankTrainerMixin, DPOTrainer):
    """TRL's DPOTrainer on pre-tokenised listwise preference records (TRL's losses, reference handling, metrics)."""

    def __init__(self, *a: Any, contract: Any = None, ranking_eval: Any = None, **kw: Any) -> None:
        self.contract = contract
        self.ranking_eval = ranking_eval
        super().__init__(*a, **kw)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        # the rows are already the contract's exact ids (prompt_ids / chosen_ids / …, or item examples): TRL's
        # text path (prompt extraction, eos, re-tokenisation) must not touch them
        return dataset


def build_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval) -> ListwiseDPOTrainer:
    """``dpo``: TRL's DPO on preference records (given, or built from list records by ``preference_source``)."""
    builder = ListPromptBuilder(tokenizer, contract)
    return ListwiseDPOTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        contract=contract,
        ranking_eval=ranking_eval,
        train_dataset=preference_dataset(recipe, records, builder, model, args),
    )
