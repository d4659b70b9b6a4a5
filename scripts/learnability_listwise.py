"""Listwise learnability table: method → untrained / trained held-out nDCG@10 on the synthetic task, seconds.

    OMP_NUM_THREADS=1 python scripts/learnability_listwise.py --workdir /tmp/lw --methods first fullrank

Runs the real path (BEIR folder → list records → rerank_align.train.run → Reranker.from_pretrained → evaluation).
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
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/learnability_listwise")
    ap.add_argument("--methods", nargs="+", default=["first", "fullrank"])
    # unset options keep learnability()'s defaults (the measured setting of docs/learnability.md)
    for flag, typ in (
        ("--candidates", int),
        ("--train", int),
        ("--test", int),
        ("--epochs", float),
        ("--lr", float),
        ("--batch-size", int),
        ("--hidden-size", int),
        ("--num-layers", int),
    ):
        ap.add_argument(flag, type=typ)
    ap.add_argument(
        "--tied",
        action="store_true",
        help="tie the tiny model's embeddings (not measured with this many steps)",
    )
    ap.add_argument("--rankgpt-prompt", action="store_true", help="the contract's default RankGPT prompt")
    a = ap.parse_args()
    from rerank_align_testing.listwise_learnability import learnability

    names = {"candidates": "n_candidates", "train": "n_train", "test": "n_test"}
    kwargs = {
        names.get(k, k): v
        for k, v in vars(a).items()
        if v is not None and k not in ("workdir", "methods", "tied", "rankgpt_prompt")
    }
    if a.tied:
        kwargs["tied"] = True
    if a.rankgpt_prompt:
        kwargs["prompt_template"] = None
    rows = [learnability(m, a.workdir, **kwargs) for m in a.methods]
    print(
        "| method | lists of n: untrained → trained | longer lists, sliding windows | CPU s | wall s | speed |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        speed = (
            f"{r['tokens_per_s']:.0f} generated tokens/s"
            if "tokens_per_s" in r
            else f"{r['candidates_per_s']:.0f} FIRST candidates/s"
        )
        print(
            f"| {r['method']} | n={r['candidates']}: {r['untrained']:.3f} → {r['trained']:.3f} "
            f"| n={r['eval_candidates']}: {r['untrained_long']:.3f} → {r['trained_long']:.3f} "
            f"| {r['cpu_seconds']:.0f} | {r['wall_seconds']:.0f} | {speed} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
