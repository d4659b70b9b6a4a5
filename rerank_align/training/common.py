"""What every rerank_align trainer shares, as a mixin placed before the transformers / TRL trainer class:

- every save (checkpoints and the final model) writes the resolved ``recipe.yaml`` and then ``reranker.json``
  next to the weights, after them;
- ``evaluate()`` is the in-training *ranking* evaluation (rerank a dev run with the live model), not a loss loop;
- a non-finite loss stops training with one line naming the step and the batch's example ids, after saving the
  weights from before that step to ``checkpoint-fault-step<N>``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from rerank_align.errors import RerankAlignError


class NonFiniteLossError(RerankAlignError):
    pass


def ranks_with_fault(local_bad: bool, device: torch.device | None = None) -> list[int]:
    """The ranks whose flag is set (one all-gather of one number per rank; ``[0]``/``[]`` without a process
    group). Every rank learns about a fault on any rank at the same step, so all of them stop together."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [0] if local_bad else []
    flags = torch.zeros(dist.get_world_size(), device=device)
    flags[dist.get_rank()] = float(local_bad)
    dist.all_reduce(flags)
    return [i for i, f in enumerate(flags.tolist()) if f > 0]


class RerankTrainerMixin:
    contract: Any = None
    ranking_eval: Any = None
    recipe_text: str | None = None

    def check_finite(self, loss: torch.Tensor, inputs: dict[str, Any]) -> None:
        local_bad = not bool(torch.isfinite(loss).all())
        bad_ranks = ranks_with_fault(local_bad, loss.device)
        if local_bad:
            ids = inputs.get("example_ids") if isinstance(inputs, dict) else None
            raise NonFiniteLossError(
                f"loss is {loss.detach().float().sum().item()} for the batch of examples {ids if ids else '(no ids)'}",
                where=f"training step {self.state.global_step + 1}",
                hint="lower the learning rate or check these records",
            )
        if bad_ranks:  # this rank is fine, another is not: stop together (a lone stop would hang the others)
            raise NonFiniteLossError(
                f"loss is not finite on rank(s) {bad_ranks} (this rank's loss is finite)",
                where=f"training step {self.state.global_step + 1}",
                hint="see the message of the failing rank for its examples",
            )

    def training_step(self, model, inputs, num_items_in_batch=None):
        try:
            loss = self._training_step(model, inputs, num_items_in_batch)
            self.check_finite(loss, inputs)
            return loss
        except NonFiniteLossError as e:
            path = self._save_on_fault()
            e.hint = f"weights before this step saved to {path}; {e.hint}"
            raise

    def _training_step(self, model, inputs, num_items_in_batch=None):
        return super().training_step(model, inputs, num_items_in_batch)

    def _save_on_fault(self) -> Path:
        """The weights before the failing step (reranker.json is written last, so a cut-short save is refused)."""
        out = Path(self.args.output_dir) / f"checkpoint-fault-step{self.state.global_step + 1}"
        self.save_model(str(out))
        return out

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            out = Path(output_dir or self.args.output_dir)
            if self.recipe_text is not None:
                from rerank_align.io import atomic_write

                with atomic_write(out / "recipe.yaml") as fh:
                    fh.write(self.recipe_text)
            if self.contract is not None and self.contract.vision is not None:
                # for other tools; rerank_align rebuilds the image processor from reranker.json
                from rerank_align.scoring.vision import image_processor

                image_processor(self.contract.vision).save_pretrained(out)
            if self.contract is not None:  # last: a folder without reranker.json is not a finished save
                self.contract.save(out)

    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """In-training ranking evaluation: rerank the dev run with the live model (no loss-based eval loop)."""
        if self.ranking_eval is None:
            return {}
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in self.ranking_eval(self.model).items()}
        metrics = {k: (v if math.isfinite(v) else 0.0) for k, v in metrics.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics
