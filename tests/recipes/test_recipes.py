"""Every recipe under recipes/ parses strictly; every recipe whose method is built trains 2 steps with the model
swapped for the tiny local one and the data for the synthetic task; the others answer "not built yet"."""

from __future__ import annotations

import pytest

from tests.recipes.conftest import RECIPES, REPO, rel, tiny_overrides


def test_there_are_recipes_for_every_model_of_the_issue():
    names = {rel(p) for p in RECIPES}
    for d in (
        "qwen3-0.6b",
        "qwen3-4b",
        "qwen3-8b",
        "mistral-7b-instruct-v0.3",
        "llama-3.1-8b",
        "gemma-2-2b",
        "qwen2.5-vl-3b",
        "qwen2.5-vl-7b",
        "minilm-l6-v2",
        "bert-base",
    ):
        assert any(n.startswith(f"recipes/{d}/") for n in names), d
    for size in ("qwen3-0.6b", "qwen3-4b", "qwen3-8b"):
        for m in (
            "sft_yesno",
            "contrastive",
            "unified",
            "distill_marginmse",
            "fullrank",
            "first",
            "dpo",
            "irpo",
            "adpa",
        ):
            assert any(n.startswith(f"recipes/{size}/{m}/") for n in names), (size, m)


@pytest.mark.parametrize("path", RECIPES, ids=rel)
def test_recipe_parses_and_names_its_launch_command(path):
    from rerank_align.config import load_recipe

    recipe = load_recipe(path)  # strict: unknown keys, bad values and contradictions raise
    assert recipe.model.name_or_path
    head = path.read_text().split("\n")
    comments = "\n".join(line for line in head if line.startswith("#"))
    if "recipes/quickstart" not in rel(path):
        assert f"rerank_align.train {rel(path)}" in comments or f"rerank-align train {rel(path)}" in comments
        assert "arXiv" in comments or "github" in comments.lower() or "base:" in path.read_text()


def test_vlm_recipes_parse_as_vlm():
    from rerank_align.config import load_recipe

    vlm = [p for p in RECIPES if "-vl-" in p.parent.parent.name or "-vl-" in rel(p)]
    assert vlm
    for p in vlm:
        assert load_recipe(p).model.architecture == "vlm"


def test_qlora_recipes_store_4bit_weights_in_the_compute_dtype_and_parse_under_zero3(monkeypatch):
    """The ZeRO-3 rule of check(): a 4-bit recipe parses under a ZeRO-3 launch only with quant_storage == compute."""
    from rerank_align.config import load_recipe
    from rerank_align.errors import RecipeError

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    qlora = [p for p in RECIPES if load_recipe(p).quantization.load_in_4bit]
    assert qlora
    for p in qlora:
        load_recipe(p)
        with pytest.raises(RecipeError, match="quant_storage"):
            load_recipe(p, ["quantization.quant_storage=uint8"])


def test_every_method_has_a_trainer():
    import importlib

    from rerank_align.config.recipe import METHODS

    for name, family in METHODS.items():
        module = importlib.import_module(f"rerank_align.training.{family.trainer}")
        assert callable(module.build_trainer), name


# The 4B / 8B Qwen3 recipes repeat the 0.6B ones with LoRA / QLoRA: one representative of each runs by default,
# the rest with `make test-slow` (keeps the default suite well under its 10-minute budget on 2 CPU cores).
DEFAULT_REPRESENTATIVES = (
    "recipes/qwen3-4b/sft_yesno/",
    "recipes/qwen3-4b/first/",
    "recipes/qwen3-8b/contrastive/",
    "recipes/qwen3-8b/irpo/",  # QLoRA + generation by the 4-bit policy before training
)


def _run_param(p):
    r = rel(p)
    big = r.startswith(("recipes/qwen3-4b/", "recipes/qwen3-8b/"))
    slow = big and not r.startswith(DEFAULT_REPRESENTATIVES)
    return pytest.param(p, id=r, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("path", [_run_param(p) for p in RECIPES])
def test_recipe_trains_two_steps_on_the_tiny_model(
    path, tiny_causal, tiny_bert, recipe_task, tmp_path, request
):
    from rerank_align import train
    from rerank_align.config import load_recipe
    from rerank_align.config.contract import recipe_contract
    from rerank_align.config.load import model_architecture
    from rerank_align.scoring import Reranker
    from rerank_align.scoring.modeling import load_tokenizer

    recipe = load_recipe(path)
    out = tmp_path / "out"
    tiny_vlm = request.getfixturevalue("tiny_vlm") if model_architecture(recipe) == "vlm" else None
    tiny = load_recipe(path, tiny_overrides(recipe, tiny_causal, tiny_bert, recipe_task, out, tiny_vlm))
    # what the recipe is about survives the swap
    assert (tiny.method, tiny.peft.enabled, tiny.quantization.load_in_4bit) == (
        tiny.method,
        recipe.peft.enabled,
        recipe.quantization.load_in_4bit,
    )
    assert tiny.method.name == recipe.method.name and tiny.method.loss == recipe.method.loss
    summary = train.run(tiny)
    assert summary["steps"] == 2
    assert summary["train_loss"] == summary["train_loss"]  # not NaN
    assert (out / "reranker.json").is_file()
    # the saved contract is exactly the one function's, byte for byte: no trainer changed it
    tok = load_tokenizer(tiny.model.name_or_path)
    assert (out / "reranker.json").read_text(encoding="utf-8") == recipe_contract(tiny, tok).to_json()
    if tiny_vlm is not None:  # the VLM recipes train the tiny Qwen2-VL and save its vision contract
        assert Reranker.from_pretrained(out).contract.vision is not None
    if recipe.model.kind != "listwise":
        scores = Reranker.from_pretrained(out).score("about suta", ["suta fine", "kalomi"])
        assert len(scores) == 2


def test_recipes_are_run_from_the_repository_root():
    assert (REPO / "recipes" / "accelerate").is_dir()
