"""``ScoreTrainer``: one ``transformers.Trainer`` subclass for every score objective on ``yesno`` and ``head`` kinds.

Per batch of B groups of G candidates it scores the flattened pairs through ``score_forward`` (the scoring
contract's forward, the same code ``Reranker`` runs), scatters them back to (B, G) and calls the recipe's pure
loss with the tensors the loss names. The trainer owns its loss (``model_accepts_loss_kwargs = False``,
``loss_is_scaled_for_ga = False``): the Trainer divides each micro-batch loss by the accumulation steps, so
accumulation 2 × 2 equals 1 × 4 (tested with SGD, where a doubled gradient would show).

Large groups (``chunk_size``): a gradient-cache step (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch
Size under Memory Limited Setup", arXiv 2101.06983). Scores of all pairs are computed without a graph, the loss and
its gradient with respect to the scores are taken on the whole group, then each chunk is re-run with a graph and
back-propagated with that gradient. Activation memory grows with the chunk, not the group; loss and gradients are
those of the unchunked step (the RNG state of each chunk is replayed, so dropout masks match between passes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import Trainer

from rerank_align.config.score_config import score_loss
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.forward import ScoreOutput, score_forward
from rerank_align.scoring.modeling import pair_encoder
from rerank_align.scoring.vision import slice_pairs
from rerank_align.training.collator import GroupCollator, RecordDataset
from rerank_align.training.common import RerankTrainerMixin
from rerank_align.training.losscall import call_loss

PAIR_KEYS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "image_grid_thw")


def _rng_state() -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None


def _set_rng_state(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


class ScoreTrainer(RerankTrainerMixin, Trainer):
    # The loss is ours and is a per-micro-batch mean: the Trainer must divide it by the accumulation steps.
    # transformers 5 overwrites `model_accepts_loss_kwargs` from the model's forward signature in __init__, so the
    # switch that decides is `loss_is_scaled_for_ga`; both are set (the second again after __init__).
    model_accepts_loss_kwargs = False
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args: Any,
        contract: ScoringContract,
        loss_fn: Callable,
        loss_args: dict[str, Any] | None = None,
        chunk_size: int | None = None,
        ranking_eval: Callable[[Any], dict[str, float]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False
        self.contract = contract
        self.loss_fn = loss_fn
        self.loss_args = dict(loss_args or {})
        self.chunk_size = chunk_size
        self.ranking_eval = ranking_eval

    # -- scoring -----------------------------------------------------------------------------------------------
    def _pairs(self, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {k: inputs[k] for k in PAIR_KEYS if k in inputs}

    def _score(self, model: Any, pairs: dict[str, torch.Tensor], sl: slice | None = None) -> ScoreOutput:
        if sl is not None:  # a chunk: its rows, and for a VLM the pixel patches of those rows' images
            pairs = slice_pairs(pairs, sl, self.contract)
        return score_forward(model, self.contract, pairs)

    def _group_tensors(self, out: dict[str, torch.Tensor | None], inputs: dict[str, Any]) -> dict[str, Any]:
        """Flat pair scores → (B, G) group tensors (+ (B, M) in-batch scores, which follow the group pairs)."""
        mask = inputs["group_mask"]
        n_group = int(mask.sum())

        def scatter(flat: torch.Tensor | None, m: torch.Tensor) -> torch.Tensor | None:
            if flat is None:
                return None
            full = flat.new_zeros(m.shape)
            full[m] = flat
            return full

        def group(key: str) -> torch.Tensor | None:
            flat = out.get(key)
            return None if flat is None else scatter(flat[:n_group], mask)

        tensors = {
            "scores": group("scores"),
            "yes_logits": group("yes_logits"),
            "no_logits": group("no_logits"),
            "mask": mask,
            "labels": inputs["labels"],
            "teacher_scores": inputs.get("teacher_scores"),
        }
        if "in_batch_mask" in inputs:
            tensors["in_batch_scores"] = scatter(out["scores"][n_group:], inputs["in_batch_mask"])
            tensors["in_batch_mask"] = inputs["in_batch_mask"]
        return tensors

    def _loss(self, flat: dict[str, torch.Tensor | None], inputs: dict[str, Any]) -> torch.Tensor:
        loss = call_loss(self.loss_fn, self._group_tensors(flat, inputs), self.loss_args)
        self.check_finite(loss, inputs)
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = self._score(model, self._pairs(inputs))
        flat = {"scores": out.scores, "yes_logits": out.yes_logits, "no_logits": out.no_logits}
        loss = self._loss(flat, inputs)
        return (loss, flat) if return_outputs else loss

    # -- gradient-cache step for large groups ---------------------------------------------------------------------
    def _training_step(self, model, inputs, num_items_in_batch=None):
        if not self.chunk_size:
            return super()._training_step(model, inputs, num_items_in_batch)
        return self._chunked_step(model, inputs)

    def _chunked_step(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        model.train()
        inputs = self._prepare_inputs(inputs)
        pairs = self._pairs(inputs)
        n = pairs["input_ids"].shape[0]
        chunks = [slice(i, min(i + self.chunk_size, n)) for i in range(0, n, self.chunk_size)]
        states, parts = [], []
        with torch.no_grad():
            for sl in chunks:
                states.append(_rng_state())
                with self.compute_loss_context_manager():
                    parts.append(self._score(model, pairs, sl))
        flat: dict[str, torch.Tensor | None] = {}
        for key in ("scores", "yes_logits", "no_logits"):
            vals = [getattr(p, key) for p in parts]
            flat[key] = None if vals[0] is None else torch.cat(vals).detach().requires_grad_(True)
        with self.compute_loss_context_manager():
            ga = getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
            loss = self._loss(flat, inputs) / ga
        leaves = [k for k, v in flat.items() if v is not None]
        grads = dict(zip(leaves, torch.autograd.grad(loss, [flat[k] for k in leaves], allow_unused=True)))
        end_state = _rng_state()
        for sl, state in zip(chunks, states):
            _set_rng_state(state)
            with self.compute_loss_context_manager():
                out = self._score(model, pairs, sl)
                surrogate = sum(
                    (getattr(out, k) * grads[k][sl]).sum() for k in leaves if grads[k] is not None
                )
            self.accelerator.backward(surrogate)
        _set_rng_state(end_state)
        return loss.detach()


def build_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval) -> ScoreTrainer:
    """``score`` and ``pg_rank``: groups scored through the contract, the recipe's loss (``method.loss``)."""
    mc = recipe.method
    return ScoreTrainer(
        model=model,
        args=args,
        train_dataset=RecordDataset(records),
        eval_dataset=RecordDataset(records[:1]) if ranking_eval else None,
        data_collator=GroupCollator(
            pair_encoder(tokenizer, contract), mc.group_size, seed=recipe.seed, in_batch=mc.in_batch_negatives
        ),
        processing_class=tokenizer,
        contract=contract,
        loss_fn=score_loss(mc.loss),
        loss_args=mc.loss_args,
        chunk_size=mc.chunk_size,
        ranking_eval=ranking_eval,
    )
