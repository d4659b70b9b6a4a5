"""Score trainer: exact accumulation, exact chunking, checkpoints carry reranker.json, QLoRA train→eval→train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rerank_align.config import parse_recipe
from rerank_align.scoring import Reranker
from rerank_align_testing.synthetic import make_task, write_beir


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    return write_beir(make_task(n_train=12, n_test=6, n_candidates=10), tmp_path_factory.mktemp("syn"))


def recipe(model_dir: Path, task_dir: Path, out: Path, *, kind: str, **over) -> dict:
    d = {
        "model": {
            "name_or_path": str(model_dir),
            "kind": kind,
            "max_query_length": 8,
            "max_document_length": 24,
            "max_length": 64,
        },
        "data": {
            "beir": str(task_dir),
            "split": "train",
            "run": str(task_dir / "first_stage.run"),
            "num_negatives": 5,
        },
        "method": {"loss": "infonce", "group_size": 4},
        "training": {"output_dir": str(out), "learning_rate": 1e-3, "disable_tqdm": True, "max_steps": 2},
    }
    for key, value in over.items():
        node = d
        *parts, last = key.split("__")
        for p in parts:
            node = node.setdefault(p, {})
        node[last] = value
    return d


def no_dropout(model) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def build(d: dict):
    """The trainer exactly as train.run builds it (without training)."""
    from rerank_align import train
    from rerank_align.config.contract import recipe_contract
    from rerank_align.config.load import training_args_class
    from rerank_align.scoring.modeling import load_tokenizer
    from rerank_align.training.model import build_model

    r = parse_recipe(d)
    tok = load_tokenizer(r.model.name_or_path)
    contract = recipe_contract(r, tok)
    records = train.load_training_records(r)
    torch.manual_seed(0)
    model = build_model(r, contract)
    no_dropout(model)
    args = training_args_class(r.family.args_class)(**{**train.default_training_args(r), **r.training})
    return train.build_trainer(r, model, tok, contract, records, args, None), contract


@pytest.mark.parametrize(
    "fixture,kind,loss", [("tiny_causal", "yesno", "infonce"), ("tiny_bert", "head", "lambdaloss")]
)
def test_accumulation_2x2_equals_1x4(request, task_dir, tmp_path, fixture, kind, loss):
    base = request.getfixturevalue(fixture)
    params = []
    for bs, acc in ((4, 1), (2, 2)):
        d = recipe(
            base,
            task_dir,
            tmp_path / f"o{bs}",
            kind=kind,
            method__loss=loss,
            training__max_steps=1,
            training__per_device_train_batch_size=bs,
            training__gradient_accumulation_steps=acc,
            training__optim="sgd",
            training__learning_rate=0.5,
            training__max_grad_norm=0.0,
        )
        trainer, _ = build(d)
        trainer.train()
        params.append({n: p.detach().clone() for n, p in trainer.model.named_parameters()})
    diff = max((params[0][n] - params[1][n]).abs().max().item() for n in params[0])
    moved = max((params[0][n] - p0).abs().max().item() for n, p0 in build(d)[0].model.named_parameters())
    assert moved > 1e-4  # the step really changed the weights
    assert diff <= 1e-6


@pytest.mark.parametrize("fixture,kind", [("tiny_causal", "yesno"), ("tiny_bert", "head")])
def test_chunked_group_equals_unchunked(request, task_dir, tmp_path, fixture, kind):
    base = request.getfixturevalue(fixture)
    results = []
    for chunk in (None, 3):
        d = recipe(
            base, task_dir, tmp_path / f"c{chunk}", kind=kind, method__chunk_size=chunk, method__group_size=6
        )
        trainer, _ = build(d)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
        trainer.model.zero_grad()
        trainer.current_gradient_accumulation_steps = (
            1  # set by train(); training_step is called directly here
        )
        loss = trainer.training_step(trainer.model, batch)
        grads = {
            n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None
        }
        results.append((loss.item(), grads))
    (l0, g0), (l1, g1) = results
    assert abs(l0 - l1) <= 1e-6
    assert g0.keys() == g1.keys() and len(g0) > 0
    assert max((g0[n] - g1[n]).abs().max().item() for n in g0) <= 1e-6


def test_checkpoints_carry_contract_and_serve_identical_scores(tiny_causal, task_dir, tmp_path):
    from rerank_align import train

    out = tmp_path / "run"
    d = recipe(
        tiny_causal, task_dir, out, kind="yesno", training__save_strategy="steps", training__save_steps=1
    )
    summary = train.run(parse_recipe(d))
    assert summary["steps"] == 2
    for ckpt in ("checkpoint-1", "checkpoint-2", "."):
        assert (out / ckpt / "reranker.json").is_file(), ckpt
    assert (out / "recipe.yaml").is_file()
    rr = Reranker.from_pretrained(out, batch_size=3)
    docs = ["zuga fine kalomi", {"title": "t", "text": "suta"}, "x"]
    trained = Reranker.from_pretrained(out / "checkpoint-2")
    assert (
        max(abs(a - b) for a, b in zip(rr.score("about suta", docs), trained.score("about suta", docs)))
        <= 1e-6
    )


def test_sft_yesno_and_binary_ce_write_the_same_contract(tiny_causal, task_dir, tmp_path):
    from rerank_align import train

    outs = {}
    for method, loss in (("sft_yesno", "infonce"), ("score", "binary_ce")):
        out = tmp_path / method
        d = recipe(tiny_causal, task_dir, out, kind="yesno", method__name=method, method__loss=loss)
        summary = train.run(parse_recipe(d))
        assert summary["train_loss"] > 0
        outs[method] = json.loads((out / "reranker.json").read_text())
        Reranker.from_pretrained(out).score("q", ["d"])
    assert outs["sft_yesno"] == outs["score"]


def test_sft_yesno_loss_is_full_vocabulary_cross_entropy_of_the_answer(tiny_causal, task_dir, tmp_path):
    d = recipe(tiny_causal, task_dir, tmp_path / "sft", kind="yesno", method__name="sft_yesno")
    trainer, contract = build(d)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.model.eval()
    with torch.no_grad():
        out = trainer.model(
            **{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}
        )
    logits = out.logits
    want = []
    for i in range(2):
        pos = (batch["labels"][i] != -100).nonzero().item()
        want.append(torch.nn.functional.cross_entropy(logits[i, pos - 1], batch["labels"][i, pos]))
    assert abs(out.loss.item() - torch.stack(want).mean().item()) < 1e-5


def test_qlora_train_eval_train(tiny_causal, task_dir, tmp_path):
    """4-bit nf4 + LoRA on CPU: evaluation between steps must not break the next training step."""
    from rerank_align import train

    d = recipe(
        tiny_causal,
        task_dir,
        tmp_path / "q",
        kind="yesno",
        peft__enabled=True,
        peft__r=4,
        quantization__load_in_4bit=True,
        quantization__compute_dtype="float32",
        eval__beir=str(task_dir),
        eval__run=str(task_dir / "first_stage.run"),
        eval__every_n_steps=1,
        eval__depth=10,
        eval__at_start=True,
        training__max_steps=3,
    )
    summary = train.run(parse_recipe(d))
    assert summary["steps"] == 3 and summary["train_loss"] == summary["train_loss"]
    assert 0.0 <= summary["eval"]["eval_nDCG@10"] <= 1.0
    assert (tmp_path / "q" / "adapter_config.json").is_file()
    Reranker.from_pretrained(tmp_path / "q").score("q", ["d"])


def test_in_batch_negatives_reach_the_loss(tiny_bert, task_dir, tmp_path):
    """With in-batch negatives each query also sees the other groups' documents, in the InfoNCE denominator."""
    from rerank_align.losses import infonce

    d = recipe(
        tiny_bert,
        task_dir,
        tmp_path / "ib",
        kind="head",
        method__in_batch_negatives=True,
        method__group_size=3,
    )
    trainer, contract = build(d)
    items = [trainer.train_dataset[i] for i in range(3)]
    batch = trainer.data_collator(items)
    assert batch["in_batch_mask"].shape == (3, 6) and int(batch["in_batch_mask"].sum()) == 18
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
        # by hand: score every query against every doc of the batch, then InfoNCE with the others' docs as extra
        from rerank_align.scoring import PairEncoder, score_forward

        enc = PairEncoder(trainer.processing_class, contract)
        groups = [trainer.data_collator.group(it["idx"], it["record"])[0] for it in items]
        full = torch.stack(
            [
                score_forward(
                    trainer.model,
                    contract,
                    enc.collate(enc.encode([it["record"]["query"]] * 9, sum(groups, []))),
                ).scores
                for it in items
            ]
        )
        own = torch.stack([full[b, 3 * b : 3 * b + 3] for b in range(3)])
        others = torch.stack([torch.cat([full[b, : 3 * b], full[b, 3 * b + 3 :]]) for b in range(3)])
        want = infonce(own, torch.ones(3, 3, dtype=torch.bool), batch["labels"], in_batch_scores=others)
    assert abs(loss.item() - want.item()) < 1e-5
    with pytest.raises(Exception, match="in-batch"):
        parse_recipe(
            recipe(
                tiny_bert,
                task_dir,
                tmp_path / "x",
                kind="head",
                method__in_batch_negatives=True,
                method__loss="bce",
            )
        )


