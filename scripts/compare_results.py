"""Paired tests between systems of *different* eval runs (results.json files), without scoring anything again.

    python scripts/compare_results.py BASELINE_RESULTS:SYSTEM RESULTS:SYSTEM [RESULTS:SYSTEM ...] \
        [--collection NAME] [--metric nDCG@10]

The first argument is the baseline. Each system's per-query values are read from its results.json and tested with
the evaluator's own tests (rerank_align.evaluation.significance.compare: paired t, sign-flip randomisation, Holm over
the systems given, wins / ties / losses). Used where a model was trained and evaluated after the run that holds its
starting point (a preference method against its listwise start), so that the start is not reranked a second time.

Refused, with one line naming the file, unless every run evaluated the same collection folder, first-stage run,
depth and query set for the metric: per-query values of different query sets or candidate lists do not pair.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rerank_align.evaluation.significance import compare

COMPARABLE = ("path", "run", "split", "depth")


def _load(arg: str, collection: str | None, metric: str) -> tuple[str, dict, dict]:
    path, sep, system = arg.rpartition(":")
    if not sep or not path or not system:
        sys.exit(f"error: {arg!r}: expected RESULTS.json:SYSTEM")
    res = json.loads(Path(path).read_text(encoding="utf-8"))
    cols = res["collections"]
    name = collection or (next(iter(cols)) if len(cols) == 1 else None)
    if name is None or name not in cols:
        sys.exit(f"error: {path}: give --collection, one of {', '.join(cols)}")
    col = cols[name]
    if system not in col["per_query"]:
        sys.exit(f"error: {path}: no system {system!r} (has {', '.join(col['per_query'])})")
    values = col["per_query"][system].get(metric)
    if not values:
        sys.exit(f"error: {path}: system {system!r} has no per-query {metric}")
    return f"{system} ({Path(path).parent.name})", col, values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("systems", nargs="+", help="RESULTS.json:SYSTEM; the first is the baseline")
    ap.add_argument("--collection", default=None)
    ap.add_argument("--metric", default="nDCG@10")
    ap.add_argument("--permutations", type=int, default=10000)
    args = ap.parse_args(argv)
    if len(args.systems) < 2:
        ap.error("give a baseline and at least one system")
    loaded = [_load(a, args.collection, args.metric) for a in args.systems]
    (base_name, base_col, base_values), names = loaded[0], set()
    for arg, (name, col, values) in zip(args.systems, loaded):
        for key in COMPARABLE:
            if col.get(key) != base_col.get(key):
                sys.exit(
                    f"error: {arg}: {key} {col.get(key)!r} differs from the baseline's {base_col.get(key)!r}"
                )
        if set(values) != set(base_values):
            sys.exit(
                f"error: {arg}: {len(values)} queries, not the baseline's {len(base_values)} (same --limit-queries?)"
            )
        if name in names:
            sys.exit(f"error: {arg}: {name} is given twice")
        names.add(name)
    per_query = {name: {args.metric: values} for name, _, values in loaded}
    result = compare(per_query, base_name, [args.metric], permutations=args.permutations)
    n = len(base_values)
    mean = {name: sum(v.values()) / n for name, _, v in loaded}
    print(f"{args.metric} over {n} queries; baseline {base_name} {mean[base_name]:.4f}")
    print("| system | mean | Δ | paired t p | randomisation p | Holm (t) | wins/ties/losses |")
    print("|---|---|---|---|---|---|---|")
    for name, _, _ in loaded[1:]:
        r = result[name][args.metric]
        print(
            f"| {name} | {mean[name]:.4f} | {r['delta']:+.4f} | {r['p_t']:.4g} | {r['p_perm']:.4g} | "
            f"{r['p_t_holm']:.4g} | {r['wins']}/{r['ties']}/{r['losses']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
