"""Where each system's top-ranked candidate sat in the first-stage list, and how often it kept that list's order:
the position habits a listwise reranker can learn instead of relevance (a model that names the same input slot first
on every query ranks by position, whatever the candidates).

    python scripts/listwise_positions.py outputs/smollm2_trec_dl/eval_listwise [--collection NAME] [--depth 10]

Reads the eval folder's results.json (collection, first-stage run, depth) and runs/<collection>/<system>.run, the
reranked runs the evaluator wrote. Positions are 1-based in the first-stage order the reranker was given.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from rerank_align.data import read_run
from rerank_align.evaluation.report import run_path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="an eval output folder (results.json + runs/)")
    p.add_argument("--collection", default=None, help="collection name in results.json (default: the first)")
    p.add_argument("--depth", type=int, default=None, help="first-stage depth (default: the suite's)")
    args = p.parse_args()
    folder = Path(args.folder)
    res = json.loads((folder / "results.json").read_text())
    name = args.collection or next(iter(res["collections"]))
    c = res["collections"][name]
    depth = args.depth or c["depth"]
    first_stage = {q: [d for d, _ in lst[:depth]] for q, lst in read_run(c["run"]).items()}
    print(
        f"{name}: top-1 by first-stage position (1-based), and queries whose top-{depth} keeps the input order"
    )
    print("| system | queries | top-1 at input position (count) | input order kept |")
    print("|---|---|---|---|")
    for system in res["systems"]:
        path = run_path(folder, name, system)
        if not path.is_file():
            print(f"| {system} | no run file in {path.parent} | | |")
            continue
        reranked = read_run(path)
        top: Counter[int] = Counter()
        kept = 0
        for q, lst in reranked.items():
            given = first_stage.get(q, [])
            head = [d for d, _ in lst[: len(given)]]
            if not head or head[0] not in given:
                continue
            top[given.index(head[0]) + 1] += 1
            kept += head == given
        cells = ", ".join(f"{pos}: {n}" for pos, n in top.most_common())
        print(f"| {system} | {sum(top.values())} | {cells} | {kept} |")


if __name__ == "__main__":
    main()