def test_qlora_adapter_reloads_on_its_4bit_base(tiny_causal, task_dir, tmp_path):
    """Reranker.from_pretrained puts a QLoRA adapter back on a 4-bit base (from the saved recipe.yaml), so its
    scores are the trained model's, not the full-precision base's."""
    from rerank_align.train import recipe_yaml
    from rerank_align.training.ranking_eval import scoring_mode

    d = recipe(
        tiny_causal, task_dir, tmp_path / "q", kind="yesno", peft__enabled=True, peft__r=4,
        quantization__load_in_4bit=True, quantization__compute_dtype="float32", quantization__quant_storage="float32",
    )  # fmt: skip
    trainer, contract = build(d)
    trainer.recipe_text = recipe_yaml(parse_recipe(d))  # as train.run sets it: every save writes recipe.yaml
    trainer.train()
    out = tmp_path / "adapter"
    trainer.save_model(str(out))
    docs = ["zuga fine kalomi", "suta ripe", "x"]
    live = Reranker(trainer.model, trainer.processing_class, contract, live=True)
    with scoring_mode(trainer.model, keep_train_mode=True):
        in_memory = torch.tensor(live.score("about suta", docs))
    reloaded = Reranker.from_pretrained(out)
    assert any("4bit" in type(m).__name__ for m in reloaded.model.modules())
    with scoring_mode(reloaded.model, keep_train_mode=True):
        served = torch.tensor(reloaded.score("about suta", docs))
    assert (served - in_memory).abs().max().item() <= 1e-5


