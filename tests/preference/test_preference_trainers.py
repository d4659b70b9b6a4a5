"""Preference trainers: one IRPO step with one relevant and one other item is one DPO step; ADPA / DCKD
refuse a teacher of another vocabulary; the teachers' precomputed top-k equals the on-the-fly one; every method
trains through the recipe path with LoRA and with QLoRA."""

from __future__ import annotations

import pytest
import torch

from rerank_align.training.dpo_trainer import ListwiseDPOTrainer
from rerank_align.training.list_preference_trainer import ListPreferenceTrainer


def _args(tmp_path, name, **kw):
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(tmp_path / name),
        per_device_train_batch_size=1,
        max_steps=1,
        learning_rate=kw.pop("learning_rate", 0.5),
        optim="sgd",
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        remove_unused_columns=False,
        disable_tqdm=True,
        seed=0,
        beta=0.5,
        **kw,
    )


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _irpo_step(path, tok, tmp_path, prompt, a, b, relevance, **loss_args):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    ex = {"prompt": prompt, "completions": [a, b], "items": [[0] * len(a), [1] * len(b)], "target": relevance}
    tr = ListPreferenceTrainer(
        model=model,
        args=_args(tmp_path, f"irpo{relevance}{loss_args}"),
        processing_class=tok,
        train_dataset=Dataset.from_list([{"idx": 0}]),
        objective="irpo",
        examples=[ex],
        pad_id=tok.pad_token_id,
        loss_args=loss_args,
    )
    tr.train()
    return _params(model)


