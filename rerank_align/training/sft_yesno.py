"""SFT yes/no with full-vocabulary cross-entropy on TRL ``SFTTrainer``.

Each (query, doc) of a group becomes a prompt–completion record: the prompt is the contract's tokenised template
(the exact ids ``Reranker`` scores), the completion is the single answer token ("yes" for positives, "no" for
negatives). The dataset is handed to SFTTrainer pre-tokenised (``input_ids`` + ``labels`` with -100 on the prompt),
so TRL's loss is the cross-entropy of the answer token over the whole vocabulary, and the saved model is scored
by the same ``reranker.json`` as the score trainer's.
"""

from __future__ import annotations

from typing import Any

from rerank_align.scoring.encode import PairEncoder
from rerank_align.training.common import RerankTrainerMixin


def sft_examples(records: list[dict], encoder: PairEncoder, group_size: int, seed: int) -> list[dict]:
    from rerank_align.training.collator import GroupCollator

    c = encoder.contract
    yes, no = c.answer_token_ids["yes"], c.answer_token_ids["no"]
    grouper = GroupCollator(encoder, group_size, seed=seed)
    queries, docs, answers = [], [], []
    for i, rec in enumerate(records):
        group, labels, _ = grouper.group(i, rec)
        for d, y in zip(group, labels):
            queries.append(rec["query"])
            docs.append(d)
            answers.append(yes if y > 0 else no)
    feats = encoder.encode(queries, docs)
    return [
        {"input_ids": f["input_ids"] + [a], "labels": [-100] * len(f["input_ids"]) + [a]}
        for f, a in zip(feats, answers)
    ]


def build_sft_yesno_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval) -> Any:
    from datasets import Dataset
    from trl import SFTTrainer

    encoder = PairEncoder(tokenizer, contract)
    examples = sft_examples(records, encoder, recipe.method.group_size, recipe.seed)
    args.max_length = max(len(e["input_ids"]) for e in examples)
    args.dataset_kwargs = {**(args.dataset_kwargs or {})}

    class YesNoSFTTrainer(RerankTrainerMixin, SFTTrainer):
        pass

    trainer = YesNoSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        eval_dataset=Dataset.from_list(examples[:1]) if ranking_eval else None,
        processing_class=tokenizer,
    )
    trainer.contract, trainer.ranking_eval = contract, ranking_eval
    return trainer
