"""Reading a recipe: YAML (safe loader) → ``base:`` inheritance → ``key.sub=value`` overrides → typed, checked."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import typing
from pathlib import Path

import yaml

from rerank_align.config.recipe import Recipe
from rerank_align.config.yaml_io import load_yaml, read_yaml_file
from rerank_align.data.formats import FORMAT_KIND
from rerank_align.errors import ContractError, RecipeError
from rerank_align.scoring.listwise_format import capacity
from rerank_align.scoring.modeling import architecture_of, read_model_type
from rerank_align.strict import coerce, from_dict, suggest, unknown_key_error


def read_yaml(path: Path) -> dict:
    return read_yaml_file(path, "recipe", RecipeError)


def deep_merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for k, v in child.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise RecipeError("recipe inherits from itself", where=str(path), hint="remove the cycle in 'base:'")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    bases = base if isinstance(base, list) else [base]
    merged: dict = {}
    for b in bases:
        if not isinstance(b, str):
            raise RecipeError("'base' must be a path or a list of paths", where=f"{path}:base")
        merged = deep_merge(merged, resolve_bases((path.parent / b), (*seen, path)))
    return deep_merge(merged, data)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``a.b.c=value`` (value parsed as YAML, so numbers, booleans and lists keep their type)."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r} is not key=value", hint="e.g. training.learning_rate=2e-5")
        key, raw = item.split("=", 1)
        try:
            value = load_yaml(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            try:  # YAML 1.1 reads "2e-5" as a string
                value = float(value)
            except ValueError:
                pass
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p, {}), dict):
                raise RecipeError(f"cannot set {key}: '{p}' is not a section", where=key)
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return data


def parse_recipe(data: dict, source: str | None = None) -> Recipe:
    data = dict(data)
    if "source" in data:
        raise RecipeError("'source' is set by the loader", where="source", hint="remove it from the recipe")
    recipe: Recipe = from_dict(Recipe, data)
    recipe.source = source
    check(recipe)
    return recipe


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    data = apply_overrides(resolve_bases(path), overrides or [])
    return parse_recipe(data, source=str(path))


# -- cross-field checks ---------------------------------------------------------------------------------------
def model_architecture(recipe: Recipe) -> str:
    """The recipe's architecture, reading config.json of a local model when set to 'auto'."""
    if recipe.model.architecture != "auto":
        return recipe.model.architecture

    try:
        return architecture_of(read_model_type(recipe.model.name_or_path, recipe.model.revision))
    except Exception as e:  # noqa: BLE001
        raise RecipeError(
            f"cannot read the model config ({e})",
            where="model.name_or_path",
            hint="or set model.architecture",
        ) from None


def training_args_class(name: str) -> type:
    if name == "SFTConfig":
        from trl import SFTConfig

        return SFTConfig
    if name == "DPOConfig":
        from trl import DPOConfig

        return DPOConfig
    from transformers import TrainingArguments

    return TrainingArguments


def _zero_stage(recipe: Recipe) -> int | None:
    ds = recipe.training.get("deepspeed")
    if isinstance(ds, dict):
        return ds.get("zero_optimization", {}).get("stage")
    if isinstance(ds, str) and Path(ds).is_file():
        return json.loads(Path(ds).read_text()).get("zero_optimization", {}).get("stage")
    stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
    return int(stage) if stage and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true" else None


