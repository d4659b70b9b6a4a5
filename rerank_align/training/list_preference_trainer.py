"""List preference on TRL ``DPOTrainer``: IRPO and Plackett-Luce DPO, losses over K *items* of a query, each item
a span of completion tokens.

- IRPO (arXiv 2504.15477, :func:`~rerank_align.losses.irpo_loss`): one completion, the list the policy generates,
  whose items are its identifiers (mean-token log-ratio per identifier, graded relevance, positional weights);
  ``method.irpo_rounds > 1`` regenerates the lists with the current policy between rounds (iterative IRPO).
- PL-DPO (:func:`~rerank_align.losses.plackett_luce_dpo`): K completions (the target ranking and permutations
  sampled from the policy), each one item (summed log-ratio), ranked by nDCG against the labels.

The reference is TRL's, as for DPO (``dpo_trainer.py``): a loaded copy of the base, the adapter disabled under
PEFT, or ``training.precompute_ref_log_probs`` (item log-probs stored per example before training).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl.trainer.utils import use_adapter

from rerank_align.errors import RecipeError
from rerank_align.listwise.preference import gains_of, ndcg
from rerank_align.losses.preference import irpo_loss, plackett_luce_dpo
from rerank_align.losses.token_weights import token_logps
from rerank_align.scoring.listwise import ListwiseRanker
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.training.completions import completion_batch, forward_logits, pad_id_of
from rerank_align.training.dpo_trainer import ListwiseDPOTrainer, policy_samples
from rerank_align.training.ranking_eval import scoring_mode

# --------------------------------------------------------------------------------------------------------------
# examples


def identifier_items(builder: ListPromptBuilder, ranking: list[int]) -> tuple[list[int], list[int]]:
    """Answer ids of ``ranking`` and, per token, the candidate whose identifier it belongs to (-1: separator, eos).

    A token belongs to an identifier when its character range overlaps the identifier's span, so merged tokens
    (``"] >"``) and multi-token identifiers (``[12]``) are handled for any tokenizer."""
    ids, offs, _, spans = builder.target(ranking)
    items = []
    for a, b in offs:
        owner = -1
        if b > a:
            for rank, (s, e) in enumerate(spans):
                if a < e and b > s:
                    owner = ranking[rank]
                    break
        items.append(owner)
    return ids, items


def irpo_example(builder: ListPromptBuilder, record: dict, ranking: list[int]) -> dict:
    """One IRPO example: the list ``ranking`` (as generated) is the completion; its identifiers are the items."""
    ids, items = identifier_items(builder, ranking)
    return {
        "prompt": builder.build(record["query"], record["docs"]).input_ids,
        "completions": [ids],
        "items": [items],
        "target": gains_of(record),
    }


def pl_dpo_example(builder: ListPromptBuilder, record: dict, rankings: Sequence[list[int]]) -> dict:
    """One PL-DPO example: the rankings (best first) are the K completions, each one item (its whole answer)."""
    comps = [builder.target(list(r))[0] for r in rankings]
    return {
        "prompt": builder.build(record["query"], record["docs"]).input_ids,
        "completions": comps,
        "items": [[k] * len(c) for k, c in enumerate(comps)],
        "target": list(range(len(comps))),
    }


def ranked_permutations(record: dict, samples: Sequence[list[int]], k: int = 10) -> list[list[int]]:
    """The record's ranking, the first-stage order and the samples, deduplicated and sorted best first by nDCG@k;
    permutations tied in nDCG with a better one are dropped (a Plackett-Luce ranking must not order equals)."""
    gains = gains_of(record)
    seen, scored = set(), []
    for p in [list(record["ranking"]), list(range(len(record["docs"]))), *map(list, samples)]:
        if tuple(p) in seen:
            continue
        seen.add(tuple(p))
        scored.append((ndcg(p, gains, k), p))
    scored.sort(key=lambda x: -x[0])
    out, last = [], None
    for v, p in scored:
        if last is None or v < last - 1e-9:
            out.append(p)
            last = v
    return out


def pl_dpo_examples(recipe: Any, records: list[dict], builder: ListPromptBuilder, model: Any) -> list[dict]:
    """PL-DPO examples: preference records give K = 2 (chosen, rejected); list records give the target ranking,
    the first-stage order and ``method.num_samples`` permutations sampled from ``model``, ranked by nDCG."""
    if "chosen" in records[0]:
        return [pl_dpo_example(builder, r, [r["chosen"], r["rejected"]]) for r in records]
    samples = policy_samples(model, builder, records, recipe.method)
    return [pl_dpo_example(builder, r, ranked_permutations(r, s)) for r, s in zip(records, samples)]


def generate_rankings(model: Any, builder: ListPromptBuilder, records: Sequence[dict]) -> list[list[int]]:
    """Greedy full-list rankings of ``records`` by ``model`` (listwise inference, one window per list). The model
    stays in train mode with dropout off (an eval-mode forward of a 4-bit model on CPU breaks the next training
    step; DPOTrainer disables dropout anyway, so this is the eval-mode function)."""
    ranker = ListwiseRanker(model, builder.tokenizer, builder.contract)
    with scoring_mode(model, keep_train_mode=True):
        res = ranker.rank_lists(
            [r["query"] for r in records],
            [r["docs"] for r in records],
            strategy="full",
            decoding="generate",
        )
    return [r.order for r in res]


# --------------------------------------------------------------------------------------------------------------
# batches


class ItemCollator:
    """Left-pads ``prompt + completion`` sequences of a batch of item examples (``dataset`` rows are ``{"idx"}``;
    the examples live in ``self.examples`` so that iterative IRPO can replace them between rounds).

    Returns ``input_ids``, ``attention_mask`` (S, T), ``item_index`` (S, T) (-1 off items), ``seq_query`` (S,),
    ``target`` (B, K), ``item_mask`` (B, K), ``idx`` (B,), ``logits_to_keep``."""

    def __init__(self, examples: list[dict], pad_id: int) -> None:
        self.examples = examples
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        exs = [self.examples[int(f["idx"])] for f in features]
        prompts, comps, items, owner = [], [], [], []
        for q, ex in enumerate(exs):
            for comp, it in zip(ex["completions"], ex["items"]):
                prompts.append(ex["prompt"])
                comps.append(comp)
                items.append([-1] * len(ex["prompt"]) + it)
                owner.append(q)
        batch = completion_batch(prompts, comps, self.pad_id, item_index=(items, -1, torch.long))
        k = max(len(ex["target"]) for ex in exs)
        target = torch.zeros((len(exs), k))
        item_mask = torch.zeros((len(exs), k), dtype=torch.bool)
        for q, ex in enumerate(exs):
            target[q, : len(ex["target"])] = torch.tensor(ex["target"], dtype=torch.float32)
            item_mask[q, : len(ex["target"])] = True
        return {
            **batch,
            "seq_query": torch.tensor(owner),
            "target": target,
            "item_mask": item_mask,
            "idx": torch.tensor([int(f["idx"]) for f in features]),
        }


def item_logps(model: Any, batch: dict[str, torch.Tensor], *, mean: bool) -> torch.Tensor:
    """(B, K) log-probabilities of each item's tokens (mean over its tokens, or the sum)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    keep = int(batch["logits_to_keep"])
    logits = forward_logits(model, ids, mask, keep)
    item = batch["item_index"][:, -keep:]
    lp, m = token_logps(logits, ids[:, -keep:], item >= 0)
    item = item[:, 1:]
    b, k = batch["item_mask"].shape
    flat = (batch["seq_query"][:, None] * k + item.clamp(min=0))[m]
    sums = torch.zeros(b * k, dtype=lp.dtype, device=lp.device).index_add(0, flat, lp[m])
    if not mean:
        return sums.view(b, k)
    counts = torch.zeros(b * k, dtype=lp.dtype, device=lp.device).index_add(0, flat, torch.ones_like(lp[m]))
    return (sums / counts.clamp(min=1)).view(b, k)


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


