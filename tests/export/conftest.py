"""Adapters for the export tests, made here with peft on the session's tiny models (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_adapter(
    base: Path,
    out: Path,
    *,
    kind: str = "yesno",
    architecture: str = "causal",
    qlora: bool = False,
    modules_to_save: list[str] | None = None,
    seed: int = 0,
    task_type: str | None = "auto",
    scale: float = 0.05,
    recipe_yaml: str | None = None,
    **contract_fields,
) -> Path:
    """A LoRA (or QLoRA) adapter on ``base`` with perturbed weights, saved with tokenizer and reranker.json."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rerank_align.scoring.modeling import build_contract, load_model, load_tokenizer

    tok = load_tokenizer(str(base))
    contract = build_contract(
        tok, base_model=str(base), kind=kind, architecture=architecture, **contract_fields
    )
    kwargs = {}
    if qlora:  # the same 4-bit config the trainer uses (nf4, double quant, heads kept in full precision)
        from rerank_align.scoring.quantization import QuantizationConfig, bnb_config

        kwargs["quantization_config"] = bnb_config(
            QuantizationConfig(load_in_4bit=True, compute_dtype="float32", quant_storage="float32")
        )
    torch.manual_seed(seed)
    model = load_model(str(base), contract, dtype="float32", **kwargs)
    cfg = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules="all-linear" if architecture != "encoder" else ["query", "key", "value", "dense"],
        modules_to_save=modules_to_save,
        # peft's SEQ_CLS task type adds the head to modules_to_save by itself; task_type=None reproduces an
        # adapter trained without it (the head is lost)
        task_type=("SEQ_CLS" if kind == "head" else "CAUSAL_LM") if task_type == "auto" else task_type,
    )
    model = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or ("modules_to_save" in name and p.dtype.is_floating_point):
                p.add_(torch.randn(p.shape, generator=g) * scale)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    contract.save(out)
    if recipe_yaml is not None:
        (out / "recipe.yaml").write_text(recipe_yaml)
    return out


QLORA_RECIPE = """\
model: {name_or_path: tiny, kind: yesno}
method: {name: score, loss: infonce}
peft: {enabled: true, r: 4, alpha: 8}
quantization: {load_in_4bit: true, quant_type: nf4, double_quant: true, compute_dtype: float32}
training: {learning_rate: 0.0001, num_train_epochs: 1}
seed: 7
"""


@pytest.fixture(scope="session")
def lora_yesno(tiny_causal, tmp_path_factory) -> Path:
    return make_adapter(tiny_causal, tmp_path_factory.mktemp("adapters") / "lora_yesno")


@pytest.fixture(scope="session")
def qlora_yesno(tiny_causal, tmp_path_factory) -> Path:
    return make_adapter(
        tiny_causal, tmp_path_factory.mktemp("adapters") / "qlora_yesno", qlora=True, recipe_yaml=QLORA_RECIPE
    )


@pytest.fixture(scope="session")
def lora_head_causal(tiny_causal, tmp_path_factory) -> Path:
    return make_adapter(
        tiny_causal,
        tmp_path_factory.mktemp("adapters") / "lora_head",
        kind="head",
        modules_to_save=["score"],
    )
