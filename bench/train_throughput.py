"""SFT yes/no training throughput on SmolLM2-135M-Instruct: TRL's padded ``SFTTrainer`` batch vs the padding-free
and BFD-packed collation that ``training.padding_free`` / ``training.packing`` switch on, on the same examples.

Each trainer is the one ``rerank-align train recipes/smollm2-135m/sft_yesno/lora.yaml`` builds
(``training.sft_yesno_trainer.build_trainer``: TRL ``SFTTrainer`` on pre-tokenised prompt + answer examples, labels only on the
answer token, LoRA r 16 on all linear layers, float32), with only the collation changed. Throughput is real
(non-pad) tokens per CPU second of this process, per optimiser step (collation, forward, backward, AdamW), the
median over the steps after the warm-up. Packing puts several examples in one row, so a packed step holds a
different number of examples; tokens/s is comparable across the three, steps/s is not.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from typing import Any

import common

RECIPE = "recipes/smollm2-135m/sft_yesno/lora.yaml"


def add_parser(sp: Any) -> None:
    p = sp.add_parser(
        "sft-throughput", help="SFT yes/no tokens/s: padded vs padding-free vs packed (SmolLM2)"
    )
    p.add_argument("--batch", type=int, default=4, help="examples per step (padded / padding-free)")
    p.add_argument(
        "--group", type=int, default=4, help="examples per training record (1 positive + negatives)"
    )
    p.add_argument("--modes", nargs="+", default=["padded", "padding_free", "packing"])
    p.add_argument("--tag", default="")


class TokenCount:
    """Wraps a collator and records the real tokens of every batch it builds (in call order)."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate
        self.tokens: list[int] = []
        self.rows: list[int] = []
        self.shapes: list[list[int]] = []

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.collate(examples)
        mask = batch.get("attention_mask")
        self.tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        self.rows.append(int((batch["labels"] != -100).sum()))  # answer tokens = examples in the batch
        self.shapes.append(list(batch["input_ids"].shape))
        return batch


