"""Recipes train on the field's formats through data.train_file (+ data.format): 2 steps on the tiny model."""

from __future__ import annotations

import json

import pytest

from tests.recipes.conftest import REPO, tiny_overrides


def flag_rows(n: int) -> list[dict]:
    return [
        {
            "query": f"suta query {i}",
            "pos": [f"suta passage {i}"],
            "neg": [f"kalomi filler {i} {j}" for j in range(4)],
            "pos_scores": [2.0],
            "neg_scores": [-1.0, -1.5, 0.5, 0.0],
        }
        for i in range(n)
    ]


def rank_llm_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        passages = "\n".join(f"[{k + 1}] passage {k} about topic {i}" for k in range(4))
        prompt = f"Rank these.\n\n{passages}\n\nSearch Query: topic {i}.\nRank the 4 passages above."
        answer = " > ".join(f"[{k}]" for k in (3, 1, 4, 2))
        rows.append({"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]})
    return rows


def _run(recipe_path, tiny_causal, tiny_bert, recipe_task, tmp_path, train_file, extra=()):
    from rerank_align import train
    from rerank_align.config import load_recipe

    ov = tiny_overrides(load_recipe(recipe_path), tiny_causal, tiny_bert, recipe_task, tmp_path / "out")
    ov += ["data.beir=null", "data.run=null", f"data.train_file={train_file}", *extra]
    return train.run(load_recipe(recipe_path, ov))


def test_flagembedding_dataset_on_disk_trains_a_distillation_recipe(
    tiny_causal, tiny_bert, recipe_task, tmp_path
):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(flag_rows(6))}).save_to_disk(
        str(tmp_path / "flag")
    )
    recipe = REPO / "recipes" / "qwen3-0.6b" / "distill_marginmse" / "full.yaml"
    summary = _run(
        recipe, tiny_causal, tiny_bert, recipe_task, tmp_path, tmp_path / "flag", ["data.teacher_files=[]"]
    )
    assert summary["steps"] == 2 and summary["records"] == 6  # margin-MSE on the file's pos/neg scores


@pytest.mark.parametrize("recipe", ["first/full.yaml", "dpo/full.yaml"])
def test_rank_llm_lists_train_listwise_and_preference_recipes(
    recipe, tiny_causal, tiny_bert, recipe_task, tmp_path
):
    f = tmp_path / "rz.json"
    f.write_text(json.dumps(rank_llm_rows(4)))
    path = REPO / "recipes" / "qwen3-0.6b" / recipe
    extra = ["method.preference_source=qrels"] if recipe.startswith("dpo") else []
    summary = _run(path, tiny_causal, tiny_bert, recipe_task, tmp_path, f, extra)
    assert summary["steps"] == 2 and summary["records"] == 4


def test_format_and_method_must_agree_at_parse_time():
    from rerank_align.config import load_recipe
    from rerank_align.errors import RecipeError

    first = REPO / "recipes" / "qwen3-0.6b" / "first" / "full.yaml"
    with pytest.raises(
        RecipeError, match=r"data\.format: tevatron data holds group records, but method 'first'"
    ):
        load_recipe(first, ["data.format=tevatron"])
    dpo = REPO / "recipes" / "qwen3-0.6b" / "dpo" / "full.yaml"
    assert load_recipe(dpo, ["data.format=rank_llm"]).data.format == "rank_llm"  # pairs are built from lists
    with pytest.raises(RecipeError, match=r"data\.format: .*describes data\.train_file, which is not set"):
        load_recipe(first, ["data.train_file=null", "data.beir=x", "data.format=rank_llm"])
    with pytest.raises(RecipeError, match=r"data\.format"):
        load_recipe(first, ["data.format=flagembeding"])