def check(recipe: Recipe) -> None:
    """Contradictions and cross-field rules; every message names the key and the fix. The method's rules belong
    to its family's config section (``recipe.family.check``); the model, data, quantization, eval and training
    rules follow here."""
    m, method, q = recipe.model, recipe.method, recipe.quantization
    arch = model_architecture(recipe)
    recipe.family.check(recipe, arch)
    if m.list_prompt_template is not None:
        if m.kind != "listwise":
            raise RecipeError(
                "list_prompt_template applies to kind listwise only", where="model.list_prompt_template"
            )
        missing = [p for p in ("{query}", "{passages}") if p not in m.list_prompt_template]
        if missing:
            raise RecipeError(
                f"list_prompt_template lacks {', '.join(missing)}",
                where="model.list_prompt_template",
                hint="e.g. 'Query: {query}\\n{passages}Rank the {n} passages:\\n'",
            )
    if recipe.data.shuffle_candidates:
        if m.kind != "listwise":
            raise RecipeError(
                "shuffle_candidates applies to listwise training only", where="data.shuffle_candidates"
            )
        builds_pairs = recipe.family.record_kind(method.name) == "preference" and method.name != "pl_dpo"
        if builds_pairs and getattr(method, "preference_source", None) == "qrels":
            raise RecipeError(
                "preference_source qrels takes the input order as the rejected ranking; shuffled, it would be random",
                where="data.shuffle_candidates",
                hint="use preference_source samples or student, or leave the candidates in first-stage order",
            )
    d = recipe.data
    if d.list_size is not None or d.lists_per_query > 1:
        where = "data.list_size" if d.list_size is not None else "data.lists_per_query"
        if m.kind != "listwise" or d.train_file:
            raise RecipeError(
                "list_size / lists_per_query apply to listwise lists built from qrels (data.beir), not to "
                + ("a train_file" if d.train_file else f"kind {m.kind}"),
                where=where,
            )
        if d.lists_per_query > 1 and (d.list_size is None or d.list_size >= d.depth):
            raise RecipeError(
                f"lists_per_query {d.lists_per_query} needs list_size below depth ({d.depth})",
                where="data.lists_per_query",
                hint="e.g. depth: 30, list_size: 10, lists_per_query: 4",
            )
    if m.list_identifier is not None:
        if m.kind != "listwise":
            raise RecipeError("list_identifier applies to kind listwise only", where="model.list_identifier")
        try:  # the contract's own reading of an identifier format
            cap = capacity(m.list_identifier)
        except ContractError as e:
            raise RecipeError(
                f"list_identifier {m.list_identifier!r} must contain exactly one of {{i}} or {{a}}",
                where="model.list_identifier",
                hint="'[{i}]' numbers the candidates [1], [2], ...; '[{a}]' letters them [A], [B], ...",
            ) from e
        window = getattr(recipe.method, "listwise_window", 0)
        if cap is not None and window > cap:
            raise RecipeError(
                f"letters number at most {cap} candidates, but method.listwise_window is {window}",
                where="model.list_identifier",
                hint=f"use a window of at most {cap}, or numbers '[{{i}}]'",
            )
    if arch == "vlm" and m.kind != "yesno":
        raise RecipeError(
            f"kind {m.kind!r} on a VLM is not built", where="model.kind", hint="use kind: yesno for a VLM"
        )
    if (m.image_min_pixels or m.image_max_pixels) and arch != "vlm":
        raise RecipeError("image settings apply to VLMs only", where="model.image_max_pixels")
    if m.image_min_pixels and m.image_max_pixels and m.image_min_pixels > m.image_max_pixels:
        raise RecipeError(
            f"image_min_pixels {m.image_min_pixels} > image_max_pixels {m.image_max_pixels}",
            where="model.image_min_pixels",
        )
    if m.kind == "yesno" and arch == "encoder":
        raise RecipeError(
            "an encoder has no answer tokens", where="model.kind", hint="use kind: head for encoders"
        )
    if m.kind != "yesno" and (m.formula or m.answer_yes or m.answer_no):
        raise RecipeError("formula and answer tokens apply to kind yesno only", where="model.formula")
    # irpo_rounds is the list preference family's key, but any method that sets it is refused
    if method.irpo_rounds > 1 and (method.name != "irpo" or recipe.training.get("precompute_ref_log_probs")):
        raise RecipeError(
            "iterative IRPO regenerates its lists, so its reference log-probs cannot be precomputed",
            where="method.irpo_rounds",
            hint="use irpo_rounds only with method irpo and without training.precompute_ref_log_probs",
        )
    if recipe.data.train_file is None and recipe.data.beir is None:
        raise RecipeError(
            "no training data", where="data.train_file", hint="set data.train_file or data.beir (+ data.run)"
        )
    check_data_format(recipe)
    if q.load_in_4bit:
        if not recipe.peft.enabled:
            raise RecipeError(
                "4-bit weights cannot be trained directly",
                where="quantization.load_in_4bit",
                hint="set peft.enabled: true (QLoRA)",
            )
        if _zero_stage(recipe) == 3 and q.quant_storage != q.compute_dtype:
            raise RecipeError(
                f"4-bit with ZeRO-3 needs quant_storage equal to compute_dtype ({q.compute_dtype}), got {q.quant_storage}",
                where="quantization.quant_storage",
                hint=f"set quantization.quant_storage: {q.compute_dtype}",
            )
    if recipe.eval.every_n_steps and not recipe.eval.beir:
        raise RecipeError("in-training evaluation needs a collection", where="eval.beir")
    cls = training_args_class(recipe.family.args_class)
    names = {f.name for f in dataclasses.fields(cls)}
    hints = _training_hints(cls)
    for k in list(recipe.training):
        if k not in names:
            raise unknown_key_error("training", k, names)
        recipe.training[k] = check_training_value(k, recipe.training[k], hints.get(k))
    if "report_to" in recipe.training:
        recipe.training["report_to"] = check_report_to(recipe.training["report_to"])


