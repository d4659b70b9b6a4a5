"""``rerank-align eval <suite.yaml> [--systems ...] [--out ...] [--limit-queries N] [key=value ...]``."""

from __future__ import annotations

import argparse
import os

from rerank_align.errors import RerankAlignError, report_error, run_main
from rerank_align.evaluation.config import load_suite
from rerank_align.evaluation.report import rich_table
from rerank_align.evaluation.runner import Dist, run_suite


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rerank-align eval",
        description="Rerank the first-stage candidates of every collection in a suite and compare systems.",
    )
    p.add_argument("suite", help="suite YAML (eval/suites/*.yaml)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override suite keys, e.g. depth=20 (paths in them are relative to the working directory)",
    )
    p.add_argument("--systems", nargs="+", help="evaluate only these systems (the baseline is always kept)")
    p.add_argument("--collections", nargs="+", help="evaluate only these collections")
    p.add_argument("--out", help="output folder (default: the suite's 'output', else outputs/eval/<suite>)")
    p.add_argument("--limit-queries", type=int, metavar="N", help="first N judged queries of each collection")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the score cache")
    p.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty --out that no earlier eval wrote"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="no results table")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_intermixed_args(argv)
    try:
        # nargs="+" swallows the overrides that follow the names (``--systems a b baseline=a``); names are plain
        # identifiers, so a key=value among them is an override, kept whole: its value may hold commas
        # (``systems.5={name: x, type: reranker, path: y}``), which separate names only
        named = [*(args.systems or []), *(args.collections or [])]
        overrides = [*args.overrides, *(item for item in named if "=" in item)]
        systems = [s for item in args.systems or [] if "=" not in item for s in item.split(",") if s]
        cols = [c for item in args.collections or [] if "=" not in item for c in item.split(",") if c]
        if args.limit_queries is not None and args.limit_queries < 1:
            raise RerankAlignError("--limit-queries must be >= 1", where="command line")
        suite = load_suite(args.suite, overrides)
        results = run_suite(
            suite,
            systems=systems or None,
            collections=cols or None,
            out=args.out,
            limit_queries=args.limit_queries,
            use_cache=not args.no_cache,
            show_progress=not args.no_progress,
            argv=list(argv),
            overwrite=args.overwrite,
        )
    except RerankAlignError as e:
        return report_error(e, debug=os.environ.get("RERANK_ALIGN_DEBUG", "") not in ("", "0"))

    if not args.quiet and Dist().main:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:  # a log file would get rich's 80 columns and truncated system names
            console = Console(width=160)
        console.print(rich_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
