"""Listwise training on TRL ``SFTTrainer``: fullrank (importance-aware full-list SFT) and FIRST (LM + RankNet).

Each list record ``{"query", "docs", "ranking"}`` becomes one pre-tokenised example: the contract's list prompt
(``ListPromptBuilder``, the exact ids inference uses) followed by the target permutation ``"[3] > [1] > …"`` and
eos; labels are -100 on the prompt.

- ``fullrank`` (Liu et al., arXiv 2412.14574): weighted token NLL with every token of the identifier at rank r
  weighted ``1 + 1/log2(r + 1)`` and every other answer token 1 (``losses.fullrank_token_weights``, from character
  offsets, so any tokenizer works); normalised by the token count (the paper) or by Σw (``token_weight_norm``).
- ``first`` (Reddy et al., arXiv 2406.15657): ``L = L_LM + λ · RankNet_w``, where L_LM is the plain token NLL of
  the target and RankNet_w is RankNet with FIRST's pair weights ``1/(r_i + r_j)`` on the logits of each candidate's
  identifier token at the first answer position (after the identifiers' shared prefix, e.g. ``[``). λ = 10.

Gradient accumulation: the loss of each micro-batch is normalised by the totals of its whole accumulation window
(tokens or Σw for the LM part, lists for the RankNet part), computed in ``get_batch_samples``; the trainer sets
``model_accepts_loss_kwargs = False`` and ``loss_is_scaled_for_ga = True``, so 2 micro-batches × 2 steps equal one
batch of 4 (tests/listwise/test_training.py). Under DDP each process normalises by its own window.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from datasets import Dataset
from trl import SFTTrainer

from rerank_align.errors import ContractError
from rerank_align.losses.ltr import ranknet
from rerank_align.losses.token_weights import fullrank_token_weights, token_logps, weighted_token_nll
from rerank_align.scoring.listwise_format import first_tokens
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.training.common import RerankTrainerMixin
from rerank_align.training.completions import completion_batch, forward_logits

Method = Literal["fullrank", "first"]


def listwise_examples(records: list[dict], builder: ListPromptBuilder, method: Method) -> list[dict]:
    """Pre-tokenised examples: input_ids, labels, weights (+ FIRST fields: first_pos, id_tokens, rank_labels)."""
    f = builder.fmt
    out = []
    for rec in records:
        docs, ranking = rec["docs"], list(rec["ranking"])
        n = len(docs)
        prompt = builder.build(rec["query"], docs).input_ids
        tgt, offs, text, spans = builder.target(ranking)
        if method == "fullrank":
            w = fullrank_token_weights(text, offs, spans=spans).tolist()
        else:
            w = [1.0] * len(tgt)
        ex = {
            "input_ids": prompt + tgt,
            "labels": [-100] * len(prompt) + tgt,
            "weights": [0.0] * len(prompt) + w,
        }
        if method == "first":
            ft = first_tokens(builder.tokenizer, f.identifier, n, f.first_index)
            head = [*ft.prefix, ft.token_ids[ranking[0]]]
            if tgt[: len(head)] != head:
                raise ContractError(
                    f"the answer {text[:40]!r} tokenises to {tgt[: len(head)]}, not to its first identifier's "
                    f"tokens {head}; FIRST would read the wrong position",
                    where="reranker.json:list_format",
                    hint="use a separator/identifier format whose first identifier tokenises on its own",
                )
            pos = {d: p for p, d in enumerate(ranking)}
            ex["first_pos"] = len(prompt) + len(ft.prefix) - 1
            ex["id_tokens"] = list(ft.token_ids)
            ex["rank_labels"] = [float(n - pos[k]) for k in range(n)]
        out.append(ex)
    return out


class ListwiseCollator:
    """Left padding, so every answer ends at the last position and lm_head runs on the answer span only."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        b = len(features)
        starts = [next(k for k, x in enumerate(f["labels"]) if x != -100) for f in features]
        out = completion_batch(
            [f["input_ids"][:s] for f, s in zip(features, starts)],
            [f["input_ids"][s:] for f, s in zip(features, starts)],
            self.pad_id,
            labels=([f["labels"] for f in features], -100, torch.long),
            weights=([f["weights"] for f in features], 0.0, torch.float32),
        )
        t = out["input_ids"].shape[1]
        if "first_pos" in features[0]:
            g = max(len(f["id_tokens"]) for f in features)
            tok = torch.zeros((b, g), dtype=torch.long)
            lab = torch.zeros((b, g))
            rmask = torch.zeros((b, g), dtype=torch.bool)
            for i, f in enumerate(features):
                k = len(f["id_tokens"])
                tok[i, :k] = torch.tensor(f["id_tokens"])
                lab[i, :k] = torch.tensor(f["rank_labels"], dtype=torch.float32)
                rmask[i, :k] = True
            out.update(
                first_pos=torch.tensor([t - len(f["input_ids"]) + f["first_pos"] for f in features]),
                id_tokens=tok,
                rank_labels=lab,
                rank_mask=rmask,
            )
        return out