def test_lora_on_the_top_layers_only_skips_the_backward_below(tiny_causal, task_dir, tmp_path):
    """`peft.layers_to_transform`: adapters only in the chosen blocks (the plan counts the same parameters), and
    autograd records nothing below the lowest one, which is where the saving comes from."""
    from rerank_align.plan import model_numbers

    d = recipe(
        tiny_causal, task_dir, tmp_path / "o", kind="yesno", peft__enabled=True, peft__layers_to_transform=[1]
    )
    trainer, _ = build(d)
    model = trainer.model
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".layers.1." in n for n in trainable), sorted(trainable)
    assert model_numbers(parse_recipe(d)).lora_params == sum(trainable.values())
    seen = {}
    layers = model.get_base_model().model.layers
    for i in (0, 1):
        layers[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out[0].requires_grad))
    trainer.train()
    assert seen == {0: False, 1: True}
    full = recipe(tiny_causal, task_dir, tmp_path / "f", kind="yesno", peft__enabled=True)
    assert model_numbers(parse_recipe(full)).lora_params == 2 * sum(trainable.values())
    bad = recipe(
        tiny_causal, task_dir, tmp_path / "b", kind="yesno", peft__enabled=True, peft__layers_to_transform=[2]
    )
    with pytest.raises(Exception, match=r"peft.layers_to_transform: block 2 does not exist.*2 blocks, 0-1"):
        build(bad)