def _training_hints(cls: type) -> dict[str, typing.Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a hint that does not resolve is simply not checked
        return {}


def check_training_value(key: str, value: typing.Any, hint: typing.Any) -> typing.Any:
    """Scalar training arguments (int / float / bool) are type-checked at parse time, naming ``training.<key>``.

    A number written as a string (YAML 1.1 reads ``2e-5`` as one) is converted; ``resume_from_checkpoint`` also
    takes ``true`` (the latest complete checkpoint in ``output_dir``); ``bf16`` / ``fp16`` also take ``auto``
    (rerank_align/precision.py).
    """
    where = f"training.{key}"
    if key in ("bf16", "fp16") and value == "auto":  # the precision policy, resolved when training starts
        return value
    if key == "resume_from_checkpoint":
        if value is None or isinstance(value, (bool, str)):
            return value
        raise RecipeError(f"expected a checkpoint path or true, got {value!r}", where=where)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1 and len(typing.get_args(hint)) == 2:  # Optional[scalar]
        if value is None:
            return None
        hint = args[0]
    if hint not in (int, float, bool):
        return value
    if hint is not bool and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise RecipeError(
                f"expected {'an integer' if hint is int else 'a number'}, got {value!r}", where=where
            ) from None
        value = int(number) if hint is int and number.is_integer() else number
    return coerce(value, hint, where) if hint is not float else float(coerce(value, hint, where))


def check_data_format(recipe: Recipe) -> None:
    """``data.format`` names a reader for ``data.train_file`` whose record kind the method can train on."""
    d, records = recipe.data, recipe.family.record_kind(recipe.method.name)
    if d.format != "auto" and d.train_file is None:
        raise RecipeError(
            f"data.format {d.format!r} describes data.train_file, which is not set",
            where="data.format",
            hint="set data.train_file, or remove data.format",
        )
    kind = FORMAT_KIND.get(d.format)
    if kind is None:
        return
    # preference methods also train on list records (pairs are built from each list)
    ok = kind == records or (records == "preference" and kind == "list")
    if not ok:
        raise RecipeError(
            f"{d.format} data holds {kind} records, but method '{recipe.method.name}' trains on {records} records",
            where="data.format",
            hint="group formats (flagembedding, sentence-transformers, tevatron) suit score / sft_yesno / pg_rank; "
            "rank_llm lists suit fullrank / first / irpo / dpo-family methods",
        )


# tracker name → (module that must import, pip extra of this package)
TRACKERS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "trackio": ("trackio", "trackio"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", None),
    "comet_ml": ("comet_ml", None),
    "clearml": ("clearml", None),
    "neptune": ("neptune", None),
    "dvclive": ("dvclive", None),
    "swanlab": ("swanlab", None),
    "codecarbon": ("codecarbon", None),
    "azure_ml": ("azureml", None),
    "dagshub": ("dagshub", None),
    "flyte": ("flytekit", None),
    "kubeflow": ("kubeflow", None),
}


def check_report_to(value: typing.Any) -> typing.Any:
    """``training.report_to``: known tracker names that are installed (checked here, not by a traceback later).

    ``"none"`` and ``"all"`` (every installed tracker) pass as they are.
    """
    where = "training.report_to"
    if value is None or value in ("none", "all", ["none"], ["all"]):
        return value
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RecipeError(f"expected a tracker name or a list of them, got {value!r}", where=where)
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    for n in names:
        if n not in INTEGRATION_TO_CALLBACK:
            raise RecipeError(
                f"unknown tracker {n!r}",
                where=where,
                hint=suggest(n, [*INTEGRATION_TO_CALLBACK, "none", "all"])
                or f"one of none, all, {', '.join(INTEGRATION_TO_CALLBACK)}",
            )
        module, extra = TRACKERS.get(n, (n, None))
        if importlib.util.find_spec(module) is None:
            install = f"pip install 'rerank-align[{extra}]'" if extra else f"pip install {module}"
            raise RecipeError(f"tracker {n!r} is not installed", where=where, hint=f"install it: {install}")
    return value


def activation_checkpointing(training: dict) -> bool:
    """Whether a recipe's training section turns activation checkpointing on: ``activation_checkpointing``, or its
    deprecated transformers-5 alias ``gradient_checkpointing`` when the new key is absent."""
    value = training.get("activation_checkpointing")
    return bool(training.get("gradient_checkpointing", False) if value is None else value)