def window_totals(batches: list[dict]) -> dict[str, float]:
    """Totals over one accumulation window: answer tokens, Σ weights on them, lists."""
    tokens = weights = lists = 0.0
    for b in batches:
        m = b["labels"][:, 1:] != -100
        tokens += float(m.sum())
        weights += float((b["weights"][:, 1:] * m).sum())
        lists += b["labels"].shape[0]
    return {"tokens": tokens, "weights": weights, "lists": lists}


def listwise_loss(
    model: Any,
    inputs: dict[str, torch.Tensor],
    *,
    method: Method,
    normalize: str = "tokens",
    first_lambda: float = 10.0,
    totals: dict[str, float] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one micro-batch, normalised by ``totals`` (default: this batch's own)."""
    totals = totals or window_totals([inputs])
    ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
    t = ids.shape[1]
    keep = int(inputs.get("logits_to_keep", t))
    logits = forward_logits(model, ids, mask, keep)  # positions t-keep .. t-1 (the answer and the one before)
    sl = slice(t - keep, t)
    lp, m = token_logps(logits, ids[:, sl], labels[:, sl] != -100)
    den = totals["tokens"] if normalize == "tokens" else totals["weights"]
    w = inputs["weights"][:, sl][:, 1:].to(lp.dtype)
    lm = weighted_token_nll(lp, w, m, normalize=normalize, denominator=den)
    parts = {"lm": lm.detach()}
    loss = lm
    if method == "first":
        rows = torch.arange(ids.shape[0], device=ids.device)
        z = logits[rows, inputs["first_pos"] - (t - keep)].float()  # (B, V) at the first answer position
        scores = z.gather(1, inputs["id_tokens"])  # (B, G)
        rank = ranknet(scores, inputs["rank_mask"], inputs["rank_labels"], weighting="first")
        rank = rank * ids.shape[0] / totals["lists"]
        parts["ranknet"] = rank.detach()
        parts["first_scores"] = scores.detach()
        loss = loss + first_lambda * rank
    return loss, parts


class ListwiseSFTTrainer(RerankTrainerMixin, SFTTrainer):
    def __init__(
        self,
        *a: Any,
        listwise_method: Method,
        token_weight_norm: str = "tokens",
        first_lambda: float = 10.0,
        contract: Any = None,
        ranking_eval: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(*a, **kw)
        self.listwise_method = listwise_method
        self.token_weight_norm = token_weight_norm
        self.first_lambda = first_lambda
        self.contract = contract
        self.ranking_eval = ranking_eval
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = True
        self._window: dict[str, float] | None = None
        self._parts: dict[str, list] = {}

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, n = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._window = window_totals(batches) if batches else None
        return batches, n

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, parts = listwise_loss(
            model,
            inputs,
            method=self.listwise_method,
            normalize=self.token_weight_norm,
            first_lambda=self.first_lambda,
            totals=self._window if model.training else None,
        )
        for k in ("lm", "ranknet"):
            if k in parts:
                acc = self._parts.setdefault(k, [0.0, 0])
                acc[0] += float(parts[k])  # a share of its accumulation window's value
                acc[1] += 1 / self.args.gradient_accumulation_steps
        return (loss, parts) if return_outputs else loss

    def log(self, logs, start_time=None):
        if self._parts and "loss" in logs:  # the loss terms, averaged since the last log
            for k, v in self._parts.items():
                logs[k] = round(v[0] / max(v[1], 1e-9), 4)
            self._parts = {}
        return super().log(logs, start_time)


def build_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval) -> ListwiseSFTTrainer:
    """``fullrank`` and ``first``: one pre-tokenised list prompt + target permutation per list record."""
    method: Method = recipe.method.name  # "fullrank" | "first"
    mc = recipe.method
    builder = ListPromptBuilder(tokenizer, contract)
    examples = listwise_examples(records, builder, method)
    args.max_length = max(len(e["input_ids"]) for e in examples)
    args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    return ListwiseSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(examples),
        eval_dataset=Dataset.from_list(examples[:1]) if ranking_eval else None,
        processing_class=tokenizer,
        data_collator=ListwiseCollator(tokenizer.pad_token_id),
        listwise_method=method,
        token_weight_norm=mc.token_weight_norm,
        first_lambda=mc.first_lambda,
        contract=contract,
        ranking_eval=ranking_eval,
    )
