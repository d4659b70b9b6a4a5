"""Preference alignment on the synthetic task: start → end held-out nDCG@10 for every method of issue 8.

    python scripts/preference_learnability.py --workdir /tmp/pref

1. A tiny Qwen3 listwise model is trained briefly with fullrank (the start; ``--start-epochs``).
2. From that start, each method trains through the real entry point (recipe dict → ``rerank_align.train.run`` →
   saved folder → ``Reranker.from_pretrained`` → ranking evaluation on the held-out split):
   DPO (sigmoid; preferences from the policy's own samples vs the graded order), IRPO, iterative IRPO (the policy
   regenerates its lists 3 times), PL-DPO (the graded order, the first-stage order and 4 samples, ranked by nDCG),
   ADPA and DCKD (teacher: the DPO result, its reference: the start).
3. PG-Rank runs on a *score* reranker (tiny Qwen3, yes/no kind) briefly trained with InfoNCE, then PG-Rank.

Prints a markdown table (start, end, CPU seconds of the method's run) and writes ``results.json`` in the workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LISTWISE = ["dpo", "irpo", "irpo_iterative", "pl_dpo", "adpa", "dckd"]


def train_and_measure(recipe: dict, folder: Path, n_candidates: int) -> dict[str, Any]:
    from rerank_align.config.load import parse_recipe
    from rerank_align.listwise.learnability import measure
    from rerank_align.scoring import Reranker
    from rerank_align.train import run

    c0, t0 = time.process_time(), time.perf_counter()
    summary = run(parse_recipe(recipe))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    out = recipe["training"]["output_dir"]
    end = measure(Reranker.from_pretrained(out, device="cpu"), folder, n_candidates)
    return {
        "end": round(end, 4),
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "steps": summary["steps"],
        "loss": summary["train_loss"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/preference_learnability")
    ap.add_argument("--methods", nargs="+", default=[*LISTWISE, "pg_rank"])
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--num-layers", type=int, default=2)
    ap.add_argument("--start-method", choices=["first", "fullrank"], default="first")
    ap.add_argument("--start-epochs", type=float, default=3)
    ap.add_argument("--start-lr", type=float, default=2e-3)
    ap.add_argument("--epochs", type=float, default=2, help="epochs of each preference method")
    ap.add_argument("--lr", type=float, default=5e-4, help="learning rate of each method (PG-Rank too)")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--dpo-loss-type", nargs="+", default=["sigmoid"], help="TRL loss types of the DPO row")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from rerank_align.listwise.learnability import measure
    from rerank_align.scoring import Reranker
    from rerank_align.testing.synthetic import make_task, write_beir
    from rerank_align.testing.tiny import build_tiny_causal

    work = Path(a.workdir)
    folder = work / "task"
    if not (folder / "corpus.jsonl").exists():
        write_beir(make_task(a.train, a.test, a.candidates, seed=a.seed), folder)
    base = work / "tiny"
    if not (base / "config.json").exists():
        build_tiny_causal(base, hidden_size=a.hidden_size, num_layers=a.num_layers, seed=a.seed)
    data = {
        "beir": str(folder),
        "split": "train",
        "run": str(folder / "first_stage.run"),
        "depth": a.candidates,
    }
    model = {"kind": "listwise", "max_length": 1024, "max_document_length": 48}
    common_training = {"logging_steps": 25, "disable_tqdm": True, "per_device_train_batch_size": 8}
    results: dict[str, Any] = {"settings": vars(a)}

    listwise = [m for m in a.methods if m in LISTWISE]
    start = work / f"start-{a.start_method}"
    if listwise:
        if not (start / "reranker.json").exists():
            info = train_and_measure(
                {
                    "model": {**model, "name_or_path": str(base)},
                    "data": data,
                    "method": {"name": a.start_method, "listwise_strategy": "full"},
                    "training": {
                        **common_training,
                        "output_dir": str(start),
                        "num_train_epochs": a.start_epochs,
                        "learning_rate": a.start_lr,
                        "lr_scheduler_type": "cosine",
                        "warmup_steps": 10,
                    },
                    "seed": a.seed,
                },
                folder,
                a.candidates,
            )
            results["start_training"] = info
        s = measure(Reranker.from_pretrained(start, device="cpu"), folder, a.candidates)
        results["listwise_start"] = round(s, 4)
        print(f"listwise start ({a.start_method}, {a.start_epochs} epochs): nDCG@10 {s:.4f}", flush=True)

    method_settings: dict[str, dict[str, Any]] = {
        "dpo": {"name": "dpo", "preference_source": "samples", "num_samples": 4},
        "irpo": {"name": "irpo"},
        "irpo_iterative": {"name": "irpo", "irpo_rounds": 3},
        "pl_dpo": {"name": "pl_dpo", "num_samples": 4},
        "adpa": {
            "name": "adpa",
            "teacher_model": str(work / "out-dpo"),
            "teacher_ref_model": str(start),
            "teacher_topk": 20,
        },
        "dckd": {"name": "dckd", "teacher_model": str(work / "out-dpo"), "teacher_topk": 20},
    }
    # the methods are evaluated with the start's own decoding (FIRST: first-token identifier logits)
    decoding = "first" if a.start_method == "first" else "generate"
    rows = []
    for m in listwise:
        recipe = {
            "model": {**model, "name_or_path": str(start)},
            "data": data,
            "method": {**method_settings[m], "listwise_strategy": "full", "listwise_decoding": decoding},
            "training": {
                **common_training,
                **({"loss_type": a.dpo_loss_type} if m == "dpo" else {}),
                "output_dir": str(work / f"out-{m}"),
                "num_train_epochs": a.epochs,
                "learning_rate": a.lr,
                "beta": a.beta,
                "lr_scheduler_type": "constant",
            },
            "seed": a.seed,
        }
        r = train_and_measure(recipe, folder, a.candidates)
        r.update(method=m, start=results["listwise_start"])
        rows.append(r)
        print(json.dumps(r), flush=True)

    if "pg_rank" in a.methods:
        ystart = work / "score-start-graded"
        ymodel = {"name_or_path": str(base), "kind": "yesno", "max_length": 128, "max_document_length": 48}
        # graded groups (as in the score learnability harness): grade-1 documents are negatives of grade-2 positives,
        # and the labels are the grades, so PG-Rank's reward is the graded nDCG@10
        ydata = {
            **data,
            "num_negatives": 7,
            "depth": a.candidates,
            "grade_negatives": True,
            "graded_labels": True,
        }
        if not (ystart / "reranker.json").exists():
            train_and_measure(
                {
                    "model": ymodel,
                    "data": {**ydata, "graded_labels": False},  # InfoNCE: 1 for the positive, 0 for negatives
                    "method": {"name": "score", "loss": "infonce", "group_size": 8},
                    "training": {
                        **common_training,
                        "output_dir": str(ystart),
                        "num_train_epochs": 1,
                        "learning_rate": 2e-3,
                    },
                    "seed": a.seed,
                },
                folder,
                a.candidates,
            )
        s = measure(Reranker.from_pretrained(ystart, device="cpu"), folder, a.candidates)
        results["score_start"] = round(s, 4)
        r = train_and_measure(
            {
                "model": {**ymodel, "name_or_path": str(ystart)},
                "data": ydata,
                "method": {
                    "name": "pg_rank",
                    "loss": "pg_rank",
                    "group_size": 8,
                    "loss_args": {"num_samples": 8},
                },
                "training": {
                    **common_training,
                    "output_dir": str(work / "out-pg_rank"),
                    "num_train_epochs": a.epochs,
                    "learning_rate": a.lr,
                },
                "seed": a.seed,
            },
            folder,
            a.candidates,
        )
        r.update(method="pg_rank (score reranker)", start=results["score_start"])
        rows.append(r)
        print(json.dumps(r), flush=True)

    results["rows"] = rows
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print("\n| method | start nDCG@10 | end nDCG@10 | change | CPU s | steps |\n|---|---|---|---|---|---|")
    for r in rows:
        d = r["end"] - r["start"]
        print(
            f"| {r['method']} | {r['start']:.4f} | {r['end']:.4f} | {d:+.4f} | {r['cpu_s']} | {r['steps']} |"
        )


if __name__ == "__main__":
    main()