class StepClock:
    """Trainer callback: CPU seconds between consecutive step ends (collation, forward, backward, optimiser)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        self.deltas: list[float] = []
        self._last: float | None = None
        clock = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                import time

                now = time.process_time()
                if clock._last is not None:
                    clock.deltas.append(now - clock._last)
                clock._last = now

        self.callback = _Callback()


def sft_records(n: int, group: int) -> list[dict]:
    """SciFact test claims × their BM25 top-``group``: the top document as the 'yes' example, the rest as 'no'.
    The labels only have to be fixed for a timing; they are not relevance judgements."""
    pairs = common.scifact_pairs(n, group)
    return [
        {
            "query": pairs[i][0],
            "positives": [pairs[i][1]],
            "negatives": [d for _, d in pairs[i + 1 : i + group]],
        }
        for i in range(0, len(pairs), group)
    ]


def time_sft(mode: str, a: argparse.Namespace, steps: int) -> dict:
    import torch
    from trl import SFTConfig

    from rerank_align.config import load_recipe
    from rerank_align.config.contract import recipe_contract
    from rerank_align.scoring.modeling import load_tokenizer
    from rerank_align.train import default_training_args, training_precision
    from rerank_align.training.model import build_model
    from rerank_align.training.sft_yesno_trainer import build_trainer as build_sft_yesno_trainer

    recipe = load_recipe(common.ROOT / RECIPE, [f"method.group_size={a.group}"])
    tok = load_tokenizer(recipe.model.name_or_path)
    contract = recipe_contract(recipe, tok)
    n_examples = steps * a.batch
    records = sft_records(-(-n_examples // a.group), a.group)
    torch.manual_seed(0)
    model = build_model(recipe, contract)
    # the precision the real path resolves (TRL's configs default to bf16=True: emulated, ~9x slower on AVX2)
    mixed, precision = training_precision(recipe.training, "cpu")
    training = {**default_training_args(recipe), **recipe.training, **mixed}
    training.pop("activation_checkpointing", None)
    training.update(
        output_dir=tempfile.mkdtemp(prefix="bench-sft-"),
        per_device_train_batch_size=a.batch,
        max_steps=steps,
        logging_steps=10_000,
        gradient_checkpointing=False,
        disable_tqdm=True,
        warmup_steps=0,
    )
    if mode == "padding_free":
        training["padding_free"] = True
    elif mode == "packing":
        # bins of ``batch`` longest examples, one bin per step: about as many tokens per step as the others
        training.update(packing=True, per_device_train_batch_size=1)
    args = SFTConfig(**training)
    clock = StepClock()
    trainer = _build(build_sft_yesno_trainer, recipe, model, tok, contract, records, args, mode, a.batch)
    counter = TokenCount(trainer.data_collator)
    trainer.data_collator = counter
    trainer.add_callback(clock.callback)
    trainer.train()
    d = clock.deltas[a.warmup :]
    # clock.deltas[i] is step i+1 (the first step only starts the clock); step i used the i-th batch
    toks = counter.tokens[1 : 1 + len(clock.deltas)][a.warmup :]
    rows = counter.rows[1 : 1 + len(clock.deltas)][a.warmup :]
    shapes = counter.shapes[1 : 1 + len(clock.deltas)][a.warmup :]
    per_step = [t / s for t, s in zip(toks, d)]
    return {
        "step_s": d,
        "tokens_per_step": toks,
        "examples_per_step": rows,
        "tokens_per_s_each_step": per_step,
        "median_tokens_per_s": statistics.median(per_step),
        "median_step_s": statistics.median(d),
        "batch_shapes": shapes,
        "max_length": trainer.args.max_length,
        "precision": precision,
    }


def _build(build, recipe, model, tok, contract, records, args, mode: str, batch: int):
    if mode != "packing":
        return build(recipe, model, tok, contract, records, args, None)
    # the bin size: ``batch`` times the longest example (the builder keeps it, never below the longest)
    from rerank_align.scoring.modeling import pair_encoder
    from rerank_align.training.sft_yesno_trainer import sft_examples

    ex = sft_examples(records, pair_encoder(tok, contract), recipe.method.group_size, recipe.seed)
    args.max_length = batch * max(len(e["input_ids"]) for e in ex)
    return build(recipe, model, tok, contract, records, args, None)


def bench_sft_throughput(a: argparse.Namespace) -> dict:
    steps = a.warmup + a.reps + 1
    res = {mode: time_sft(mode, a, steps) for mode in a.modes}
    base = res["padded"]["median_tokens_per_s"] if "padded" in res else None
    rows = [
        [m, v["median_step_s"], statistics.mean(v["tokens_per_step"]), v["median_tokens_per_s"],
         v["median_tokens_per_s"] / base if base else float("nan")]
        for m, v in res.items()
    ]  # fmt: skip
    print(
        common.table(
            rows, ["collation", "median CPU s / step", "real tokens / step", "tokens/s", "vs padded"]
        )
    )
    return {
        "figure": "sft-throughput",
        "recipe": RECIPE,
        "batch": a.batch,
        "group": a.group,
        "results": res,
        "tokens_per_s_ratio_vs_padded": {m: v["median_tokens_per_s"] / base for m, v in res.items()}
        if base
        else None,
    }


KL_RECIPE = "recipes/smollm2-135m/kl/lora.yaml"


def add_lora_layers_parser(sp: Any) -> None:
    p = sp.add_parser(
        "lora-layers", help="SmolLM2 KL score-training step: LoRA on every block vs on the top blocks only"
    )
    p.add_argument(
        "--top", type=int, nargs="+", default=[15], help="adapt only the top N blocks (one run each)"
    )
    p.add_argument("--precision", default="auto", help="training.bf16 (auto | true | false)")
    p.add_argument("--tag", default="")


def time_score_steps(top: int | None, a: argparse.Namespace, steps: int) -> dict:
    """Median CPU s per optimiser step of the trainer ``rerank-align train KL_RECIPE`` builds (2 groups of 4
    SciFact train pairs, teacher labels from ``make quickstart``), LoRA on all blocks or on the top ``top``."""
    import torch

    from rerank_align import train
    from rerank_align.config import load_recipe
    from rerank_align.config.contract import recipe_contract
    from rerank_align.config.load import training_args_class
    from rerank_align.scoring.modeling import load_tokenizer
    from rerank_align.training.model import build_model

    over = [f"data.max_train_samples={2 * steps}", f"training.bf16={a.precision}"]
    recipe = load_recipe(common.ROOT / KL_RECIPE, over)
    if top is not None:
        from transformers import AutoConfig

        from rerank_align.scoring.modeling import resolve_model_path

        n = AutoConfig.from_pretrained(resolve_model_path(recipe.model.name_or_path)).num_hidden_layers
        over.append(f"peft.layers_to_transform=[{', '.join(str(i) for i in range(n - top, n))}]")
        recipe = load_recipe(common.ROOT / KL_RECIPE, over)
    tok = load_tokenizer(recipe.model.name_or_path)
    contract = recipe_contract(recipe, tok)
    records = train.load_training_records(recipe)
    torch.manual_seed(0)
    model = build_model(recipe, contract)
    mixed, precision = train.training_precision(recipe.training, "cpu")
    training = {**train.default_training_args(recipe), **recipe.training, **mixed}
    training.pop("activation_checkpointing", None)
    training.update(
        output_dir=tempfile.mkdtemp(prefix="bench-lora-"), max_steps=steps, logging_steps=10_000,
        disable_tqdm=True, warmup_steps=0, num_train_epochs=1,
    )  # fmt: skip
    args = training_args_class(recipe.family.args_class)(**training)
    trainer = train.build_trainer(recipe, model, tok, contract, records, args, None)
    clock = StepClock()
    trainer.add_callback(clock.callback)
    trainer.train()
    d = clock.deltas[a.warmup :]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "step_s": d,
        "median_step_s": statistics.median(d),
        "trainable": trainable,
        "precision": precision,
    }


def bench_lora_layers(a: argparse.Namespace) -> dict:
    steps = a.warmup + a.reps + 1
    res = {"all": time_score_steps(None, a, steps)}
    for top in a.top:
        res[f"top{top}"] = time_score_steps(top, a, steps)
    base = res["all"]["median_step_s"]
    rows = [[k, v["trainable"], v["median_step_s"], base / v["median_step_s"]] for k, v in res.items()]
    print(common.table(rows, ["LoRA blocks", "trainable params", "median CPU s / step", "speed vs all"]))
    return {
        "figure": "lora-layers",
        "recipe": KL_RECIPE,
        "results": res,
        "speed_ratio_vs_all_blocks": {k: base / v["median_step_s"] for k, v in res.items()},
    }
