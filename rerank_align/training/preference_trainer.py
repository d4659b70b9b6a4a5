"""Preference alignment of listwise rerankers on TRL ``DPOTrainer`` (docs/design.md §4): DPO, IRPO, Plackett-Luce DPO,
ADPA and DCKD.

Every sequence is ``prompt + answer``, where the prompt is the contract's list prompt (``ListPromptBuilder``, the ids
inference uses) and the answer a ranking string ``"[3] > [1] > [2]"`` + eos (a pointwise preference answers with the
chosen passage's identifier alone: "this one goes first").

- :class:`ListwiseDPOTrainer` — TRL's own DPO loss and every ``training.loss_type`` (sigmoid, ipo, hinge, robust, …)
  on pre-tokenised preference records (Rafailov et al. 2023, arXiv 2305.18290). The reference is TRL's: a loaded
  copy of the base, the adapter disabled under PEFT, or ``training.precompute_ref_log_probs``.
- :class:`ListPreferenceTrainer` — losses over K *items* of a query, each item a span of completion tokens:
  IRPO (arXiv 2504.15477, :func:`~rerank_align.losses.irpo_loss`): one completion, the list the policy generates,
  whose items are its identifiers (mean-token log-ratio per identifier, graded relevance, positional weights);
  ``method.irpo_rounds > 1`` regenerates the lists with the current policy between rounds (iterative IRPO).
  PL-DPO (:func:`~rerank_align.losses.plackett_luce_dpo`): K completions (the target ranking and permutations
  sampled from the policy), each one item (summed log-ratio), ranked by nDCG against the labels.
- :class:`DistillPreferenceTrainer` — ADPA and DCKD (arXiv 2502.17927) from an aligned teacher (``method.
  teacher_model``) and, for ADPA, its reference (``method.teacher_ref_model``). The teachers' log-probabilities are
  kept on the aligned teacher's top-k tokens per position (``method.teacher_topk``; 0 = full vocabulary), either
  precomputed once before training (``method.teacher_precompute``, teachers freed afterwards) or computed per batch.
  Teachers must share the student's vocabulary; :func:`check_shared_vocabulary` refuses otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from rerank_align.errors import RecipeError, RerankAlignError
from rerank_align.listwise.preference import (
    gains_of,
    ndcg,
    pointwise_preferences,
    preferences_from_qrels,
    preferences_from_samples,
    preferences_from_student_samples,
    sample_permutations,
)
from rerank_align.losses.preference import (
    adpa_loss,
    dckd_loss,
    irpo_loss,
    plackett_luce_dpo,
)
from rerank_align.losses.token_weights import token_logps
from rerank_align.scoring.encode import left_pad
from rerank_align.scoring.listwise import ListwiseRanker
from rerank_align.scoring.listwise_format import render_identifier
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.training.common import RerankTrainerMixin
from rerank_align.training.ranking_eval import scoring_mode

# --------------------------------------------------------------------------------------------------------------
# encoding


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
        seqs, items, owner = [], [], []
        for q, ex in enumerate(exs):
            for comp, it in zip(ex["completions"], ex["items"]):
                seqs.append(ex["prompt"] + comp)
                items.append([-1] * len(ex["prompt"]) + it)
                owner.append(q)
        batch = left_pad(seqs, self.pad_id, item_index=(items, -1, torch.long))
        k = max(len(ex["target"]) for ex in exs)
        target = torch.zeros((len(exs), k))
        item_mask = torch.zeros((len(exs), k), dtype=torch.bool)
        for q, ex in enumerate(exs):
            target[q, : len(ex["target"])] = torch.tensor(ex["target"], dtype=torch.float32)
            item_mask[q, : len(ex["target"])] = True
        keep = max(len(c) for ex in exs for c in ex["completions"]) + 1
        return {
            **batch,
            "seq_query": torch.tensor(owner),
            "target": target,
            "item_mask": item_mask,
            "idx": torch.tensor([int(f["idx"]) for f in features]),
            "logits_to_keep": torch.tensor(keep),
        }


def forward_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """Logits of the last ``keep`` positions (left padding: the completions end there), positions from the mask."""
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False, logits_to_keep=keep
    )
    return out.logits[:, -keep:]


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


# --------------------------------------------------------------------------------------------------------------
# trainers


def _dpo_base():
    from trl import DPOTrainer

    return DPOTrainer


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


class ListwiseDPOTrainer(RerankTrainerMixin, _dpo_base()):  # type: ignore[misc]
    """TRL's DPOTrainer on pre-tokenised listwise preference records (TRL's losses, reference handling, metrics)."""

    def __init__(self, *a: Any, contract: Any = None, ranking_eval: Any = None, **kw: Any) -> None:
        self.contract = contract
        self.ranking_eval = ranking_eval
        super().__init__(*a, **kw)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        # the rows are already the contract's exact ids (prompt_ids / chosen_ids / …, or item examples): TRL's
        # text path (prompt extraction, eos, re-tokenisation) must not touch them
        return dataset


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
        self.loss_args = dict(loss_args or {})  # IRPO: item_mean
        self.item_collator = ItemCollator(examples, pad_id)
        self._ref_store: dict[int, torch.Tensor] = {}
        super().__init__(*a, data_collator=self.item_collator, **kw)
        self.model_accepts_loss_kwargs = False

    @property
    def mean_items(self) -> bool:
        return (
            self.objective == "irpo"
        )  # IRPO: mean-token log-ratio per identifier; PL-DPO: whole-answer sums

    def _reference_logps(self, batch: dict[str, torch.Tensor], model: Any | None = None) -> torch.Tensor:
        from trl.trainer.utils import use_adapter

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
            loss = plackett_luce_dpo(policy, ref, ranking, beta=self.beta)
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


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class RegenerateCallback(_callback_base()):  # type: ignore[misc]
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


# -- ADPA / DCKD -----------------------------------------------------------------------------------------------


def check_shared_vocabulary(
    student_tokenizer: Any, student: Any, teacher_tokenizer: Any, teacher: Any, where: str
):
    """Token-level distillation compares distributions token id by token id: the teacher must use the student's
    vocabulary (same token → id map and the same number of output rows). Refuses with both sizes otherwise."""
    sv, tv = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    s_rows = student.get_output_embeddings().weight.shape[0]
    t_rows = teacher.get_output_embeddings().weight.shape[0]
    if sv != tv or s_rows != t_rows:
        diff = sum(1 for k, v in sv.items() if tv.get(k) != v)
        raise RerankAlignError(
            f"the teacher does not share the student's vocabulary (student {len(sv)} tokens / {s_rows} output rows, "
            f"teacher {len(tv)} tokens / {t_rows} output rows, {diff} student tokens with another id or missing); "
            "ADPA and DCKD compare the two distributions token by token",
            where=where,
            hint="use a teacher of the same model family and tokenizer as the student",
        )


def load_teacher(path: str, dtype: str, device: Any) -> tuple[Any, Any]:
    """A teacher causal LM (a full model or a PEFT adapter folder) and its tokenizer, frozen, in eval mode."""
    import torch as _t
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {} if dtype == "auto" else {"dtype": getattr(_t, dtype)}
    model = AutoModelForCausalLM.from_pretrained(path, **kw).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, AutoTokenizer.from_pretrained(path)


class PairCollator:
    """Left-pads ``prompt + chosen`` then ``prompt + rejected`` (2B sequences) with their completion masks."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        seqs, comp = [], []
        for key in ("chosen_ids", "rejected_ids"):
            for f in features:
                seqs.append(list(f["prompt_ids"]) + list(f[key]))
                comp.append([0] * len(f["prompt_ids"]) + [1] * len(f[key]))
        batch = left_pad(seqs, self.pad_id, completion_mask=(comp, 0, torch.long))
        keep = max(max(len(f["chosen_ids"]), len(f["rejected_ids"])) for f in features) + 1
        return {
            **batch,
            "idx": torch.tensor([int(f["idx"]) for f in features]),
            "logits_to_keep": torch.tensor(keep),
        }