# --------------------------------------------------------------------------------------------------------------
# the trainer


class ListPreferenceTrainer(ListwiseDPOTrainer):
    """IRPO and PL-DPO: per-item policy/reference log-ratios over K items per query (see the module docstring)."""

    def __init__(
        self,
        *a: Any,
        objective: str,
        examples: list[dict],
        pad_id: int,
        loss_args: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        if objective not in ("irpo", "pl_dpo"):
            raise ValueError(f"objective must be 'irpo' or 'pl_dpo', got {objective!r}")
        self.objective = objective
        self.loss_args = dict(loss_args or {})  # the loss's hyper-parameters (IRPO: item_mean)
        self.item_collator = ItemCollator(examples, pad_id)
        self._ref_store: dict[int, torch.Tensor] = {}
        super().__init__(*a, data_collator=self.item_collator, **kw)
        self.model_accepts_loss_kwargs = False

    @property
    def mean_items(self) -> bool:
        # IRPO: mean-token log-ratio per identifier; PL-DPO: whole-answer sums
        return self.objective == "irpo"

    def _reference_logps(self, batch: dict[str, torch.Tensor], model: Any | None = None) -> torch.Tensor:
        with torch.no_grad():
            if self.ref_model is not None:
                return item_logps(self.ref_model, batch, mean=self.mean_items)
            policy = model if model is not None else self.model
            unwrapped = self.accelerator.unwrap_model(policy)
            if _is_peft(unwrapped):
                name = "ref" if "ref" in unwrapped.peft_config else None
                with use_adapter(unwrapped, adapter_name=name):
                    return item_logps(policy, batch, mean=self.mean_items)
            return item_logps(policy, batch, mean=self.mean_items)  # before training only (precompute)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        """``precompute_ref_log_probs``: every example's reference item log-probs once, before training."""
        device = self.accelerator.device
        self.model.to(device)
        for start in range(0, len(dataset), batch_size):
            rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = {k: v.to(device) for k, v in self.item_collator(rows).items()}
            ref = self._reference_logps(batch).cpu()
            for row, r in zip(rows, ref):
                self._ref_store[int(row["idx"])] = r
        return dataset

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        policy = item_logps(model, inputs, mean=self.mean_items)
        if self.precompute_ref_logps:
            k = policy.shape[1]
            ref = torch.stack([self._ref_store[int(i)][:k] for i in inputs["idx"]]).to(policy)
        else:
            ref = self._reference_logps(inputs, model).to(policy)
        mask = inputs["item_mask"]
        if self.objective == "irpo":
            loss = irpo_loss(policy, ref, inputs["target"], mask, beta=self.beta, **self.loss_args)
        else:
            ranking = torch.where(mask, inputs["target"].long(), torch.full_like(mask, -1, dtype=torch.long))
            loss = plackett_luce_dpo(policy, ref, ranking, beta=self.beta, **self.loss_args)
        mode = "train" if model.training else "eval"
        ratio = torch.where(mask, policy - ref, torch.zeros_like(policy)).detach()
        self._metrics[mode]["logratio/mean"].append(float(ratio.sum() / mask.sum().clamp(min=1)))
        return (loss, {}) if return_outputs else loss

    # -- iterative IRPO --------------------------------------------------------------------------------------
    def regenerate(self, records: Sequence[dict], builder: ListPromptBuilder) -> list[list[int]]:
        """Greedy lists of the *current* policy for every record; the IRPO examples are rebuilt from them."""
        rankings = generate_rankings(self.accelerator.unwrap_model(self.model), builder, records)
        self.item_collator.examples[:] = [irpo_example(builder, r, p) for r, p in zip(records, rankings)]
        return rankings


class RegenerateCallback(TrainerCallback):
    """Iterative IRPO: between rounds (every ``ceil(max_steps / rounds)`` optimizer steps) the policy regenerates
    the lists that the next round's items come from."""

    def __init__(
        self, trainer: Any, records: Sequence[dict], builder: ListPromptBuilder, rounds: int
    ) -> None:
        self.trainer, self.records, self.builder, self.rounds = trainer, records, builder, rounds
        self.regenerated = 0

    def on_step_end(self, args, state, control, **kwargs):
        every = max(1, math.ceil(state.max_steps / self.rounds))
        if state.global_step % every == 0 and state.global_step < state.max_steps:
            self.trainer.regenerate(self.records, self.builder)
            self.regenerated += 1


def build_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval) -> ListPreferenceTrainer:
    """``irpo`` (on list records, lists generated by the policy) and ``pl_dpo`` (ranked permutations)."""
    builder = ListPromptBuilder(tokenizer, contract)
    mc = recipe.method
    if mc.name == "irpo":
        if "chosen" in records[0]:
            raise RecipeError(
                "IRPO trains on list records with graded labels, not preference pairs",
                where="data.train_file",
                hint="give list records {query, docs, ranking, labels} or build them from data.beir",
            )
        rankings = generate_rankings(model, builder, records)
        examples = [irpo_example(builder, r, p) for r, p in zip(records, rankings)]
    else:
        examples = pl_dpo_examples(recipe, records, builder, model)
    trainer = ListPreferenceTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        contract=contract,
        ranking_eval=ranking_eval,
        train_dataset=Dataset.from_list([{"idx": i} for i in range(len(examples))]),
        objective=mc.name,
        examples=examples,
        pad_id=pad_id_of(tokenizer),
        loss_args=mc.loss_args,
    )
    if mc.name == "irpo" and mc.irpo_rounds > 1:
        trainer.add_callback(RegenerateCallback(trainer, records, builder, mc.irpo_rounds))
    return trainer
