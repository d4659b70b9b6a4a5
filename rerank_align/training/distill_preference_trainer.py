"""Distillation preference on TRL ``DPOTrainer``: ADPA and DCKD (Gao et al. 2025, arXiv 2502.17927) from an aligned
teacher (``method.teacher_model``) and, for ADPA, its reference (``method.teacher_ref_model``).

The teachers' log-probabilities are kept on the aligned teacher's top-k tokens per position
(``method.teacher_topk``; 0 = full vocabulary), either precomputed once before training
(``method.teacher_precompute``, teachers freed afterwards) or computed per batch. Teachers must share the student's
vocabulary; :func:`check_shared_vocabulary` refuses otherwise. The records are DPO's preference pairs
(``dpo_trainer.preference_dataset``); both losses are the pure functions of ``rerank_align.losses.preference``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rerank_align.errors import RecipeError, RerankAlignError
from rerank_align.losses.preference import adpa_loss, dckd_loss
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.training.completions import completion_batch, forward_logits, pad_id_of
from rerank_align.training.dpo_trainer import ListwiseDPOTrainer, preference_dataset


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
    kw = {} if dtype == "auto" else {"dtype": getattr(torch, dtype)}
    model = AutoModelForCausalLM.from_pretrained(path, **kw).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, AutoTokenizer.from_pretrained(path)


class PairCollator:
    """Left-pads ``prompt + chosen`` then ``prompt + rejected`` (2B sequences) with their completion masks."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        prompts, comps, comp_mask = [], [], []
        for key in ("chosen_ids", "rejected_ids"):
            for f in features:
                prompts.append(list(f["prompt_ids"]))
                comps.append(list(f[key]))
                comp_mask.append([0] * len(f["prompt_ids"]) + [1] * len(f[key]))
        batch = completion_batch(prompts, comps, self.pad_id, completion_mask=(comp_mask, 0, torch.long))
        return {**batch, "idx": torch.tensor([int(f["idx"]) for f in features])}


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


def build_trainer(
    recipe, model, tokenizer, contract, records, args, ranking_eval
) -> DistillPreferenceTrainer:
    """``adpa`` and ``dckd``: the teachers are loaded (and checked against the student's vocabulary) here."""
    mc = recipe.method
    builder = ListPromptBuilder(tokenizer, contract)
    dataset = preference_dataset(recipe, records, builder, model, args)
    device = next(model.parameters()).device
    teacher, t_tok = load_teacher(mc.teacher_model, recipe.model.dtype, device)
    check_shared_vocabulary(tokenizer, model, t_tok, teacher, "method.teacher_model")
    teacher_ref = None
    if mc.name == "adpa":
        teacher_ref, r_tok = load_teacher(mc.teacher_ref_model, recipe.model.dtype, device)
        check_shared_vocabulary(tokenizer, model, r_tok, teacher_ref, "method.teacher_ref_model")
    return DistillPreferenceTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        contract=contract,
        ranking_eval=ranking_eval,
        train_dataset=dataset,
        objective=mc.name,
        teacher=teacher,
        teacher_ref=teacher_ref,
        topk=mc.teacher_topk,
        precompute=mc.teacher_precompute,
        loss_args=mc.loss_args,
        pad_id=pad_id_of(tokenizer),
    )
