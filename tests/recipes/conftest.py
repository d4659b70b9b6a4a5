"""Shared pieces of the recipe tests: every recipe under recipes/ and the overrides that run it on a tiny model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted(
    p for p in (REPO / "recipes").rglob("*.yaml") if "accelerate" not in p.relative_to(REPO).parts
)
ACCELERATE = sorted((REPO / "recipes" / "accelerate").glob("*.yaml"))


def rel(p: Path) -> str:
    return str(p.relative_to(REPO))


@pytest.fixture(scope="session")
def recipe_task(tmp_path_factory) -> dict[str, Path]:
    """The synthetic BEIR task (rerank_align_testing.synthetic) and a teacher file over all its judged pairs."""
    from rerank_align_testing.synthetic import make_task, write_beir

    folder = tmp_path_factory.mktemp("recipe_task")
    task = make_task(n_train=16, n_test=6, n_candidates=12)
    write_beir(task, folder / "beir")
    rng = random.Random(0)
    with open(folder / "teacher.jsonl", "w") as fh:
        for split in task["qrels"].values():
            for qid, judged in split.items():
                for did, grade in judged.items():
                    fh.write(
                        json.dumps({"qid": qid, "doc_id": did, "score": grade + 0.1 * rng.random()}) + "\n"
                    )
    return {
        "beir": folder / "beir",
        "run": folder / "beir" / "first_stage.run",
        "teacher": folder / "teacher.jsonl",
    }


def tiny_overrides(
    recipe, tiny_causal: Path, tiny_bert: Path, task: dict[str, Path], out: Path, tiny_vlm: Path | None = None
) -> list[str]:
    """``k=v`` overrides that keep the recipe's method, loss, PEFT/QLoRA and trainer settings but swap the model for
    the tiny local one, the data for the synthetic task, and shrink the run to 2 CPU steps.

    CPU-only substitutions (stated here, never in the shipped recipe): float32 weights and no bf16 (no bf16 CUDA
    kernels), 4-bit compute/storage float32. VLM recipes run on the tiny Qwen2-VL (``tiny_vlm``) with the synthetic
    text task here; tests/training/test_vlm_training.py trains them on records with images.
    """
    from rerank_align.config.load import model_architecture

    arch = model_architecture(recipe)
    encoder = arch == "encoder"
    listwise = recipe.family.listwise
    vlm = arch == "vlm" and tiny_vlm is not None
    ov = [
        f"model.name_or_path={tiny_bert if encoder else tiny_vlm if vlm else tiny_causal}",
        f"model.architecture={'encoder' if encoder else 'vlm' if vlm else 'causal'}",
        "model.dtype=float32",
        "model.max_query_length=8",
        "model.max_document_length=16",
        f"model.max_length={1024 if listwise else 256}",
        "data.train_file=null",
        f"data.beir={task['beir']}",
        "data.split=train",
        f"data.run={task['run']}",
        f"data.num_negatives={min(recipe.data.num_negatives, 5)}",
        f"data.depth={min(recipe.data.depth, 8) if listwise else 20}",
        "data.max_train_samples=8",
        f"method.group_size={min(recipe.method.group_size, 6)}",
        "eval.beir=null",
        "eval.run=null",
        "eval.every_n_steps=null",
        "eval.at_start=false",
        f"training.output_dir={out}",
        "training.max_steps=2",
        "training.per_device_train_batch_size=2",
        "training.gradient_accumulation_steps=1",
        "training.bf16=false",
        "training.save_strategy='no'",
        "training.load_best_model_at_end=false",
        "training.logging_steps=1",
        "training.disable_tqdm=true",
    ]
    if recipe.data.teacher_files:
        ov += [f"data.teacher_files=[{task['teacher']}]", "data.teacher_normalization=none"]
    # drawn lists stay drawn: up to 2 lists of 4 from the tiny depth of 8
    if recipe.data.list_size is not None:
        ov += ["data.list_size=4", f"data.lists_per_query={min(recipe.data.lists_per_query, 2)}"]
    if recipe.method.teacher_model:  # ADPA / DCKD: the tiny model is its own (same-vocabulary) teacher
        ov += [f"method.teacher_model={tiny_causal}", f"method.teacher_ref_model={tiny_causal}"]
    if recipe.method.chunk_size:
        ov.append("method.chunk_size=3")  # really chunk the tiny groups (6 pairs → 2 chunks)
    if recipe.quantization.load_in_4bit:
        ov += ["quantization.compute_dtype=float32", "quantization.quant_storage=float32"]
    return ov
