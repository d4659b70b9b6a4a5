"""Print the learnability table: objective × tiny model → untrained / trained held-out nDCG@10, seconds.

.venv/bin/python scripts/learnability.py [--workdir /tmp/learnability] [--models causal bert] [--objectives ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# the test harness (rerank_align_testing) lives at the repository root, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from rerank_align_testing.learnability import OBJECTIVES, applicable, run_objective

    p = argparse.ArgumentParser()
    p.add_argument("--workdir", default="/tmp/learnability")
    p.add_argument("--models", nargs="+", default=["causal", "bert"])
    p.add_argument("--objectives", nargs="+", default=list(OBJECTIVES))
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--set", nargs="*", default=[], help="training overrides, e.g. num_train_epochs=12")
    p.add_argument("--data", nargs="*", default=[], help="data overrides, e.g. grade_negatives=false")
    p.add_argument("--loss", nargs="*", default=[], help="loss_args overrides, e.g. temperature=0.5")
    args = p.parse_args()
    rows = []
    import yaml

    def kv(items: list[str]) -> dict:
        return {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in items)}

    print("| objective | model | untrained nDCG@10 | trained nDCG@10 | CPU s | wall s |")
    print("|---|---|---|---|---|---|")
    for model in args.models:
        for obj in args.objectives:
            if obj not in applicable(model):
                continue
            r = run_objective(model, obj, args.workdir, kv(args.data), kv(args.loss), **kv(args.set))
            rows.append({"objective": obj, "model": model, **r})
            print(
                f"| {obj} | {model} | {r['untrained']:.3f} | {r['trained']:.3f} | {r['cpu_seconds']:.0f} "
                f"| {r['wall_seconds']:.0f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