def test_one_irpo_step_with_one_relevant_and_one_other_item_is_one_dpo_step(tiny_causal, tmp_path):
    """IRPO's per-item r = mean-token log-ratio; with one relevant item (rel 1, weight 1) and one other item its loss
    averaged over the relevant items is softplus(β(r_l − r_w)) = DPO's sigmoid loss on the two answers' mean-token
    log-ratios (TRL's ``sigmoid_norm``; plain ``sigmoid`` when both answers are one token). Same start, same data,
    one SGD step: the parameters after it must agree. The default (released) averaging over all K = 2 items halves
    the loss: its SGD step is DPO's at half the learning rate."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_causal)
    prompt = tok.encode("Rank passages for about suta: [1] suta fine [2] kalomi.\n", add_special_tokens=False)
    a = tok.encode("[1] > [2]", add_special_tokens=False)  # several tokens: the mean matters
    b = tok.encode("[2]", add_special_tokens=False)
    assert len(a) != len(b)
    start = _params(AutoModelForCausalLM.from_pretrained(tiny_causal))

    irpo = _irpo_step(tiny_causal, tok, tmp_path, prompt, a, b, [1.0, 0.0], item_mean="relevant")

    def dpo_step(lr):
        model = AutoModelForCausalLM.from_pretrained(tiny_causal)
        dpo = ListwiseDPOTrainer(
            model=model,
            args=_args(tmp_path, f"dpo{lr}", loss_type=["sigmoid_norm"], learning_rate=lr),
            processing_class=tok,
            train_dataset=Dataset.from_list([{"prompt_ids": prompt, "chosen_ids": a, "rejected_ids": b}]),
        )
        dpo.train()
        return _params(model)

    after = dpo_step(0.5)
    moved = max(float((after[k] - start[k]).abs().max()) for k in start)
    assert moved > 1e-4  # the step did something
    for k in start:
        torch.testing.assert_close(irpo[k], after[k], atol=1e-6, rtol=1e-5)
    half = dpo_step(0.25)
    irpo_all = _irpo_step(tiny_causal, tok, tmp_path, prompt, a, b, [1.0, 0.0])
    for k in start:
        torch.testing.assert_close(irpo_all[k], half[k], atol=1e-6, rtol=1e-5)
    # and it can fail: the other item relevant instead gives another step
    swapped = _irpo_step(tiny_causal, tok, tmp_path, prompt, a, b, [0.0, 1.0], item_mean="relevant")
    assert max(float((swapped[k] - after[k]).abs().max()) for k in start) > 1e-4


def _other_vocab_teacher(tiny_causal, path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_causal)
    tok.add_tokens(["<extra_teacher_token>"])
    model = AutoModelForCausalLM.from_pretrained(tiny_causal)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _recipe(method, tiny_causal, task, out, *extra, teacher=None):
    from rerank_align.config.load import apply_overrides, parse_recipe

    data = {
        "model": {"name_or_path": str(tiny_causal), "kind": "listwise", "max_length": 1024},
        "data": {
            "beir": str(task["beir"]),
            "split": "train",
            "run": str(task["run"]),
            "depth": 6,
            "max_train_samples": 4,
        },
        "method": {"name": method, "listwise_strategy": "full"},
        "training": {
            "output_dir": str(out),
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "logging_steps": 1,
            "disable_tqdm": True,
        },
    }
    if method in ("adpa", "dckd"):
        data["method"].update(teacher_model=str(teacher or tiny_causal), teacher_ref_model=str(tiny_causal))
    return parse_recipe(apply_overrides(data, list(extra)))


def test_a_teacher_of_another_vocabulary_is_refused_in_one_clear_line(tiny_causal, recipe_task, tmp_path):
    from rerank_align import train
    from rerank_align.errors import RerankAlignError

    teacher = _other_vocab_teacher(tiny_causal, tmp_path / "teacher")
    for method in ("adpa", "dckd"):
        r = _recipe(method, tiny_causal, recipe_task, tmp_path / method, teacher=teacher)
        with pytest.raises(RerankAlignError, match="does not share the student's vocabulary") as e:
            train.run(r)
        assert e.value.where == "method.teacher_model"
        assert "\n" not in str(e.value)


def test_adpa_and_dckd_need_their_teachers_at_parse_time():
    from rerank_align.config.load import parse_recipe
    from rerank_align.errors import RecipeError

    base = {
        "model": {"name_or_path": "x", "kind": "listwise", "architecture": "causal"},
        "data": {"train_file": "p.jsonl"},
    }
    with pytest.raises(RecipeError, match="teacher"):
        parse_recipe({**base, "method": {"name": "dckd"}})
    with pytest.raises(RecipeError, match="reference"):
        parse_recipe({**base, "method": {"name": "adpa", "teacher_model": "t"}})
    with pytest.raises(RecipeError, match="iterative IRPO"):
        parse_recipe(
            {
                **base,
                "method": {"name": "irpo", "irpo_rounds": 2},
                "training": {"precompute_ref_log_probs": True},
            }
        )


@pytest.mark.parametrize("method", ["adpa", "dckd"])
def test_precomputed_teacher_topk_gives_the_on_the_fly_loss(method, tiny_causal, recipe_task, tmp_path):
    """Same batch, same student: the loss from the stored top-k tensors equals the one from live teachers."""
    from rerank_align import train

    losses = {}
    for pre in (True, False):
        r = _recipe(method, tiny_causal, recipe_task, tmp_path / f"{method}{pre}")
        r.method.teacher_precompute = pre
        trainer = _build(train, r)
        batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
        with torch.no_grad():
            losses[pre] = float(trainer.compute_loss(trainer.model, batch))
    assert losses[True] == pytest.approx(losses[False], rel=1e-5, abs=1e-6)


def test_the_adpa_trainer_calls_the_tested_loss(tiny_causal, recipe_task, tmp_path, monkeypatch):
    """No inline formula: the trainer's ADPA loss is :func:`rerank_align.losses.adpa_loss` with the recipe's
    loss_args, on the answers as the data give them (NLL on chosen, advantage on rejected by default)."""
    from rerank_align import train
    from rerank_align.losses import adpa_loss
    from rerank_align.training import distill_preference_trainer as pt

    calls = []

    def spy(*a, **kw):
        out = adpa_loss(*a, **kw)
        calls.append((a, kw, out))
        return out

    monkeypatch.setattr(pt, "adpa_loss", spy)
    for extra, on in (([], "rejected"), (["method.loss_args={advantage_on: both, lambda_sft: 0.5}"], "both")):
        r = _recipe("adpa", tiny_causal, recipe_task, tmp_path / f"adpa-{on}", *extra)
        trainer = _build(train, r)
        batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model, batch)
        a, kw, out = calls[-1]
        assert float(loss) == float(out)
        assert kw.get("advantage_on", "rejected") == on
        # the first three tensors are the chosen half of the batch, the next two the rejected half
        b = batch["input_ids"].shape[0] // 2
        assert a[0].shape[0] == b and a[3].shape[0] == b
        assert torch.equal(a[1], batch["input_ids"][:b, -a[1].shape[1] :])
    assert len(calls) == 2


def test_preference_loss_args_are_the_losses_keyword_arguments():
    from rerank_align.config.load import parse_recipe
    from rerank_align.errors import RecipeError

    base = {
        "model": {"name_or_path": "m", "kind": "listwise", "architecture": "causal"},
        "data": {"train_file": "x.jsonl"},
    }
    teachers = {"teacher_model": "t", "teacher_ref_model": "r"}
    ok = [
        ("irpo", {"item_mean": "relevant"}),
        ("adpa", {"advantage_on": "both", "released_clamp": True, "lambda_sft": 0.5}),
        ("dckd", {"tail": "renormalize", "rejected_weight": 0.5}),
    ]
    for name, args in ok:
        r = parse_recipe({**base, "method": {"name": name, **teachers, "loss_args": args}})
        assert r.method.loss_args == args
    for name, bad in (("irpo", "beta"), ("adpa", "renormalize"), ("dckd", "parts")):
        with pytest.raises(RecipeError, match="method.loss_args"):
            parse_recipe({**base, "method": {"name": name, **teachers, "loss_args": {bad: 1}}})


def test_student_preference_source_keeps_the_students_sample_as_rejected():
    from rerank_align.listwise.preference import preferences_from_student_samples

    rec = {"query": "q", "docs": ["a", "b", "c"], "ranking": [2, 0, 1]}
    prefs = preferences_from_student_samples([rec, rec], [[[2, 0, 1], [0, 1, 2]], [[1, 0, 2]]])
    assert [p["rejected"] for p in prefs] == [[2, 0, 1], [1, 0, 2]]  # even when equal to chosen
    assert all(p["chosen"] == [2, 0, 1] for p in prefs)


def _build(train, recipe, records=None):
    from rerank_align.config.contract import recipe_contract
    from rerank_align.config.load import training_args_class
    from rerank_align.data.training_records import training_records
    from rerank_align.scoring.modeling import load_tokenizer
    from rerank_align.training.model import build_model

    tok = load_tokenizer(recipe.model.name_or_path)
    contract = recipe_contract(recipe, tok)
    records = training_records(recipe.data, "list", seed=recipe.seed) if records is None else records
    model = build_model(recipe, contract)
    args = training_args_class("DPOConfig")(**{**train.default_training_args(recipe), **recipe.training})
    return train.build_trainer(recipe, model, tok, contract, records, args, None)


QLORA = [
    "peft.enabled=true",
    "quantization.load_in_4bit=true",
    "quantization.compute_dtype=float32",
    "quantization.quant_storage=float32",
]


CASES = [
    ("dpo", ["method.preference_source=samples", "training.loss_type=[ipo]"]),
    ("dpo", ["method.preference_source=pointwise", "training.loss_type=[sigmoid,hinge]"]),
    ("dpo", ["training.precompute_ref_log_probs=true", "training.loss_type=[robust]"]),
    ("irpo", ["method.irpo_rounds=2", "training.max_steps=4"]),
    ("pl_dpo", ["training.precompute_ref_log_probs=true"]),
    ("adpa", ["method.teacher_precompute=false"]),
    ("dckd", ["method.teacher_topk=0"]),
]


def _case(peft, k, method, extra):
    # QLoRA by default where the 4-bit policy also generates (sampling, iterative IRPO); the rest with -m slow,
    # which keeps the default suite within its time budget
    generates = method == "irpo" or "method.preference_source=samples" in extra
    slow = peft == "qlora" and not generates
    return pytest.param(
        method, extra, peft, id=f"{peft}-{method}-{k}", marks=[pytest.mark.slow] if slow else []
    )


@pytest.mark.parametrize(
    "method,extra,peft", [_case(p, k, m, e) for p in ("lora", "qlora") for k, (m, e) in enumerate(CASES)]
)
def test_every_method_trains_with_lora_and_qlora(method, extra, peft, tiny_causal, recipe_task, tmp_path):
    from rerank_align import train

    ov = ["peft.enabled=true"] if peft == "lora" else QLORA
    out = tmp_path / "out"
    recipe = _recipe(method, tiny_causal, recipe_task, out, *ov, *extra)
    summary = train.run(recipe)
    assert summary["steps"] == recipe.training["max_steps"]
    assert summary["train_loss"] == summary["train_loss"]
    assert (out / "reranker.json").is_file() and (out / "adapter_config.json").is_file()


def test_iterative_irpo_regenerates_the_lists_between_rounds(tiny_causal, recipe_task, tmp_path):
    from rerank_align import train

    r = _recipe(
        "irpo", tiny_causal, recipe_task, tmp_path / "it", "method.irpo_rounds=3", "training.max_steps=6"
    )
    trainer = _build(train, r)
    cb = next(c for c in trainer.callback_handler.callbacks if hasattr(c, "regenerated"))
    calls = []
    real = trainer.regenerate
    trainer.regenerate = lambda records, builder: (
        calls.append(trainer.state.global_step) or real(records, builder)
    )
    trainer.train()
    assert calls == [2, 4] and cb.regenerated == 2  # after rounds 1 and 2, not after the last


def test_long_list_prompts_are_not_cut_by_trls_default_max_length(tiny_causal, recipe_task, tmp_path):
    """DPOConfig.max_length defaults to 1024; a list prompt longer than that must keep its whole answer."""
    import json

    from rerank_align import train

    words = "suta kalomi rika vozu pelo tarizu mine lolo".split()
    docs = [{"text": " ".join(words[(i + j) % 8] for j in range(300))} for i in range(3)]
    path = tmp_path / "prefs.jsonl"
    path.write_text(
        json.dumps({"query": "about suta", "docs": docs, "chosen": [1, 0, 2], "rejected": [2, 1, 0]})
    )
    r = _recipe(
        "dpo",
        tiny_causal,
        recipe_task,
        tmp_path / "long",
        "model.max_length=4096",
        "model.max_document_length=600",
        "data.beir=null",
        "data.run=null",
        f"data.train_file={path}",
    )
    trainer = _build(train, r, records=train.load_training_records(r))
    row = trainer.train_dataset[0]
    assert len(row["prompt_ids"]) > 1024
    batch = trainer.data_collator([row])
    assert int(batch["completion_mask"][0].sum()) == len(row["chosen_ids"])
