"""Listwise training: gradient accumulation 2×2 equals 1×4 (both methods, both normalisations), FIRST's loss is
LM + λ·RankNet, and the recipe path (train.run) trains, saves reranker.json and reloads."""

from __future__ import annotations

import pytest
import torch

from rerank_align.losses.ltr import ranknet
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.training.listwise_trainer import (
    ListwiseCollator,
    ListwiseSFTTrainer,
    listwise_examples,
    listwise_loss,
)
from rerank_align_testing.listwise_learnability import SHORT_PROMPT

from .conftest import listwise_reranker

WORDS = ["tarizu", "pelo", "kami", "suta", "lolo", "mine", "vozu", "rika"]


def _records():
    recs = []
    for k, n in enumerate([3, 5, 4, 6]):  # lists (and so answers) of different lengths
        docs = [" ".join(WORDS[(k + j) % 8 : (k + j) % 8 + 1 + j % 3]) for j in range(n)]
        recs.append({"query": f"about {WORDS[k]}", "docs": docs, "ranking": list(range(n))[::-1]})
    return recs


def _train_once(path, method, norm, bs, ga, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig

    rr = listwise_reranker(path, prompt_template=SHORT_PROMPT)
    model = rr.model.train()
    exs = listwise_examples(_records(), ListPromptBuilder(rr.tokenizer, rr.contract), method)
    args = SFTConfig(
        output_dir=str(tmp_path / f"o{bs}{ga}"),
        per_device_train_batch_size=bs,
        gradient_accumulation_steps=ga,
        max_steps=1,
        learning_rate=1.0,
        optim="sgd",
        lr_scheduler_type="constant",
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
        seed=0,
        max_grad_norm=0.0,
        disable_tqdm=True,
    )
    tr = ListwiseSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(exs),
        processing_class=rr.tokenizer,
        data_collator=ListwiseCollator(rr.tokenizer.pad_token_id),
        listwise_method=method,
        token_weight_norm=norm,
    )
    assert tr.model_accepts_loss_kwargs is False
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    out = tr.train()
    delta = {k: (v.detach() - before[k]) for k, v in model.named_parameters()}
    return out.training_loss, delta


@pytest.mark.parametrize("method, norm", [("fullrank", "weights"), ("first", "tokens")])
def test_accumulation_2x2_equals_1x4(tiny_causal, tmp_path, method, norm):
    loss4, d4 = _train_once(tiny_causal, method, norm, 4, 1, tmp_path)
    loss22, d22 = _train_once(tiny_causal, method, norm, 2, 2, tmp_path)
    assert loss4 == pytest.approx(loss22, rel=1e-5)
    for k in d4:
        assert torch.allclose(d4[k], d22[k], atol=1e-6, rtol=1e-4), k


def test_first_loss_is_lm_plus_lambda_weighted_ranknet(tiny_causal):
    rr = listwise_reranker(tiny_causal)
    exs = listwise_examples(_records(), ListPromptBuilder(rr.tokenizer, rr.contract), "first")
    batch = ListwiseCollator(rr.tokenizer.pad_token_id)(exs)
    with torch.no_grad():
        l0, p0 = listwise_loss(rr.model, batch, method="first", first_lambda=0.0)
        l10, p10 = listwise_loss(rr.model, batch, method="first", first_lambda=10.0)
        fexs = listwise_examples(_records(), ListPromptBuilder(rr.tokenizer, rr.contract), "fullrank")
        fr, _ = listwise_loss(rr.model, ListwiseCollator(rr.tokenizer.pad_token_id)(fexs), method="fullrank")
    rank = ranknet(p10["first_scores"], batch["rank_mask"], batch["rank_labels"], weighting="first")
    assert float(l10) == pytest.approx(float(l0) + 10 * float(rank), rel=1e-5)
    assert float(l0) == pytest.approx(float(p0["lm"]))
    assert float(fr) > float(l0)  # importance weights ≥ 1 on identifier tokens, normalised by token count


def _first_recipe(
    tiny_causal, synth_task, out, *, model: dict, method: dict, max_train_samples: int, max_steps: int
) -> dict:
    """A FIRST recipe on the tiny model and the synthetic task's first-stage lists."""
    return {
        "model": {"name_or_path": str(tiny_causal), "kind": "listwise", "max_length": 1024, **model},
        "data": {
            "beir": str(synth_task),
            "split": "train",
            "run": str(synth_task / "first_stage.run"),
            "depth": 10,
            "max_train_samples": max_train_samples,
        },
        "method": {"name": "first", **method},
        "training": {
            "output_dir": str(out),
            "max_steps": max_steps,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "disable_tqdm": True,
        },
    }


def test_recipe_path_trains_saves_and_reloads(tiny_causal, synth_task, tmp_path):
    from rerank_align.config.load import parse_recipe
    from rerank_align.scoring import Reranker
    from rerank_align.train import run

    out = tmp_path / "first"
    recipe = parse_recipe(
        _first_recipe(
            tiny_causal,
            synth_task,
            out,
            model={"max_document_length": 48, "list_prompt_template": SHORT_PROMPT},
            method={"listwise_window": 8, "listwise_stride": 4},
            max_train_samples=4,
            max_steps=2,
        )
    )
    summary = run(recipe)
    assert summary["steps"] == 2 and summary["records"] == 4
    rr = Reranker.from_pretrained(out, device="cpu")
    lf = rr.contract.list_format
    assert (lf.decoding, lf.strategy, lf.window, lf.stride) == ("first", "sliding", 8, 4)
    assert lf.prompt_template == SHORT_PROMPT  # the recipe's prompt is the saved contract's
    res = rr.rank_lists(["about kami"], [[f"doc {i}" for i in range(10)]])[0]
    assert sorted(res.order) == list(range(10)) and res.outputs == 2 and res.repaired == 0


