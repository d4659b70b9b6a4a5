"""``rerank-align merge <adapter_dir> --out <dir>``: fold a LoRA / QLoRA adapter into its base, with a parity gate.

Steps:

1. Read ``reranker.json`` of the adapter (the base model and revision come from there, nowhere else) and check
   that ``adapter_config.json`` names the same base, and that a ``head`` adapter carries its trained head
   (peft ``modules_to_save`` ``score`` / ``classifier``) — without it the head would be freshly initialised.
2. Score the probe set with the adapter model in float32 (for a QLoRA adapter: the 4-bit base, compute in float32,
   plus the adapter — exactly the model that was trained).
3. Merge: LoRA deltas are added into float32 weights. For QLoRA the base is loaded in 4-bit again and
   dequantized (``model.dequantize()``) to float32 first, so the merged weights are the weights the adapter was
   trained against (peft's own 4-bit merge would re-quantize and lose the deltas).
4. Gate A: adapter model vs merged model, float32, max |Δ| ≤ tolerance.
5. Cast to ``--dtype`` and save weights, tokenizer / processor files, ``reranker.json``, ``merge_report.json`` and
   a model card into a temporary sibling folder; reload it with ``Reranker.from_pretrained`` (float32) and gate B:
   reloaded scores vs the in-memory merged model (with its weights rounded to ``--dtype`` and back), max |Δ| ≤
   tolerance. The end-to-end adapter-vs-saved difference is reported too; for float32 it is gated as well.
6. Only then is the temporary folder renamed to ``--out``. Any failure or interruption removes it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from rerank_align.errors import ContractError, RerankAlignError, run_main
from rerank_align.export.card import write_card
from rerank_align.export.common import (
    DEFAULT_TOLERANCE,
    ParityReport,
    compare,
    enforce,
    find_recipe,
    list_answer_logprobs,
    mark_cross_encoder,
    probe_pairs,
    read_recipe_dict,
    save_tokenizer,
    scores_of,
    torch_dtype,
)
from rerank_align.io import atomic_dir, check_output, check_safetensors, write_json

log = logging.getLogger(__name__)
HEAD_MODULES = ("score", "classifier")


# -- checks on the adapter folder ------------------------------------------------------------------------------
def adapter_config(adapter_dir: Path) -> dict:
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        raise ContractError(
            "not a LoRA adapter folder (no adapter_config.json)",
            where=str(adapter_dir),
            hint="a full model needs no merge; export or push it directly",
        )
    return json.loads(path.read_text(encoding="utf-8"))


def adapter_weight_keys(adapter_dir: Path) -> list[str]:
    f = adapter_dir / "adapter_model.safetensors"
    if not f.is_file():
        return []
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as fh:
        return list(fh.keys())


def check_head_saved(adapter_dir: Path, acfg: dict, contract: Any) -> None:
    """A head adapter must carry the trained head, or merging it would ship a randomly initialised head."""
    if contract.kind != "head":
        return
    saved = set(acfg.get("modules_to_save") or [])
    keys = adapter_weight_keys(adapter_dir)
    in_file = any(f".{m}." in f".{k}" for k in keys for m in HEAD_MODULES)
    if not (saved & set(HEAD_MODULES)) or not in_file:
        raise ContractError(
            "this head adapter does not contain its trained head (modules_to_save has no 'score'/'classifier' "
            "weights)",
            where=str(adapter_dir / "adapter_config.json"),
            hint="retrain with peft.modules_to_save: [score] (causal) or [classifier] (encoder)",
        )


def _same_model(a: str, b: str) -> bool:
    if a == b:
        return True
    from rerank_align.scoring.modeling import resolve_model_path

    # a packaged or prepared model's name (reranker.json) and its folder (adapter_config.json) are the same model
    try:
        a, b = resolve_model_path(a), resolve_model_path(b)
    except RerankAlignError:
        return False
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def check_base(acfg: dict, contract: Any, adapter_dir: Path, base_override: str | None) -> str:
    """The base to load: reranker.json's ``base_model`` (or ``--base``), which adapter_config.json must agree with."""
    base = base_override or contract.base_model
    named = acfg.get("base_model_name_or_path")
    if base_override is None and named and not _same_model(named, base):
        raise ContractError(
            f"adapter_config.json names base {named!r} but reranker.json says {base!r}",
            where=str(adapter_dir),
            hint="pass --base PATH if the base moved; otherwise the adapter belongs to another model",
        )
    return base


def detect_quantization(choice: str, adapter_dir: Path, recipe: dict) -> dict | None:
    """``None`` for a plain LoRA adapter, else ``{"quant_type", "double_quant"}`` of the QLoRA base."""
    if choice == "none":
        return None
    if choice in ("nf4", "fp4"):
        q = recipe.get("quantization") or {}
        return {"quant_type": choice, "double_quant": bool(q.get("double_quant", True))}
    q = recipe.get("quantization") or {}
    if q.get("load_in_4bit"):
        return {"quant_type": q.get("quant_type", "nf4"), "double_quant": bool(q.get("double_quant", True))}
    return None


