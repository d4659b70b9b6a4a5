"""What every rerank_align trainer shares, as a mixin placed before the transformers / TRL trainer class:

- every save (checkpoints and the final model) writes the resolved ``recipe.yaml`` and then ``reranker.json``
  next to the weights, after them;
- ``evaluate()`` is the in-training *ranking* evaluation (rerank a dev run with the live model), not a loss loop;
- a non-finite loss stops training with one line naming the step and the batch's example ids, after saving the
  weights from before that step to ``checkpoint-fault-step<N>``;
- the model card is rerank_align's (export/card.py), written at every save: transformers' / TRL's auto card ("trained
  from scratch on an unknown dataset") never replaces it, locally or on the hub;
- ``training.push_to_hub`` goes through ``rerank-align push`` (export/push.py): the repository is private unless
  ``hub_private_repo: false``; every push (each save with ``hub_strategy`` every_save / checkpoint, and the end of
  training) uploads one saved model folder — weights, tokenizer, reranker.json, recipe.yaml and the card — never
  optimizer / scheduler / RNG states, training_args.bin or checkpoint folders.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from rerank_align.errors import RerankAlignError
from rerank_align.export.card import write_card
from rerank_align.export.push import push
from rerank_align.io import atomic_write
from rerank_align.scoring.vision import image_processor


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
                with atomic_write(out / "recipe.yaml") as fh:
                    fh.write(self.recipe_text)
            if self.contract is not None and self.contract.vision is not None:
                # for other tools; rerank_align rebuilds the image processor from reranker.json

                image_processor(self.contract.vision).save_pretrained(out)
            if self.contract is not None:  # last: a folder without reranker.json is not a finished save
                self.contract.save(out)
                self._write_card(out)

    # -- the model card and hub pushes ---------------------------------------------------------------------------
    def _write_card(self, out: Path) -> None:
        recipe = out / "recipe.yaml"
        name = (
            Path(self.args.hub_model_id).name if self.args.hub_model_id else Path(self.args.output_dir).name
        )
        write_card(
            out,
            contract=self.contract,
            source={"operation": "train", "name": name},
            results=None,
            recipe=recipe if recipe.is_file() else None,
            data_files=None,
        )

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """rerank_align's card instead of the auto-generated one (called by push_to_hub and TRL's checkpoint saves)."""
        if self.contract is not None and self.is_world_process_zero():
            self._write_card(Path(self.args.output_dir))

    def _hub_repo_id(self) -> str:
        repo_id = self.args.hub_model_id
        if not repo_id or repo_id.count("/") != 1:
            raise RerankAlignError(
                f"training.push_to_hub needs training.hub_model_id as owner/name (got {repo_id!r})",
                where="training.hub_model_id",
                hint="e.g. hub_model_id: me/my-reranker",
            )
        return repo_id

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        """Checked before training; the repository is created (private by default) at the first push."""
        if self.is_world_process_zero():
            self.hub_model_id = self._hub_repo_id()
            self.push_in_progress = None

    def _push_folder(self, folder: Path, message: str) -> Any:
        private = self.args.hub_private_repo
        return push(
            folder,
            self._hub_repo_id(),
            private=True if private is None else bool(private),
            revision=self.args.hub_revision,
            message=message,
        )

    def push_to_hub(self, commit_message: str | None = "End of training", **kwargs: Any) -> Any:
        """Save the final model (weights, tokenizer, recipe.yaml, reranker.json, card) and push that folder only."""
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        return self._push_folder(Path(self.args.output_dir), commit_message or "End of training")

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """A save during training: push that checkpoint's model files (never its optimizer or RNG state)."""
        from transformers.trainer_utils import HubStrategy

        if not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        folder = Path(checkpoint_folder)
        if (folder / "reranker.json").is_file():
            self._push_folder(folder, f"Training in progress, step {self.state.global_step}")

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
