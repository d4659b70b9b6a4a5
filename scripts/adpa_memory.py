"""Peak memory of ADPA with the teachers' log-probs on a top-k support vs on the full vocabulary.

    python scripts/adpa_memory.py --workdir /tmp/adpa_mem --topk 20 0

Each setting runs in its own fresh Python process (so the figure is that run's own peak): the same ADPA recipe on
the synthetic task (tiny Qwen3 student, the same tiny model as aligned teacher and as reference teacher), teachers'
log-probs precomputed before training (``method.teacher_precompute``) and the teachers freed, ``--steps`` optimizer
steps. ``--output-rows N`` widens the tiny model's output layer to N rows (as real models pad their vocabulary), to
see how the full-vocabulary store grows with the vocabulary. The child reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak resident set size of the process, KiB on
Linux) after training, and its CPU seconds. ``--topk 0`` keeps the full vocabulary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

# the test harness (rerank_align_testing) lives at the repository root, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def child(a: argparse.Namespace, topk: int) -> dict:
    import resource
    import time

    from rerank_align.config.load import parse_recipe
    from rerank_align.train import run

    work = Path(a.workdir)
    base = work / "tiny"
    c0 = time.process_time()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    summary = run(
        parse_recipe(
            {
                "model": {
                    "name_or_path": str(base),
                    "kind": "listwise",
                    "max_length": 1024,
                    "max_document_length": 48,
                },
                "data": {
                    "beir": str(work / "task"),
                    "split": "train",
                    "run": str(work / "task" / "first_stage.run"),
                    "depth": a.candidates,
                },
                "method": {
                    "name": "adpa",
                    "teacher_model": str(base),
                    "teacher_ref_model": str(base),
                    "teacher_topk": topk,
                    "teacher_precompute": True,
                    "listwise_strategy": "full",
                },
                "training": {
                    "output_dir": str(work / f"out-k{topk}"),
                    "max_steps": a.steps,
                    "per_device_train_batch_size": 8,
                    "disable_tqdm": True,
                    "logging_steps": 1000,
                },
            }
        )
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "topk": topk,
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_before_run_mib": round(before / 1024, 1),
        "cpu_s": round(time.process_time() - c0, 1),
        "steps": summary["steps"],
        "records": summary["records"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/adpa_mem")
    ap.add_argument("--topk", type=int, nargs="+", default=[20, 0])
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument(
        "--output-rows",
        type=int,
        default=None,
        help="resize the tiny model's embeddings / lm_head to this many rows (a larger vocabulary; extra ids unused)",
    )
    ap.add_argument("--child", type=int, default=None)
    a = ap.parse_args()
    if a.child is not None:
        print("RESULT " + json.dumps(child(a, a.child)), flush=True)
        return

    from rerank_align_testing.synthetic import make_task, write_beir
    from rerank_align_testing.tiny import build_tiny_causal

    work = Path(a.workdir)
    if not (work / "task" / "corpus.jsonl").exists():
        write_beir(make_task(a.train, 10, a.candidates, seed=0), work / "task")
    if not (work / "tiny" / "config.json").exists():
        build_tiny_causal(work / "tiny")
        if a.output_rows:
            from transformers import AutoModelForCausalLM

            m = AutoModelForCausalLM.from_pretrained(work / "tiny")
            m.resize_token_embeddings(a.output_rows)
            m.save_pretrained(work / "tiny")
    rows = []
    for k in a.topk:
        cmd = [sys.executable, __file__, "--workdir", a.workdir, "--candidates", str(a.candidates)]
        cmd += ["--steps", str(a.steps), "--child", str(k)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        row = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| teacher support | peak RSS (MiB) | CPU s | steps | records |\n|---|---|---|---|---|")
    for r in rows:
        name = "full vocabulary" if r["topk"] == 0 else f"top-{r['topk']}"
        print(f"| {name} | {r['peak_rss_mib']} | {r['cpu_s']} | {r['steps']} | {r['records']} |")


if __name__ == "__main__":
    main()