# -- loading -----------------------------------------------------------------------------------------------------
def load_base(
    base: str, contract: Any, quant: dict | None, device: str, *, trust_remote_code: bool = False
) -> Any:
    import torch

    from rerank_align.scoring.modeling import load_model

    kwargs: dict[str, Any] = {}
    if quant is not None:
        # the trainer's own 4-bit config (same skipped head modules), computing in float32 for the parity gate
        from rerank_align.scoring.quantization import QuantizationConfig, bnb_config

        kwargs["quantization_config"] = bnb_config(
            QuantizationConfig(
                load_in_4bit=True,
                quant_type=quant["quant_type"],
                double_quant=quant["double_quant"],
                compute_dtype="float32",
                quant_storage="float32",
            )
        )
        kwargs["device_map"] = {"": device}
    # a head missing from both base and adapter is refused earlier; seeding makes any other fresh init repeatable
    torch.manual_seed(0)
    model = load_model(
        base,
        contract,
        revision=contract.base_model_revision,
        dtype="float32",
        trust_remote_code=trust_remote_code,
        **kwargs,
    )
    return model  # load_model already makes 4-bit layers compute exactly (exact_4bit_compute)


def _merge_and_unload(peft_model: Any) -> Any:
    """peft's merge (LoRA deltas into the weights; modules_to_save copies replace the originals)."""
    return peft_model.merge_and_unload()


# -- the merge ------------------------------------------------------------------------------------------------------
def merge(
    adapter_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: str = "float32",
    probe_file: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    quantization: str = "auto",
    base: str | None = None,
    device: str = "cpu",
    results: str | None = None,
    recipe: str | None = None,
    data_files: list[str] | None = None,
    trust_remote_code: bool = False,
    overwrite: bool = False,
) -> ParityReport:
    """Merge ``adapter_dir`` into its base and write the model to ``out`` (see the module docstring).

    ``out`` must be new or empty (``overwrite`` replaces an existing folder, only once the new one is complete)
    and may not contain the adapter or any other input."""
    import torch
    from peft import PeftModel

    from rerank_align.scoring.contract import ScoringContract
    from rerank_align.scoring.modeling import load_tokenizer
    from rerank_align.scoring.reranker import Reranker

    adapter_dir, out = Path(adapter_dir), Path(out)
    inputs = [adapter_dir, *(p for p in (probe_file, results, recipe, base) if p), *(data_files or [])]
    check_output(out, overwrite=overwrite, sources=inputs)
    check_safetensors(adapter_dir)
    target_dtype = torch_dtype(dtype)
    contract = ScoringContract.load(adapter_dir)
    acfg = adapter_config(adapter_dir)
    base_path = check_base(acfg, contract, adapter_dir, base)
    check_head_saved(adapter_dir, acfg, contract)
    recipe_path = Path(recipe) if recipe else find_recipe(adapter_dir)
    recipe_dict = read_recipe_dict(recipe_path)
    quant = detect_quantization(quantization, adapter_dir, recipe_dict)
    tokenizer = load_tokenizer(str(adapter_dir), trust_remote_code=trust_remote_code)
    contract.check_tokenizer(tokenizer)
    queries, docs = probe_pairs(probe_file, images=contract.vision is not None)
    report = ParityReport()
    # a listwise model has no pair scores: the gates compare its next-token distribution after each probe list
    unit = "next-token log-probs" if contract.kind == "listwise" else "pairs"

    # 1. the adapter model, as trained (4-bit base for QLoRA), scored in float32
    model = PeftModel.from_pretrained(
        load_base(base_path, contract, quant, device, trust_remote_code=trust_remote_code), str(adapter_dir)
    )
    ref = scores_of(model, tokenizer, contract, queries, docs, device)
    del model

    # 2. the merge, into float32 weights (QLoRA: into the dequantized 4-bit base)
    base_model = load_base(base_path, contract, quant, device, trust_remote_code=trust_remote_code)
    if quant is not None:
        base_model = base_model.dequantize(dtype=torch.float32) or base_model
        if hasattr(base_model.config, "quantization_config"):
            del base_model.config.quantization_config
        base_model.is_quantized = False
    merged = _merge_and_unload(PeftModel.from_pretrained(base_model, str(adapter_dir)))
    merged_scores = scores_of(merged, tokenizer, contract, queries, docs, device)
    report.add(
        compare("merge: adapter vs merged (float32, in memory)", ref, merged_scores, tolerance, unit=unit)
    )
    enforce(report, "merge")

    # 3. cast, save, reload, compare
    expected = merged_scores
    if target_dtype != torch.float32:
        with torch.no_grad():  # the weights exactly as they will be stored (buffers such as rotary stay fp32)
            for param in merged.parameters():
                param.data = param.data.to(target_dtype).to(torch.float32)
        expected = scores_of(merged, tokenizer, contract, queries, docs, device)
        merged.to(target_dtype)
    merged.config.dtype = dtype
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tokenizer, adapter_dir, tmp, contract)
        contract.save(tmp)
        if contract.architecture == "encoder":
            mark_cross_encoder(tmp)
        # sentence-transformers / serving stacks read the prompt and the answer tokens from these files
        yesno_text = contract.kind == "yesno" and contract.architecture == "causal"
        if yesno_text:
            from rerank_align.export.serving import write_chat_template, write_sentence_transformers_yesno

            write_chat_template(tmp, contract)
            write_sentence_transformers_yesno(tmp, contract)
        if recipe_path is not None:
            (tmp / f"recipe{recipe_path.suffix}").write_bytes(recipe_path.read_bytes())
        # float32 weights and no autocast: the gate compares against float32 scores, whatever the hardware would pick
        reloaded = Reranker.from_pretrained(tmp, device=device, dtype="float32", autocast_dtype="float32")
        saved = rerank_scores(reloaded, queries, docs)
        del reloaded
        report.add(
            compare(
                f"save: merged ({dtype}) vs reloaded from disk (float32)",
                expected,
                saved,
                tolerance,
                unit=unit,
            )
        )
        report.add(
            compare(
                f"end to end: adapter vs saved {dtype} model",
                ref,
                saved,
                tolerance,
                gated=target_dtype == torch.float32,
                note="" if target_dtype == torch.float32 else f"includes rounding of the weights to {dtype}",
                unit=unit,
            )
        )
        if contract.architecture == "encoder":
            from rerank_align.export.export import cross_encoder_parity

            report.add(cross_encoder_parity(tmp, queries, docs, tolerance))
        if yesno_text:
            from rerank_align.export.export import cross_encoder_vs

            report.add(cross_encoder_vs(tmp, tokenizer, contract, queries, docs, saved, tolerance))
        enforce(report, "merge")
        source = {
            "operation": "merge",
            "name": out.name,
            "adapter": str(adapter_dir),
            "base_model": contract.base_model,
            "base_model_revision": contract.base_model_revision,
            "base_loaded_from": base_path,
            "qlora": quant,
            "dtype": dtype,
            "lora": {k: acfg.get(k) for k in ("r", "lora_alpha", "target_modules", "modules_to_save")},
            "probe_file": probe_file,
            "parity": report.to_dict(),
        }
        write_json(tmp / "merge_report.json", source)

        write_card(
            tmp,
            contract=contract,
            source=source,
            results=results,
            recipe=recipe_path,
            data_files=data_files,
        )
    return report


