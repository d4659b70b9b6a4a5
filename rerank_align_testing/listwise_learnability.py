"""The listwise learnability check: train fullrank / FIRST on the synthetic task, measure held-out nDCG@10.

Used by ``scripts/learnability_listwise.py`` (the table) and ``tests/listwise/test_learnability.py``. Everything
goes through the real paths: BEIR folder → list records from qrels → ``rerank_align.train.run`` (recipe,
``SFTTrainer``) → saved folder → ``Reranker.from_pretrained`` → ranking evaluation on held-out queries.

The measured setting (docs/learnability.md): lists of 10 from 3,000 generated training queries (the synthetic
task's generator, not 200 queries: the model must build a "which passage contains the query's key word" circuit
from scratch, and on this task it forms after ~1,500-2,500 steps), the untied tiny Qwen3, constant lr 1e-3. Two
held-out evaluations: the task's own 50 test lists of 10 (one window), and 50 fresh lists of 20 ranked with
sliding windows of 10, stride 5, back to front (untrained nDCG@10 there is ~0.35 rather than ~0.7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A short list prompt: the RankGPT instruction adds ~100 tokens per list (1.5× the step time) and nothing the
# synthetic task needs; the default contract prompt is exercised by the other listwise tests.
SHORT_PROMPT = "Query: {query}\n{passages}Rank the {n} passages:\n"


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
    n_train: int = 3000,
    n_test: int = 50,
    n_candidates: int = 10,
    eval_candidates: int = 20,
    hidden_size: int = 128,
    num_layers: int = 3,
    epochs: float | None = None,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    max_length: int = 1024,
    tied: bool = False,
    prompt_template: str | None = SHORT_PROMPT,
) -> dict[str, Any]:
    """``{"method", "untrained", "trained", "untrained_long", "trained_long", "cpu_seconds", ...}`` for one method
    on the synthetic task, plus the trained model's inference speed: generated tokens/s (fullrank) or FIRST
    candidates/s. ``*_long``: the ``eval_candidates``-long held-out lists ranked with sliding windows."""
    from rerank_align.config.load import parse_recipe
    from rerank_align.scoring import Reranker
    from rerank_align.train import run
    from rerank_align_testing.synthetic import make_task, write_beir
    from rerank_align_testing.tiny import build_tiny_causal

    workdir = Path(workdir)
    folder = workdir / f"task-{n_train}-{n_test}-{n_candidates}-s{seed}"
    if not (folder / "corpus.jsonl").exists():
        write_beir(make_task(n_train, n_test, n_candidates, seed=seed), folder)
    long_folder = workdir / f"heldout-{n_test}-{eval_candidates}-s{seed + 1}"
    if not (long_folder / "corpus.jsonl").exists():
        write_beir(make_task(0, n_test, eval_candidates, seed=seed + 1), long_folder)
    base = workdir / f"tiny-h{hidden_size}-l{num_layers}{'-tied' if tied else ''}"
    if not (base / "config.json").exists():
        build_tiny_causal(
            base, hidden_size=hidden_size, num_layers=num_layers, seed=seed, tie_word_embeddings=tied
        )
    decoding = "first" if method == "first" else "generate"
    # measured: FIRST's RankNet term builds the circuit by ~2,600 steps; fullrank's token loss alone needs longer
    # (0.841 after 3,000 steps, 0.996 after 6,000)
    epochs = epochs if epochs is not None else (16 if method == "first" else 32)
    window, stride = n_candidates, max(1, n_candidates // 2)

    def evaluate(reranker: Any) -> tuple[float, float]:
        return measure(reranker, folder, n_candidates), measure(reranker, long_folder, eval_candidates)

    untrained, untrained_long = evaluate(
        Reranker.from_base(
            str(base),
            kind="listwise",
            device="cpu",
            max_length=max_length,
            max_document_length=48,
            list_format={
                "decoding": decoding,
                "strategy": "sliding",
                "window": window,
                "stride": stride,
                **({"prompt_template": prompt_template} if prompt_template else {}),
            },
        )
    )
    out = workdir / f"out-{method}-{n_candidates}"
    recipe = parse_recipe(
        {
            "model": {
                "name_or_path": str(base),
                "kind": "listwise",
                "max_length": max_length,
                "max_document_length": 48,
                "list_prompt_template": prompt_template,
            },
            "data": {
                "beir": str(folder),
                "split": "train",
                "run": str(folder / "first_stage.run"),
                "depth": n_candidates,
            },
            "method": {
                "name": method,
                "listwise_strategy": "sliding",
                "listwise_window": window,
                "listwise_stride": stride,
            },
            "training": {
                "output_dir": str(out),
                "num_train_epochs": epochs,
                "learning_rate": lr,
                "per_device_train_batch_size": batch_size,
                # constant: the ranking circuit forms late (held-out FIRST top-5 recall 0.50 → 0.96 between
                # steps ~1,400 and ~2,600 at lr 1e-3, docs/learnability.md); a decaying lr delays it
                "lr_scheduler_type": "constant_with_warmup",
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
    st = dict(reranker.listwise.stats)  # inference speed of the trained model on the lists of n_candidates
    trained_long = measure(reranker, long_folder, eval_candidates)
    speed = (
        {"candidates_per_s": st["first_candidates"] / max(st["first_seconds"], 1e-9)}
        if decoding == "first"
        else {"tokens_per_s": st["generated_tokens"] / max(st["generate_seconds"], 1e-9)}
    )
    return {
        "method": method,
        "candidates": n_candidates,
        "untrained": round(untrained, 4),
        "trained": round(trained, 4),
        "eval_candidates": eval_candidates,
        "untrained_long": round(untrained_long, 4),
        "trained_long": round(trained_long, 4),
        "cpu_seconds": summary["train_cpu_seconds"],
        "wall_seconds": summary["train_seconds"],
        "train_loss": summary["train_loss"],
        "steps": summary["steps"],
        **{k: round(v, 1) for k, v in speed.items()},
    }
