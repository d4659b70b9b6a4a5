"""SFT yes/no with full-vocabulary cross-entropy on TRL ``SFTTrainer``.

Each (query, doc) of a group becomes a prompt–completion record: the prompt is the contract's tokenised template
(the exact ids ``Reranker`` scores), the completion is the single answer token ("yes" for positives, "no" for
negatives). The dataset is handed to SFTTrainer pre-tokenised (``input_ids`` + ``labels`` with -100 on the prompt),
so TRL's loss is the cross-entropy of the answer token over the whole vocabulary, and the saved model is scored
by the same ``reranker.json`` as the score trainer's.

A VLM contract (``vision``): each example also names its image files (``image_files``, in prompt order) and
``VisionSFTCollator`` adds their ``pixel_values`` / ``image_grid_thw`` and the ``mm_token_type_ids`` the model
needs for its M-RoPE positions; the prompt ids are still exactly the ones ``Reranker`` scores.
"""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset
from trl import SFTTrainer

from rerank_align.scoring.encode import PairEncoder
from rerank_align.scoring.modeling import pair_encoder
from rerank_align.training.collator import GroupCollator
from rerank_align.training.common import RerankTrainerMixin


def sft_examples(records: list[dict], encoder: PairEncoder, group_size: int, seed: int) -> list[dict]:
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
    examples = []
    for f, a in zip(feats, answers):
        ex = {"input_ids": f["input_ids"] + [a], "labels": [-100] * len(f["input_ids"]) + [a]}
        if "image_files" in f:  # not "images": TRL would then re-process the dataset as a vision dataset
            ex["image_files"] = f["image_files"]
        examples.append(ex)
    return examples


class VisionSFTCollator:
    """Pads on the right (so the model's own positions for text-only batches equal the scoring positions), labels
    with -100, and adds the images through the contract's encoder."""

    def __init__(self, encoder: PairEncoder) -> None:
        self.encoder = encoder
        self.image_pad = encoder.contract.vision.token_ids["image_pad"]  # type: ignore[union-attr]

    def __call__(self, examples: list[dict]) -> dict[str, Any]:
        n = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), n), self.encoder.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), n), -100, dtype=torch.long)
        mask = torch.zeros((len(examples), n), dtype=torch.long)
        for i, e in enumerate(examples):
            m = len(e["input_ids"])
            ids[i, :m] = torch.tensor(e["input_ids"])
            labels[i, :m] = torch.tensor(e["labels"])
            mask[i, :m] = 1
        batch: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        files = [f for e in examples for f in e.get("image_files") or []]
        batch.update(self.encoder.image_tensors(files))  # type: ignore[attr-defined]
        batch["mm_token_type_ids"] = (ids == self.image_pad).int()
        return batch


class YesNoSFTTrainer(RerankTrainerMixin, SFTTrainer):
    """TRL's SFTTrainer (its loss: the answer token's cross-entropy over the vocabulary), saving as every
    rerank_align trainer does."""

    def __init__(self, *a: Any, contract: Any = None, ranking_eval: Any = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.contract, self.ranking_eval = contract, ranking_eval


def build_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval) -> YesNoSFTTrainer:
    """``sft_yesno``: every (query, doc) of a group is one example whose completion is its answer token."""
    encoder = pair_encoder(tokenizer, contract)
    examples = sft_examples(records, encoder, recipe.method.group_size, recipe.seed)
    # No example may be cut (its answer token is last; the contract already bounds its length). With packing,
    # max_length is the bin size: a larger recipe value is kept (TRL's BFD packs whole sequences into bins).
    # Padding-free without packing: TRL refuses a max_length it would not enforce. tests/training/test_padding_free.py
    longest = max(len(e["input_ids"]) for e in examples)
    if getattr(args, "packing", False):
        args.max_length = max(longest, args.max_length or 0)
    elif getattr(args, "padding_free", False):
        args.max_length = None
    else:
        args.max_length = longest
    args.dataset_kwargs = {**(args.dataset_kwargs or {})}
    collator = None
    if contract.vision is not None:
        collator = VisionSFTCollator(encoder)
        # the examples are final (ids + image files); TRL's own preparation would drop or re-tokenise them
        args.dataset_kwargs["skip_prepare_dataset"] = True
    return YesNoSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        eval_dataset=Dataset.from_list(examples[:1]) if ranking_eval else None,
        processing_class=tokenizer,
        data_collator=collator,
        contract=contract,
        ranking_eval=ranking_eval,
    )