def teacher_topk(
    teacher: Any, teacher_ref: Any | None, batch: dict[str, torch.Tensor], k: int
) -> dict[str, torch.Tensor]:
    """The aligned teacher's top-k token ids and log-probs per answer position, and the reference teacher's
    log-probs of the same tokens; aligned with the student's shifted logits: (S, keep-1, k). ``k = 0``: all tokens."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    keep = int(batch["logits_to_keep"])
    with torch.no_grad():
        lp = torch.log_softmax(forward_logits(teacher, ids, mask, keep)[:, :-1].float(), dim=-1)
        if k and k < lp.shape[-1]:
            top_lp, top_ids = lp.topk(k, dim=-1)
        else:
            top_lp = lp
            top_ids = torch.arange(lp.shape[-1], device=lp.device).expand_as(lp)
        out = {"ids": top_ids, "logps": top_lp}
        if teacher_ref is not None:
            ref = torch.log_softmax(forward_logits(teacher_ref, ids, mask, keep)[:, :-1].float(), dim=-1)
            out["ref_logps"] = ref.gather(-1, top_ids)
    return out


class DistillPreferenceTrainer(ListwiseDPOTrainer):
    """ADPA / DCKD (arXiv 2502.17927) on preference records, teachers' top-k log-probs on or off line.

    - ADPA: :func:`~rerank_align.losses.adpa_loss` — by default the released semantics ``λ_sft · NLL(y_w) −
      λ_adpa · Adv(y_l)``, the advantage on the "rejected" answer, which must then be the student's own sample
      (``method.preference_source: student``); ``method.loss_args.advantage_on`` chooses other sequences.
    - DCKD: :func:`~rerank_align.losses.dckd_loss` (NLL on y_w + forward KL to the aligned teacher on y_w and y_l,
      remaining-mass bin by default).

    The student's own reference is not needed: TRL's reference copy is never loaded (``precompute_ref_log_probs``
    is switched on and its precompute replaced by the teachers' one).
    """

    def __init__(
        self,
        *a: Any,
        objective: str,
        teacher: Any,
        teacher_ref: Any | None,
        topk: int,
        precompute: bool,
        loss_args: dict[str, Any],
        pad_id: int,
        **kw: Any,
    ) -> None:
        if objective not in ("adpa", "dckd"):
            raise ValueError(f"objective must be 'adpa' or 'dckd', got {objective!r}")
        if objective == "adpa" and teacher_ref is None:
            raise RecipeError(
                "ADPA needs the aligned teacher's reference model", where="method.teacher_ref_model"
            )
        self.objective = objective
        self.teacher, self.teacher_ref = teacher, teacher_ref
        self.topk = topk
        self.precompute_teacher = precompute
        self.loss_args = dict(loss_args)
        self.pair_collator = PairCollator(pad_id)
        self._teacher_store: dict[int, dict[str, torch.Tensor]] = {}
        kw["args"].precompute_ref_log_probs = True  # no student reference copy (see the class docstring)
        super().__init__(*a, data_collator=self.pair_collator, **kw)
        self.model_accepts_loss_kwargs = False
        if precompute:
            self.teacher = self.teacher_ref = None  # freed: training holds only the top-k tensors

    def _precompute_ref_logps(self, dataset, name, batch_size):
        if not self.precompute_teacher:
            return dataset
        device = next(self.teacher.parameters()).device
        for start in range(0, len(dataset), batch_size):
            rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = {k: v.to(device) for k, v in self.pair_collator(rows).items()}
            t = teacher_topk(self.teacher, self.teacher_ref, batch, self.topk)
            b = len(rows)
            keep = int(batch["logits_to_keep"])
            for j, row in enumerate(rows):
                # only this example's completion positions are stored (chosen j, rejected b + j)
                entry = {}
                for half, s in (("chosen", j), ("rejected", b + j)):
                    n_c = len(row[f"{half}_ids"])
                    for key, v in t.items():
                        entry[f"{half}_{key}"] = v[s, keep - 1 - n_c :].cpu()
                self._teacher_store[int(row["idx"])] = entry
        return dataset

    def _teacher_batch(self, inputs: dict[str, torch.Tensor], dev: Any) -> dict[str, torch.Tensor]:
        if not self.precompute_teacher:
            return teacher_topk(self.teacher, self.teacher_ref, inputs, self.topk)
        keep = int(inputs["logits_to_keep"])
        entries = [self._teacher_store[int(i)] for i in inputs["idx"]]
        keys = [k.split("_", 1)[1] for k in entries[0] if k.startswith("chosen_")]
        out = {}
        for key in keys:
            ref = entries[0][f"chosen_{key}"]
            full = torch.zeros((2 * len(entries), keep - 1, ref.shape[-1]), dtype=ref.dtype)
            for half, off in (("chosen", 0), ("rejected", len(entries))):
                for j, e in enumerate(entries):
                    v = e[f"{half}_{key}"]
                    full[off + j, keep - 1 - v.shape[0] :] = v
            out[key] = full.to(dev)
        return out

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        keep = int(inputs["logits_to_keep"])
        logits = forward_logits(model, ids, mask, keep)[:, :-1]  # aligned: logits[:, t] predicts labels[:, t]
        labels = ids[:, -keep + 1 :]
        cmask = inputs["completion_mask"][:, -keep + 1 :].bool()
        t = self._teacher_batch(inputs, logits.device)
        b = ids.shape[0] // 2
        c, r = slice(0, b), slice(b, 2 * b)
        parts: dict[str, torch.Tensor] = {}
        if self.objective == "adpa":
            loss = adpa_loss(
                logits[c],
                labels[c],
                cmask[c],
                logits[r],
                cmask[r],
                t["ids"][r],
                t["logps"][r],
                t["ref_logps"][r],
                t["ids"][c],
                t["logps"][c],
                t["ref_logps"][c],
                **self.loss_args,
                parts=parts,
            )
        else:
            loss = dckd_loss(
                logits[c],
                labels[c],
                cmask[c],
                t["ids"][c],
                t["logps"][c],
                logits[r],
                cmask[r],
                t["ids"][r],
                t["logps"][r],
                **self.loss_args,
                parts=parts,
            )
        mode = "train" if model.training else "eval"
        for k, v in parts.items():
            self._metrics[mode][k].append(float(v.detach()))
        return (loss, {}) if return_outputs else loss


# --------------------------------------------------------------------------------------------------------------
# building from a recipe


def _policy_samples(
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
        return preferences_from_student_samples(records, _policy_samples(model, builder, records, mc, k=1))
    samples = _policy_samples(model, builder, records, mc)
    return preferences_from_samples(records, samples)


def build_preference_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval) -> Any:
    """The trainer of a preference method (dpo, irpo, pl_dpo, adpa, dckd) for a recipe."""
    from datasets import Dataset

    builder = ListPromptBuilder(tokenizer, contract)
    mc = recipe.method
    name = mc.name
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    common = {
        "model": model,
        "args": args,
        "processing_class": tokenizer,
        "contract": contract,
        "ranking_eval": ranking_eval,
    }
    if name in ("irpo", "pl_dpo"):
        if name == "irpo":
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
            **common,
            train_dataset=Dataset.from_list([{"idx": i} for i in range(len(examples))]),
            objective=name,
            examples=examples,
            pad_id=pad_id,
            loss_args=mc.loss_args if name == "irpo" else None,
        )
        if name == "irpo" and mc.irpo_rounds > 1:
            trainer.add_callback(RegenerateCallback(trainer, records, builder, mc.irpo_rounds))
        return trainer
    prefs = preference_records(recipe, records, builder, model)
    examples = dpo_examples(prefs, builder)
    # the contract already bounds prompt + answer by model.max_length; TRL's collator must not cut them again
    # (DPOConfig.max_length defaults to 1024 and would silently drop the answers of longer list prompts)
    args.max_length = max(
        len(e["prompt_ids"]) + max(len(e["chosen_ids"]), len(e["rejected_ids"])) for e in examples
    )
    dataset = Dataset.from_list(examples)
    if name == "dpo":
        return ListwiseDPOTrainer(**common, train_dataset=dataset)
    device = next(model.parameters()).device
    teacher, t_tok = load_teacher(mc.teacher_model, recipe.model.dtype, device)
    check_shared_vocabulary(tokenizer, model, t_tok, teacher, "method.teacher_model")
    teacher_ref = None
    if name == "adpa":
        teacher_ref, r_tok = load_teacher(mc.teacher_ref_model, recipe.model.dtype, device)
        check_shared_vocabulary(tokenizer, model, r_tok, teacher_ref, "method.teacher_ref_model")
    return DistillPreferenceTrainer(
        **common,
        train_dataset=dataset,
        objective=name,
        teacher=teacher,
        teacher_ref=teacher_ref,
        topk=mc.teacher_topk,
        precompute=mc.teacher_precompute,
        loss_args=mc.loss_args,
        pad_id=pad_id,
    )


def pl_dpo_examples(recipe: Any, records: list[dict], builder: ListPromptBuilder, model: Any) -> list[dict]:
    """PL-DPO examples: preference records give K = 2 (chosen, rejected); list records give the target ranking,
    the first-stage order and ``method.num_samples`` permutations sampled from ``model``, ranked by nDCG."""
    if "chosen" in records[0]:
        return [pl_dpo_example(builder, r, [r["chosen"], r["rejected"]]) for r in records]
    samples = _policy_samples(model, builder, records, recipe.method)
    return [pl_dpo_example(builder, r, ranked_permutations(r, s)) for r, s in zip(records, samples)]
