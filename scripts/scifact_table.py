"""The SciFact table of the scorer-training issue: all-MiniLM-L6-v2 trained as a ``head`` cross-encoder on SciFact
train with several objectives under one budget, against sentence-transformers' ``CrossEncoderTrainer``.

Every method sees the same groups (1 judged positive + 7 BM25 negatives from the train queries' top-20, built by
``load_training_records`` from ``recipes/quickstart/minilm_scifact.yaml``), the same number of optimizer steps,
batch (4 groups = 32 pairs), learning rate, warm-up, bf16 autocast and sequence lengths. Evaluation: SciFact test,
BM25 top-``depth`` reranked by ``rerank-align eval`` (one suite, paired tests against BM25).

    .venv/bin/python scripts/scifact_table.py                      # all methods, 160 steps, depth 30
    .venv/bin/python scripts/scifact_table.py --methods bce st_bce --steps 40 --depth 10

Margin-MSE, KL and quickstart need ``outputs/quickstart/teacher.jsonl`` (BM25 + bi-encoder ensemble): run ``make quickstart`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = "recipes/quickstart/minilm_scifact.yaml"
# method → recipe overrides; every method (and the sentence-transformers reference) runs at lr 5e-5, the quickstart
# recipe's own setting (KL at lr 1e-4) is the row "quickstart"
OURS = {
    "bce": ["method.loss=bce", "data.teacher_files=[]", "training.learning_rate=5e-5"],
    "infonce": ["method.loss=infonce", "data.teacher_files=[]", "training.learning_rate=5e-5"],
    "margin_mse": ["method.loss=margin_mse", "training.learning_rate=5e-5"],
    "kl": ["method.loss=kl", "training.learning_rate=5e-5"],
    "quickstart": [],
}


def train_st(out: Path, steps: int, overrides: list[str]) -> float:
    """sentence-transformers CrossEncoderTrainer + BinaryCrossEntropyLoss on the same pairs, batch and schedule."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from rerank_align.config.load import load_recipe
    from rerank_align.evaluation.systems import doc_text  # the evaluator's text for cross_encoder systems
    from rerank_align.scoring.modeling import resolve_model_path
    from rerank_align.train import load_training_records

    recipe = load_recipe(RECIPE, [*OURS["bce"], *overrides])
    rows: dict[str, list] = {"query": [], "doc": [], "label": []}
    for rec in load_training_records(recipe):
        for doc, label in [(d, 1.0) for d in rec["positives"]] + [(d, 0.0) for d in rec["negatives"]]:
            rows["query"].append(rec["query"])
            rows["doc"].append(doc_text(doc))
            rows["label"].append(label)
    m = recipe.model
    model = CrossEncoder(resolve_model_path(m.name_or_path), num_labels=1, max_length=m.max_length)
    t = recipe.training
    args = CrossEncoderTrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=t["per_device_train_batch_size"] * recipe.method.group_size,
        learning_rate=t["learning_rate"],
        warmup_steps=t["warmup_steps"],
        bf16=bool(t.get("bf16")),
        use_cpu=not torch.cuda.is_available(),
        logging_steps=20,
        save_strategy="no",
        report_to="none",
        seed=recipe.seed,
    )
    ds = Dataset.from_dict(rows)
    t0 = time.process_time()
    CrossEncoderTrainer(model=model, args=args, train_dataset=ds, loss=BinaryCrossEntropyLoss(model)).train()
    seconds = time.process_time() - t0
    model.save_pretrained(str(out))
    return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=[*OURS, "st_bce"], choices=[*OURS, "st_bce"])
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--depth", type=int, default=30)
    p.add_argument("--out", default="outputs/scifact_table")
    args = p.parse_args()
    os.chdir(REPO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import yaml

    from rerank_align.evaluation.cli import main as eval_main
    from rerank_align.train import main as train_main

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    bm25_train = Path("outputs/quickstart/bm25_train.run")
    common = [f"training.max_steps={args.steps}", "training.eval_strategy=no"]
    if bm25_train.exists():
        common.append(f"data.run={bm25_train}")
    timing: dict[str, float] = {}
    systems: list[dict] = [{"name": "bm25", "type": "first_stage"}]
    for method in args.methods:
        folder = out / method
        t0 = time.process_time()
        if method == "st_bce":
            timing[method] = train_st(folder, args.steps, common)
            systems.append({"name": method, "type": "cross_encoder", "path": str(folder), "max_length": 176})
            continue
        train_main([RECIPE, *OURS[method], *common, f"training.output_dir={folder}"])
        timing[method] = time.process_time() - t0
        systems.append({"name": method, "type": "reranker", "path": str(folder), "autocast": "bfloat16"})
    suite = {
        "name": "scifact_table",
        "depth": args.depth,
        "metrics": ["nDCG@10", "RR@10", "R@10", "AP"],
        "collections": [{"name": "scifact", "path": str(REPO / "data/scifact"), "run": "bm25_top100.run"}],
        "systems": systems,
        "baseline": "bm25",
    }
    suite_path = out / "suite.yaml"
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False))
    rc = eval_main([str(suite_path), "--out", str(out / "eval")])
    (out / "train_cpu_seconds.json").write_text(json.dumps(timing, indent=2))
    print(json.dumps(timing, indent=2))
    return rc


if __name__ == "__main__":
    sys.exit(main())
