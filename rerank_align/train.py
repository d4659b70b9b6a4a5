"""Training entry point, read top to bottom: seed → recipe → data → model → trainer → train → save → eval.

accelerate launch --config_file recipes/accelerate/<cfg>.yaml -m rerank_align.train <recipe.yaml> [k.sub=v ...]
rerank-align train <recipe.yaml> [k.sub=v ...]
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from rerank_align.config import Recipe, load_recipe
from rerank_align.config.contract import recipe_contract
from rerank_align.config.distill_preference_config import DistillPreferenceMethod
from rerank_align.config.load import training_args_class
from rerank_align.config.score_config import ScoreMethod
from rerank_align.data.formats import source_kind
from rerank_align.data.hf import hub_offline, looks_like_hub_id
from rerank_align.data.training_records import training_records
from rerank_align.errors import RecipeError, RerankAlignError, run_main
from rerank_align.io import check_output, check_safetensors, write_json
from rerank_align.models.packaged import resolve_prepared
from rerank_align.precision import log_resolution, resolve
from rerank_align.scoring.modeling import PACKAGED_MODELS, load_tokenizer
from rerank_align.training.model import build_model


def default_training_args(recipe: Recipe) -> dict[str, Any]:
    import torch

    name = Path(recipe.source).stem if recipe.source else "run"
    on_cpu = not torch.cuda.is_available()
    args: dict[str, Any] = {
        "output_dir": f"outputs/{name}",
        "seed": recipe.seed,
        "data_seed": recipe.seed,
        "report_to": "none",
        "remove_unused_columns": False,
        "save_strategy": "no",
        "logging_steps": 10,
        "use_cpu": on_cpu,
        "dataloader_num_workers": 0,
    }
    if recipe.eval.every_n_steps:
        args.update(
            eval_strategy="steps",
            eval_steps=recipe.eval.every_n_steps,
            save_strategy="steps",
            save_steps=recipe.eval.every_n_steps,
            save_total_limit=2,
            load_best_model_at_end=True,
            metric_for_best_model=f"eval_{recipe.eval.metric}",
            greater_is_better=True,
        )
    return args


def _min_negatives(recipe: Recipe) -> int:
    """A contrastive group needs a negative (the score family's rule, ``ScoreMethod.min_negatives``)."""
    return recipe.family.min_negatives(recipe) if recipe.family is ScoreMethod else 0


def training_precision(training: dict[str, Any], device: str) -> tuple[dict[str, bool], str]:
    """``bf16`` / ``fp16`` for TrainingArguments from the recipe's values, and the resolved precision's name.

    Both default to ``auto``: bf16 where the hardware runs it natively (rerank_align/precision.py), else float32;
    ``auto`` never picks fp16. Explicit booleans are kept (``bf16: true`` on a CPU without bf16 units runs, slowly,
    under emulated bf16 autocast). TRL's configs default to ``bf16=True``, so both are always set here."""
    bf16, fp16 = training.get("bf16", "auto"), training.get("fp16", "auto")
    if fp16 is True and bf16 is True:
        raise RecipeError("bf16 and fp16 are both true", where="training.fp16", hint="choose one precision")
    if fp16 is True:
        resolved = "float16"
    else:
        resolved = resolve(bf16, device)
    return {"bf16": resolved == "bfloat16", "fp16": resolved == "float16"}, resolved


def record_kind(recipe: Recipe) -> str:
    """The records a recipe trains on: preference methods read preference records, or build their pairs from
    list records (qrels or samples)."""
    records = recipe.family.record_kind(recipe.method.name)
    if records == "preference" and recipe.data.train_file and _train_file_kind(recipe) == "preference":
        return "preference"
    return "list" if records in ("list", "preference") else "group"


def load_training_records(recipe: Recipe) -> list[dict]:
    """The recipe's training records (group, list or preference; ``rerank_align.data.training_records``)."""
    return training_records(
        recipe.data, record_kind(recipe), seed=recipe.seed, min_negatives=_min_negatives(recipe)
    )


def _train_file_kind(recipe: Recipe) -> str:
    """Preference methods train on preference records, or on list records they build pairs from."""
    d = recipe.data
    return source_kind(d.train_file, d.format, d.split, d.dataset_config)


def recipe_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML; every save writes it beside the weights (merge, cards, QLoRA reloads read it)."""
    import yaml

    data = dataclasses.asdict(recipe)
    data.pop("source", None)
    return f"# resolved from {recipe.source}\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def build_trainer(recipe: Recipe, model, tokenizer, contract, records, args, ranking_eval) -> Any:
    """The trainer of the recipe's method: ``build_trainer`` of its family's module in ``rerank_align/training``
    (``recipe.family.trainer``), imported here, when a run starts, so that a recipe error is reported before
    transformers / TRL load (the way TRL's own package imports its trainers lazily, by module name)."""
    module = importlib.import_module(f"rerank_align.training.{recipe.family.trainer}")
    return module.build_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval)


def gather_zero3_weights_on_save(trainer: Any) -> None:
    """Under DeepSpeed ZeRO-3, make every save (checkpoints and the final model) gather the full weights.

    Without ``stage3_gather_16bit_weights_on_model_save`` transformers writes no weights, only DeepSpeed shards, and
    the folder does not load as a model. The engine is built from this dict inside ``train()``, so setting it here
    covers every save (tests/distributed: the saved model scores as the in-memory one).
    """
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    zero = (plugin.deepspeed_config.get("zero_optimization") or {}) if plugin is not None else {}
    if zero.get("stage") == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True


TRAIN_OUTPUTS = ("checkpoint-*", "train_summary.json", "recipe.yaml", "trainer_state.json", "runs")
"""Files an earlier training run leaves in output_dir: a folder holding one may be trained into again (resume)."""


def preflight(recipe: Recipe, *, overwrite: bool = False) -> None:
    """Before any model loads: ``output_dir`` is writable and is new, empty, or an earlier run's (a read-only
    folder would otherwise fail at the first save, after every step has run), and a local base model's
    safetensors files are complete (a truncated download fails in one line naming the file)."""
    if Path(recipe.model.name_or_path).is_dir():
        check_safetensors(recipe.model.name_or_path)

    out = {**default_training_args(recipe), **recipe.training}.get("output_dir")
    if out:
        sources = [p for p in (recipe.model.name_or_path, recipe.data.train_file, recipe.data.beir) if p]
        check_output(
            out,
            overwrite=overwrite,
            sources=sources,
            ours=TRAIN_OUTPUTS,
            replace=False,
            where="training.output_dir",
        )


def offline_trackers(recipe: Recipe) -> None:
    """With the hub offline (HF_HUB_OFFLINE=1), wandb logs offline unless WANDB_MODE says otherwise (``wandb sync``
    uploads the run later); trackio and tensorboard write local files anyway."""
    report_to = recipe.training.get("report_to") or []
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    if "wandb" in names and hub_offline():
        os.environ.setdefault("WANDB_MODE", "offline")


def preflight_models(recipe: Recipe) -> None:
    """Every model a recipe loads is a local folder, a packaged model or a hub id in the local cache when the hub is
    offline: a miss is one line naming the key, the model and the download command (not a chained traceback)."""
    from huggingface_hub import try_to_load_from_cache

    if not hub_offline():
        return
    m, mc = recipe.model, recipe.method
    wanted = [("model.name_or_path", m.name_or_path, m.revision)]
    if recipe.family is DistillPreferenceMethod:
        wanted += [
            ("method.teacher_model", mc.teacher_model, None),
            ("method.teacher_ref_model", mc.teacher_ref_model, None),
        ]
    for key, name, revision in wanted:
        if not name or Path(name).exists() or str(name).lower().replace("_", "-") in PACKAGED_MODELS:
            continue
        try:  # a model materialised by `rerank-align models prepare` (not a hub id)
            if resolve_prepared(str(name)) is not None:
                continue
        except RerankAlignError as e:
            raise RerankAlignError(e.what, where=key, hint=e.hint) from None
        if (
            "/" in str(name) and Path(str(name).split("/")[0]).is_dir()
        ):  # a local path that was not produced yet
            raise RerankAlignError(
                f"model folder {name!r} not found",
                where=key,
                hint="produce it first (see the recipe's header)",
            )
        cached = any(
            isinstance(try_to_load_from_cache(name, f, revision=revision), str)
            for f in ("config.json", "adapter_config.json")
        )
        if not cached:
            raise RerankAlignError(
                f"model {name!r} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1)",
                where=key,
                hint=f"download it once with network access: HF_HUB_OFFLINE=0 hf download {name}; or set {key} "
                "to a local folder",
            )


def _recipe_commands(recipe: Recipe) -> list[str]:
    """Command lines written in the comments of the recipe and of the recipes it extends (``base:``)."""
    import yaml

    if not recipe.source:
        return []
    out, todo, seen = [], [Path(recipe.source)], set()
    while todo:
        p = todo.pop(0).resolve()
        if p in seen or not p.is_file():
            continue
        seen.add(p)
        text = p.read_text(encoding="utf-8")
        out += [ln.strip().lstrip("#").strip() for ln in text.splitlines() if ln.strip().startswith("#")]
        try:
            base = (yaml.safe_load(text) or {}).get("base")
        except yaml.YAMLError:
            base = None
        todo += [
            p.parent / b for b in ([base] if isinstance(base, str) else base or []) if isinstance(b, str)
        ]
    return [ln.strip("`") for ln in out if re.search(r"(^|[\s`])rerank-align |python ", ln)]


def preflight_data(recipe: Recipe) -> None:
    """Local data paths a recipe reads exist; a missing one names its key and, when the recipe documents the command
    that makes it, that command."""
    d, e = recipe.data, recipe.eval
    paths = [("data.train_file", d.train_file), ("data.beir", d.beir), ("data.run", d.run)]
    paths += [(f"data.teacher_files[{i}]", t) for i, t in enumerate(d.teacher_files)]
    paths += [("eval.beir", e.beir), ("eval.run", e.run)]
    for key, value in paths:
        if not value or Path(value).exists() or looks_like_hub_id(value):
            continue
        made_by = [c for c in _recipe_commands(recipe) if value in c.replace("=", " ").split()]
        hint = (
            f"make it first: {made_by[0]}"
            if made_by
            else "check the path (relative to the working directory)"
        )
        raise RerankAlignError(f"{value} not found", where=key, hint=hint)


def run(recipe: Recipe, *, overwrite: bool = False) -> dict[str, Any]:
    import torch
    from transformers import set_seed

    from rerank_align.reliability import CommitCheckpoints, resolve_resume
    from rerank_align.training.ranking_eval import make_ranking_eval

    offline_trackers(recipe)
    preflight_models(recipe)
    preflight_data(recipe)
    preflight(recipe, overwrite=overwrite)
    set_seed(recipe.seed)
    m = recipe.model
    tokenizer = load_tokenizer(m.name_or_path, revision=m.revision, trust_remote_code=m.trust_remote_code)
    contract = recipe_contract(recipe, tokenizer)
    records = load_training_records(recipe)
    model = build_model(recipe, contract)
    args_cls = training_args_class(recipe.family.args_class)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mixed, precision = training_precision(recipe.training, device)
    requested = "float16" if recipe.training.get("fp16") is True else recipe.training.get("bf16", "auto")
    log_resolution("train", requested, precision, device)
    args = args_cls(**{**default_training_args(recipe), **recipe.training, **mixed})
    ranking_eval = None
    if recipe.eval.beir:
        ranking_eval = make_ranking_eval(
            recipe.eval,
            contract,
            tokenizer,
            keep_train_mode=recipe.quantization.load_in_4bit,
            precision=precision,
        )
    trainer = build_trainer(recipe, model, tokenizer, contract, records, args, ranking_eval)
    trainer.recipe_text = recipe_yaml(recipe)
    trainer.add_callback(CommitCheckpoints())  # a checkpoint counts only once every file of it is written
    gather_zero3_weights_on_save(trainer)
    resume = resolve_resume(recipe.training.get("resume_from_checkpoint"), args.output_dir)
    before = ranking_eval(trainer.model) if ranking_eval is not None and recipe.eval.at_start else None
    if before is not None:  # the untrained model's ranking metrics go to the trackers too, at step 0
        from rerank_align.training.ranking_eval import LogAtTrainBegin

        trainer.add_callback(LogAtTrainBegin(trainer, {f"eval_{k}": v for k, v in before.items()}))
    t0, c0 = time.time(), time.process_time()
    result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.time() - t0
    train_cpu_seconds = time.process_time() - c0  # this process's CPU time: meaningful on a shared machine
    trainer.save_model(
        args.output_dir
    )  # weights, tokenizer, recipe.yaml, then reranker.json (the mixin's _save)
    summary: dict[str, Any] = {
        "output_dir": args.output_dir,
        "train_seconds": round(train_seconds, 2),
        "train_cpu_seconds": round(train_cpu_seconds, 2),
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "records": len(records),
        "precision": precision,
    }
    if before is not None:
        summary["eval_at_start"] = before
    if ranking_eval is not None:
        summary["eval"] = trainer.evaluate()
    if trainer.is_world_process_zero():
        write_json(Path(args.output_dir) / "train_summary.json", summary)
    return summary


def is_rank_zero() -> bool:
    """Rank 0 of a distributed launch (accelerate / torchrun set RANK), or a single process."""
    return os.environ.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    overwrite = "--overwrite" in argv
    argv = [a for a in argv if a != "--overwrite"]
    recipe = load_recipe(argv[0], argv[1:])
    summary = run(recipe, overwrite=overwrite)
    if is_rank_zero():  # every rank holds the same summary; one copy on the console
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