@pytest.mark.parametrize(
    ("kind", "template", "message"),
    [
        ("yesno", SHORT_PROMPT, "kind listwise only"),
        ("listwise", "Rank the {n} passages:\n{passages}", "lacks {query}"),
        ("listwise", "Query: {query}\nRank them", "lacks {passages}"),
    ],
)
def test_list_prompt_template_is_checked_at_load(tiny_causal, kind, template, message):
    from rerank_align.config.load import parse_recipe
    from rerank_align.errors import RecipeError

    with pytest.raises(RecipeError, match=message) as e:
        parse_recipe(
            {
                "model": {"name_or_path": str(tiny_causal), "kind": kind, "list_prompt_template": template},
                "data": {"train_file": "x.jsonl"},
                "method": {"name": "first" if kind == "listwise" else "score"},
                "training": {"output_dir": "/tmp/unused"},
            }
        )
    assert "model.list_prompt_template" in str(e.value)


def test_recipe_letters_the_candidates_and_says_so_in_the_prompt(tiny_causal, synth_task, tmp_path):
    """model.list_identifier '[{a}]' reaches the saved contract; with no prompt given, the default prompt names
    alphabetical identifiers and a lettered example (never the numerical one), and FIRST ranks 10 candidates."""
    from rerank_align.config.load import parse_recipe
    from rerank_align.scoring import Reranker
    from rerank_align.train import run

    out = tmp_path / "first_letters"
    recipe = parse_recipe(
        _first_recipe(
            tiny_causal,
            synth_task,
            out,
            model={"max_document_length": 24, "list_identifier": "[{a}]"},
            method={"listwise_strategy": "full", "listwise_window": 10, "listwise_stride": 10},
            max_train_samples=2,
            max_steps=1,
        )
    )
    run(recipe)
    lf = Reranker.from_pretrained(out, device="cpu").contract.list_format
    assert lf.identifier == "[{a}]"
    assert "alphabetical identifier" in lf.prompt_template and "[B] > [A]" in lf.prompt_template
    assert "numerical" not in lf.prompt_template and "[2] > [1]" not in lf.prompt_template
    rr = Reranker.from_pretrained(out, device="cpu")
    res = rr.rank_lists(["about kami"], [[f"doc {i}" for i in range(10)]])[0]
    assert sorted(res.order) == list(range(10)) and res.outputs == 1 and res.repaired == 0


@pytest.mark.parametrize(
    ("model", "method", "message"),
    [
        ({"kind": "yesno", "list_identifier": "[{a}]"}, {"name": "score"}, "kind listwise only"),
        ({"kind": "listwise", "list_identifier": "[{n}]"}, {"name": "first"}, "exactly one of"),
        (
            {"kind": "listwise", "list_identifier": "[{a}]"},
            {"name": "first", "listwise_window": 30},
            "at most 26",
        ),
    ],
)
def test_list_identifier_is_checked_at_load(tiny_causal, model, method, message):
    from rerank_align.config.load import parse_recipe
    from rerank_align.errors import RecipeError

    with pytest.raises(RecipeError, match=message) as e:
        parse_recipe(
            {
                "model": {"name_or_path": str(tiny_causal), **model},
                "data": {"train_file": "x.jsonl"},
                "method": method,
                "training": {"output_dir": "/tmp/unused"},
            }
        )
    assert "model.list_identifier" in str(e.value)


@pytest.mark.parametrize(
    ("model", "method", "message"),
    [
        ({"kind": "yesno"}, {"name": "score"}, "listwise training only"),
        ({"kind": "listwise"}, {"name": "dpo", "preference_source": "qrels"}, "would be random"),
    ],
)
def test_shuffle_candidates_is_checked_at_load(tiny_causal, model, method, message):
    from rerank_align.config.load import parse_recipe
    from rerank_align.errors import RecipeError

    with pytest.raises(RecipeError, match=message) as e:
        parse_recipe(
            {
                "model": {"name_or_path": str(tiny_causal), **model},
                "data": {"beir": "x", "shuffle_candidates": True},
                "method": method,
                "training": {"output_dir": "/tmp/unused"},
            }
        )
    assert "data.shuffle_candidates" in str(e.value)


@pytest.mark.parametrize(
    ("model", "data", "message", "key"),
    [
        ({"kind": "yesno"}, {"beir": "x", "list_size": 10}, "not to kind yesno", "data.list_size"),
        (
            {"kind": "listwise"},
            {"train_file": "x.jsonl", "list_size": 10},
            "not to a train_file",
            "data.list_size",
        ),
        (
            {"kind": "listwise"},
            {"beir": "x", "depth": 10, "list_size": 10, "lists_per_query": 3},
            "below depth",
            "data.lists_per_query",
        ),
        (
            {"kind": "listwise"},
            {"beir": "x", "depth": 30, "lists_per_query": 3},
            "below depth",
            "data.lists_per_query",
        ),
    ],
)
def test_drawn_lists_are_checked_at_load(tiny_causal, model, data, message, key):
    from rerank_align.config.load import parse_recipe
    from rerank_align.errors import RecipeError

    with pytest.raises(RecipeError, match=message) as e:
        parse_recipe(
            {
                "model": {"name_or_path": str(tiny_causal), **model},
                "data": data,
                "method": {"name": "fullrank" if model["kind"] == "listwise" else "score"},
                "training": {"output_dir": "/tmp/unused"},
            }
        )
    assert key in str(e.value)
