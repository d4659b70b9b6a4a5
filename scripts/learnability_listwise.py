"""Listwise learnability table: method → untrained / trained held-out nDCG@10 on the synthetic task, seconds.

    python scripts/learnability_listwise.py --workdir /tmp/lw --methods first fullrank --epochs 12 \
        --hidden-size 128 --num-layers 3 --candidates 10

Runs the real path (BEIR folder → list records → rerank_align.train.run → Reranker.from_pretrained → evaluation).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/learnability_listwise")
    ap.add_argument("--methods", nargs="+", default=["first", "fullrank"])
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--test", type=int, default=40)
    ap.add_argument("--epochs", type=float, default=12)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--num-layers", type=int, default=3)
    a = ap.parse_args()
    from rerank_align.listwise.learnability import learnability

    rows = []
    for m in a.methods:
        rows.append(
            learnability(
                m,
                a.workdir,
                n_train=a.train,
                n_test=a.test,
                n_candidates=a.candidates,
                epochs=a.epochs,
                lr=a.lr,
                hidden_size=a.hidden_size,
                num_layers=a.num_layers,
            )
        )
    print("| method | candidates | untrained nDCG@10 | trained nDCG@10 | CPU s | wall s | speed |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        speed = (
            f"{r['tokens_per_s']:.0f} generated tokens/s"
            if "tokens_per_s" in r
            else f"{r['candidates_per_s']:.0f} FIRST candidates/s"
        )
        print(
            f"| {r['method']} | {a.candidates} | {r['untrained']:.3f} | {r['trained']:.3f} | {r['cpu_seconds']:.0f} "
            f"| {r['wall_seconds']:.0f} | {speed} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
