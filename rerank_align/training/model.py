"""Model construction for training: load under the contract, optional 4-bit quantisation, optional LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rerank_align.config.recipe import QuantizationConfig, Recipe
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.modeling import load_model

HEAD_MODULES = ("lm_head", "score", "classifier", "pooler")


def quantization_config(recipe: Recipe) -> Any:
    return bnb_config(recipe.quantization)


def bnb_config(q: QuantizationConfig) -> Any:
    """The BitsAndBytesConfig of a recipe's ``quantization`` section (None unless 4-bit)."""
    if not q.load_in_4bit:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_compute_dtype=getattr(torch, q.compute_dtype),
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_quant_storage=getattr(torch, q.quant_storage),
        # the scoring heads stay in full precision: a new head would be quantised before it is initialised,
        # and a 4-bit head cannot be trained (it is in modules_to_save)
        llm_int8_skip_modules=list(HEAD_MODULES),
    )


def saved_quantization(directory: str | Path) -> Any:
    """The 4-bit config an adapter was trained with, from the ``recipe.yaml`` the trainer saved beside it."""
    path = Path(directory) / "recipe.yaml"
    if not path.is_file():
        return None
    import yaml

    from rerank_align.config.strict import from_dict

    section = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("quantization") or {}
    return bnb_config(from_dict(QuantizationConfig, section, "quantization"))


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
            from rerank_align.config.load import activation_checkpointing

            gc = activation_checkpointing(recipe.training)
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc)
        p = recipe.peft
        task = TaskType.SEQ_CLS if contract.kind == "head" else TaskType.CAUSAL_LM
        lora = LoraConfig(
            r=p.r,
            lora_alpha=p.alpha,
            lora_dropout=p.dropout,
            target_modules=p.target_modules,
            modules_to_save=p.modules_to_save or None,
            task_type=task,
        )
        model = get_peft_model(model, lora)
    return model
