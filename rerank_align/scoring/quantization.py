"""4-bit (QLoRA) loading: the recipe's ``quantization`` section and the bitsandbytes config built from it.

It sits in the scoring layer because loading a saved adapter (``Reranker.from_pretrained``) and merging one
(``rerank-align merge``) need the same config the trainer used; the recipe's dataclass tree reuses this section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from rerank_align.strict import field, from_dict

# the scoring heads stay in full precision: a new head would be quantised before it is initialised,
# and a 4-bit head cannot be trained (it is in modules_to_save)
HEAD_MODULES = ("lm_head", "score", "classifier", "pooler")


@dataclass
class QuantizationConfig:
    load_in_4bit: bool = field(False, help="QLoRA: load the base in 4-bit (bitsandbytes).")
    quant_type: Literal["nf4", "fp4"] = field("nf4", help="4-bit data type.")
    compute_dtype: Literal["float32", "bfloat16", "float16"] = field(
        "bfloat16", help="Compute dtype of 4-bit layers."
    )
    double_quant: bool = field(True, help="Quantise the quantisation constants too.")
    quant_storage: Literal["uint8", "float32", "bfloat16", "float16"] = field(
        "uint8", help="Storage dtype of 4-bit weights; must equal compute_dtype under ZeRO-3 / FSDP."
    )


def bnb_config(q: QuantizationConfig) -> Any:
    """The BitsAndBytesConfig of a recipe's ``quantization`` section (None unless 4-bit)."""
    if not q.load_in_4bit:
        return None
    # lazy: transformers costs seconds to import and only a 4-bit load needs it here
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.quant_type,
        bnb_4bit_compute_dtype=getattr(torch, q.compute_dtype),
        bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_quant_storage=getattr(torch, q.quant_storage),
        llm_int8_skip_modules=list(HEAD_MODULES),
    )


def saved_quantization(directory: str | Path) -> Any:
    """The 4-bit config an adapter was trained with, from the ``recipe.yaml`` the trainer saved beside it."""
    path = Path(directory) / "recipe.yaml"
    if not path.is_file():
        return None
    section = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("quantization") or {}
    return bnb_config(from_dict(QuantizationConfig, section, "quantization"))
