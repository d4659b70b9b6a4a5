"""Print the malformed-input corpus as a markdown table: input → the one-line error it gets.

    .venv/bin/python scripts/malformed_table.py

Reads the CASES table of tests/test_malformed_inputs.py (file → reader) and runs each reader; then the two legal
"policy" inputs under tests/data/policy (accepted, with their documented behaviour).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from rerank_align.errors import RerankAlignError
    from tests.test_malformed_inputs import CASES, MALFORMED

    print(f"| # | input (tests/data/malformed/) | one-line error ({len(CASES)} inputs) |")
    print("|---|---|---|")
    for i, name in enumerate(sorted(CASES), start=1):
        reader, _ = CASES[name]
        try:
            reader(MALFORMED / name)
            msg = "NO ERROR (bug)"
        except RerankAlignError as e:
            msg = str(e).replace(str(MALFORMED) + "/", "").replace("|", "\\|")
        print(f"| {i} | `{name}` | {msg} |")

    from rerank_align.data import load_beir, read_run

    policy = REPO / "tests" / "data" / "policy"
    run = read_run(policy / "run_ties.run")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logging.getLogger("rerank_align.data.beir").addHandler(handler)
    load_beir(policy / "qrels_unknown_doc")
    print()
    print("| legal input (tests/data/policy/) | policy |")
    print("|---|---|")
    order = " > ".join(d for d, _ in run["q1"])
    print(f"| `run_ties.run` | accepted; ties ordered by the rank column, then file order: {order} |")
    warning = records[0].replace(str(policy) + "/", "") if records else "(no warning)"
    print(f"| `qrels_unknown_doc/` | accepted and kept; one warning: {warning} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
