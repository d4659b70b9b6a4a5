"""The learnability check (issue 4): every objective must lift held-out nDCG@10 on the synthetic task.

``run_objective(model, objective, workdir)`` trains a tiny local model through the real entry point
(``rerank_align.train.run`` with a recipe dict) on 200 training queries and evaluates on 50 held-out ones,
returning untrained and trained nDCG@10 and the training seconds. The teacher for distillation objectives is the
task's relevance function (grade = key-word count) plus small noise, written as a teacher file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from rerank_align.testing.synthetic import make_task, write_beir
from rerank_align.testing.tiny import build_tiny_bert, build_tiny_causal

# objective → (method, loss, loss_args, needs_teacher, yesno_only)
OBJECTIVES: dict[str, tuple[str, str, dict, bool, bool]] = {
    "binary_ce": ("score", "binary_ce", {}, False, True),
    "bce": ("score", "bce", {}, False, False),
    "sft_full_vocab": ("sft_yesno", "infonce", {}, False, True),
    "infonce": ("score", "infonce", {}, False, False),
    "unified_sft_sft": ("score", "unified", {"weight": "sft", "direction": "sft"}, False, True),
    "unified_sft_cl": ("score", "unified", {"weight": "sft", "direction": "cl"}, False, True),
    "unified_cl_sft": ("score", "unified", {"weight": "cl", "direction": "sft"}, False, True),
    "unified_cl_cl": ("score", "unified", {"weight": "cl", "direction": "cl"}, False, True),
    "margin_mse": ("score", "margin_mse", {}, True, False),
    "listnet": ("score", "listnet", {}, False, False),
    "ranknet": ("score", "ranknet", {}, False, False),
    "lambdaloss": ("score", "lambdaloss", {}, False, False),
    "pld": ("score", "pld", {}, True, False),
    "cprd": ("score", "cprd", {}, True, False),
}

# One setting for every objective (measured table and what falls short: docs/learnability.md).
TRAINING = {
    "causal": {
        "learning_rate": 2e-3,
        "num_train_epochs": 12,
        "per_device_train_batch_size": 8,
        "warmup_steps": 20,
    },
    "bert": {
        "learning_rate": 2e-3,
        "num_train_epochs": 12,
        "per_device_train_batch_size": 8,
        "warmup_steps": 20,
    },
}


def prepare(workdir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Task folder, teacher file and tiny models (built once per workdir)."""
    workdir = Path(workdir)
    paths = {
        "task": workdir / "task",
        "teacher": workdir / "teacher.jsonl",
        "causal": workdir / "tiny_causal",
        "bert": workdir / "tiny_bert",
    }
    if not paths["task"].exists():
        task = make_task(seed=seed)
        write_beir(task, paths["task"])
        rng = random.Random(seed)
        with open(paths["teacher"], "w") as fh:
            for split in task["qrels"].values():
                for qid, judged in split.items():
                    for did, grade in judged.items():
                        fh.write(
                            json.dumps({"qid": qid, "doc_id": did, "score": grade + 0.1 * rng.random()})
                            + "\n"
                        )
    if not paths["causal"].exists():
        build_tiny_causal(paths["causal"])
    if not paths["bert"].exists():
        build_tiny_bert(paths["bert"])
    return paths


def recipe_dict(model: str, objective: str, paths: dict[str, Path], out: Path, **training: Any) -> dict:
    method, loss, loss_args, needs_teacher, _ = OBJECTIVES[objective]
    task = str(paths["task"])
    run = str(paths["task"] / "first_stage.run")
    return {
        "model": {
            "name_or_path": str(paths[model]),
            "kind": "head" if model == "bert" else "yesno",
            "max_query_length": 8,
            "max_document_length": 32,
            "max_length": 96,
        },
        "data": {
            "beir": task,
            "split": "train",
            "run": run,
            "num_negatives": 7,
            "teacher_files": [str(paths["teacher"])] if needs_teacher else [],
            "teacher_normalization": "none",
        },
        "method": {"name": method, "loss": loss, "loss_args": loss_args, "group_size": 8},
        "eval": {"beir": task, "split": "test", "run": run, "depth": 20, "at_start": True},
        "training": {
            "output_dir": str(out),
            "logging_steps": 50,
            "disable_tqdm": True,
            **TRAINING[model],
            **training,
        },
    }


def run_objective(model: str, objective: str, workdir: str | Path, **training: Any) -> dict[str, float]:
    from rerank_align.config import parse_recipe
    from rerank_align.train import run

    paths = prepare(workdir)
    out = Path(workdir) / f"out-{model}-{objective}"
    summary = run(parse_recipe(recipe_dict(model, objective, paths, out, **training)))
    return {
        "untrained": summary["eval_at_start"]["nDCG@10"],
        "trained": summary["eval"]["eval_nDCG@10"],
        "seconds": summary["train_seconds"],
    }


def applicable(model: str) -> list[str]:
    return [o for o, spec in OBJECTIVES.items() if model == "causal" or not spec[4]]
