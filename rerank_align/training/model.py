"""Model construction for training: load under the contract, optional 4-bit quantisation, optional LoRA."""

from __future__ import annotations

import re
from typing import Any

from rerank_align.config.load import activation_checkpointing
from rerank_align.config.recipe import Recipe
from rerank_align.errors import RecipeError
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.modeling import load_model
from rerank_align.scoring.quantization import bnb_config


def quantization_config(recipe: Recipe) -> Any:
    return bnb_config(recipe.quantization)


BLOCK = re.compile(r"(?:^|\.)layers?\.(\d+)\.")
"""A module inside numbered transformer block N (``model.layers.N.`` in decoders, ``encoder.layer.N.`` in BERT)."""


def block_index(module_name: str) -> int | None:
    """The transformer block a module sits in (the index ``peft.layers_to_transform`` names), or None."""
    m = BLOCK.search(module_name)
    return int(m.group(1)) if m else None


def block_linear_names(model: Any) -> list[str]:
    """The leaf names of the linear layers inside the numbered transformer blocks (``q_proj``, ``up_proj``, ...):
    what peft's ``all-linear`` adapts there, spelled out."""
    import torch

    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear)
            and block_index(name) is not None
            and "vision" not in name
            and "visual" not in name  # as peft's all-linear and the plan's count: the language model only
        }
    )


def build_model(recipe: Recipe, contract: ScoringContract) -> Any:
    m = recipe.model
    qconf = quantization_config(recipe)
    model = load_model(
        m.name_or_path,
        contract,
        revision=m.revision,
        dtype=m.dtype,
        attn=m.attn_implementation,
        trust_remote_code=m.trust_remote_code,
        allow_pickle=m.allow_pickle,
        quantization_config=qconf,
    )
    if contract.kind == "head" and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = model.config.eos_token_id
    if recipe.peft.enabled:
        from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

        if qconf is not None:
            gc = activation_checkpointing(recipe.training)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc)
        p = recipe.peft
        task = TaskType.SEQ_CLS if contract.kind == "head" else TaskType.CAUSAL_LM
        targets = p.target_modules
        if p.layers_to_transform is not None:
            text = (
                model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
            )
            n = text.num_hidden_layers
            bad = [i for i in p.layers_to_transform if not 0 <= i < n]
            if bad or not p.layers_to_transform:
                raise RecipeError(
                    f"block {bad[0]} does not exist" if bad else "no block to adapt",
                    where="peft.layers_to_transform",
                    hint=f"this model has {n} blocks, 0-{n - 1} (null adapts all)",
                )
        if p.layers_to_transform is not None and targets == "all-linear":
            targets = block_linear_names(model)  # peft takes layers_to_transform with a list of names only
        lora = LoraConfig(
            r=p.r,
            lora_alpha=p.alpha,
            lora_dropout=p.dropout,
            target_modules=targets,
            modules_to_save=p.modules_to_save or None,
            layers_to_transform=p.layers_to_transform,
            task_type=task,
        )
        model = get_peft_model(model, lora)
    return model
