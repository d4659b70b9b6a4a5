"""Every path a shipped recipe reads exists, or a command written in the recipe (or a recipe it extends) produces
it; a hub model that is not cached answers in one line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.recipes.conftest import RECIPES, REPO, rel

COMMAND = re.compile(r"(^|[\s`])(rerank-align|\S*python|make) ")


def chain(path: Path) -> list[Path]:
    """The recipe file and the files it extends (``base:``), nearest first."""
    import yaml

    out, todo = [], [path]
    while todo:
        p = todo.pop(0).resolve()
        out.append(p)
        base = yaml.safe_load(p.read_text()).get("base")
        todo += [p.parent / b for b in ([base] if isinstance(base, str) else base or [])]
    return out


def comment_commands(path: Path) -> list[str]:
    lines = [ln.strip().lstrip("#").strip() for p in chain(path) for ln in p.read_text().splitlines()]
    return [ln for ln in lines if COMMAND.search(ln)]


def tokens(line: str) -> set[str]:
    return {t for t in re.split(r"[\s=`'\"]+", line) if t}


def local_paths(recipe) -> dict[str, str]:
    d, e, m = recipe.data, recipe.eval, recipe.method
    keys = {
        "data.train_file": d.train_file,
        "data.beir": d.beir,
        "data.run": d.run,
        "eval.beir": e.beir,
        "eval.run": e.run,
        **{f"data.teacher_files[{i}]": t for i, t in enumerate(d.teacher_files)},
    }
    if m.name in ("adpa", "dckd"):  # a model folder the recipe expects to be trained first
        keys |= {"method.teacher_model": m.teacher_model, "method.teacher_ref_model": m.teacher_ref_model}
    return {
        k: v
        for k, v in keys.items()
        if v and (not k.startswith("method.") or v.startswith(("outputs/", ".", "/")))
    }


@pytest.mark.parametrize("path", RECIPES, ids=rel)
def test_every_recipe_path_exists_or_has_a_documented_command(path, shared_data):
    from rerank_align.config import load_recipe

    recipe = load_recipe(path)
    commands = comment_commands(path)
    for key, value in local_paths(recipe).items():
        if (REPO / value).exists():
            continue
        producers = [c for c in commands if value in tokens(c)]
        assert producers, (
            f"{rel(path)}: {key}={value} does not exist and no command in the recipe produces it"
        )
        for c in producers:
            if c.startswith("rerank-align data convert"):  # the documented command parses as written
                from rerank_align.data.cli import build_parser

                args = build_parser().parse_args(shlex.split(c)[2:])
                assert args.output == value


def test_recipes_point_at_collections_that_ship():
    """Evaluation collections are the shipped ones (../shared/data, data/): no recipe needs a download to evaluate."""
    from rerank_align.config import load_recipe

    for p in RECIPES:
        r = load_recipe(p)
        for v in (r.eval.beir, r.eval.run):
            if v:
                assert v.startswith(("../shared/data/", "data/")), (rel(p), v)


def test_no_recipe_uses_a_deprecated_training_key():
    from rerank_align.config import load_recipe

    for p in RECIPES:
        assert not {"gradient_checkpointing", "gradient_checkpointing_kwargs"} & set(
            load_recipe(p).training
        ), rel(p)


def test_uncached_hub_model_is_one_line(capsys, monkeypatch):
    from huggingface_hub import try_to_load_from_cache

    from rerank_align.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if isinstance(try_to_load_from_cache("Qwen/Qwen3-0.6B", "config.json"), str):
        pytest.skip("Qwen/Qwen3-0.6B is cached here")
    assert main(["train", str(REPO / "recipes/qwen3-0.6b/contrastive/full.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(
        "error: model.name_or_path: model 'Qwen/Qwen3-0.6B' is not in the local Hugging Face cache"
    )
    assert "hf download Qwen/Qwen3-0.6B" in err


def test_missing_recipe_data_names_the_command_that_makes_it(capsys):
    from rerank_align.cli import main

    if (REPO / "data/msmarco-passage/train_groups.jsonl").exists():
        pytest.skip("the MS MARCO groups were converted here")
    assert main(["train", str(REPO / "recipes/minilm-l6-v2/contrastive/full.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: data.train_file: data/msmarco-passage/train_groups.jsonl not found (make it first: rerank-align data "
        "convert --from tevatron Tevatron/msmarco-passage data/msmarco-passage/train_groups.jsonl)"
    )
