"""The listwise learnability check: train fullrank / FIRST on the synthetic task, measure held-out nDCG@10.

Used by ``scripts/learnability_listwise.py`` (the table) and ``tests/listwise/test_learnability.py``. Everything
goes through the real paths: BEIR folder → list records from qrels → ``rerank_align.train.run`` (recipe,
``SFTTrainer``) → saved folder → ``Reranker.from_pretrained`` → ranking evaluation on the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def measure(reranker: Any, folder: Path, n_candidates: int, max_queries: int | None = None) -> float:
    from rerank_align.data import load_beir, read_run
    from rerank_align.training.ranking_eval import rerank_and_measure

    col = load_beir(folder, split="test")
    run = read_run(folder / "first_stage.run")
    qids = sorted(q for q in col.qrels if q in run)[:max_queries]
    return rerank_and_measure(reranker, col, run, qids, depth=n_candidates, metrics=["nDCG@10"])["nDCG@10"]


def learnability(
    method: str,
    workdir: str | Path,
    *,
    n_train: int = 200,
    n_test: int = 40,
    n_candidates: int = 10,
    hidden_size: int = 64,
    num_layers: int = 2,
    epochs: float = 10,
    lr: float = 3e-3,
    batch_size: int = 8,
    seed: int = 0,
    max_length: int = 1024,
) -> dict[str, Any]:
    """``{"method", "untrained", "trained", "cpu_seconds", "wall_seconds", ...}`` for one method on the synthetic
    task, plus the trained model's inference speed: generated tokens/s (fullrank) or FIRST candidates/s."""
    from rerank_align.config.load import parse_recipe
    from rerank_align.scoring import Reranker
    from rerank_align.testing.synthetic import make_task, write_beir
    from rerank_align.testing.tiny import build_tiny_causal
    from rerank_align.train import run

    workdir = Path(workdir)
    folder = workdir / f"task-{n_train}-{n_test}-{n_candidates}-s{seed}"
    if not (folder / "corpus.jsonl").exists():
        write_beir(make_task(n_train, n_test, n_candidates, seed=seed), folder)
    base = workdir / f"tiny-h{hidden_size}-l{num_layers}"
    if not (base / "config.json").exists():
        build_tiny_causal(base, hidden_size=hidden_size, num_layers=num_layers, seed=seed)
    decoding = "first" if method == "first" else "generate"
    untrained = measure(
        Reranker.from_base(
            str(base),
            kind="listwise",
            device="cpu",
            max_length=max_length,
            max_document_length=48,
            list_format={"decoding": decoding, "strategy": "full"},
        ),
        folder,
        n_candidates,
    )
    out = workdir / f"out-{method}-{n_candidates}"
    recipe = parse_recipe(
        {
            "model": {
                "name_or_path": str(base),
                "kind": "listwise",
                "max_length": max_length,
                "max_document_length": 48,
            },
            "data": {
                "beir": str(folder),
                "split": "train",
                "run": str(folder / "first_stage.run"),
                "depth": n_candidates,
            },
            "method": {"name": method, "listwise_strategy": "full"},
            "training": {
                "output_dir": str(out),
                "num_train_epochs": epochs,
                "learning_rate": lr,
                "per_device_train_batch_size": batch_size,
                "lr_scheduler_type": "cosine",
                "warmup_steps": 10,
                "logging_steps": 25,
                "disable_tqdm": True,
            },
            "seed": seed,
        }
    )
    summary = run(recipe)
    reranker = Reranker.from_pretrained(out, device="cpu")
    trained = measure(reranker, folder, n_candidates)
    st = reranker.listwise.stats  # inference speed of the trained model during that evaluation (wall clock)
    speed = (
        {"candidates_per_s": st["first_candidates"] / max(st["first_seconds"], 1e-9)}
        if decoding == "first"
        else {"tokens_per_s": st["generated_tokens"] / max(st["generate_seconds"], 1e-9)}
    )
    return {
        "method": method,
        "untrained": round(untrained, 4),
        "trained": round(trained, 4),
        "cpu_seconds": summary["train_cpu_seconds"],
        "wall_seconds": summary["train_seconds"],
        "train_loss": summary["train_loss"],
        "steps": summary["steps"],
        **{k: round(v, 1) for k, v in speed.items()},
    }