def rerank_scores(rr: Any, queries: list, docs: list) -> Any:
    """What the gates compare for a loaded ``Reranker``: its pair scores, or for a listwise one (no pair scores) the
    answer distribution after the probe lists, as ``scores_of`` computes it for the in-memory models."""
    if rr.contract.kind == "listwise":
        device = str(next(rr.model.parameters()).device)
        return list_answer_logprobs(rr.model, rr.tokenizer, rr.contract, queries, docs, device)
    return rr.score_pairs(queries, docs).astype("float64")


# -- command line -----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rerank-align merge",
        description="Merge a LoRA/QLoRA adapter into its base; refuses to finish unless scores match.",
    )
    p.add_argument("adapter_dir", help="folder with adapter_config.json, adapter weights and reranker.json")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out (only once the new model is complete)",
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--probe-file", help="JSONL of group records to probe with (default: built-in pairs)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="max |Δ score| in float32")
    p.add_argument(
        "--quantization",
        default="auto",
        choices=["auto", "none", "nf4", "fp4"],
        help="QLoRA base: auto reads recipe.yaml next to the adapter (quantization.load_in_4bit)",
    )
    p.add_argument("--base", help="load the base from here instead of reranker.json's base_model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--results", help="results JSON of `rerank-align eval` for the card's evaluation table")
    p.add_argument("--recipe", help="the training recipe (default: recipe.yaml in the adapter folder)")
    p.add_argument("--data", action="append", default=[], help="training data file to hash in the card")
    p.add_argument("--trust-remote-code", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.tolerance:
        raise RerankAlignError("--tolerance must be positive")
    report = merge(
        args.adapter_dir,
        args.out,
        dtype=args.dtype,
        probe_file=args.probe_file,
        tolerance=args.tolerance,
        quantization=args.quantization,
        base=args.base,
        device=args.device,
        results=args.results,
        recipe=args.recipe,
        data_files=args.data,
        trust_remote_code=args.trust_remote_code,
        overwrite=args.overwrite,
    )
    for c in report.checks:
        print(c.line())
    print(f"merged model written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
