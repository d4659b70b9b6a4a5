"""Print the malformed-input corpus as markdown: input → one-line message → exit status → what was left on disk,
then the output-safety scenarios, the legal "policy" inputs, and the counts per verdict.

    .venv/bin/python scripts/malformed_table.py

Runs every case of tests/test_malformed_inputs.py (CASES: a reader or a command line on each input of
tests/data/malformed) and tests/reliability/test_output_safety.py (SCENARIOS), each in a fresh temporary folder.
Verdict ``refused`` = exit 2, exactly one ``error:`` line, no traceback, nothing created or changed on disk.
"""

from __future__ import annotations

import collections
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    from tests.reliability.test_output_safety import SCENARIOS
    from tests.test_malformed_inputs import CASES, MALFORMED, run_case

    logging.disable(logging.WARNING)  # BOM / pooled-qrels warnings are part of the policy table below
    verdicts: collections.Counter[str] = collections.Counter()
    print("| # | input (tests/data/malformed/) | via | message | exit | left on disk | verdict |")
    print("|---|---|---|---|---|---|---|")
    for i, name in enumerate(sorted(CASES), start=1):
        how = CASES[name][0]
        via = "CLI" if type(how).__name__ == "Cli" else getattr(how, "__name__", "reader")
        with tempfile.TemporaryDirectory() as tmp:
            out = run_case(name, Path(tmp))
        msg = out.message.replace(str(MALFORMED) + "/", "").replace(str(REPO) + "/", "")
        wanted = all(f in out.message for f in CASES[name][1])
        ok = out.rc == 2 and out.lines == 1 and not out.traceback and not out.left and wanted
        verdict = "refused" if ok else "NOT OK"
        verdicts[f"malformed input: {verdict}"] += 1
        left = "nothing" if not out.left else ", ".join(out.left)
        print(f"| {i} | `{name}` | {via} | {_cell(msg)} | {out.rc} | {left} | {verdict} |")

    print()
    print("| # | output scenario | message | exit | on disk | verdict |")
    print("|---|---|---|---|---|---|")
    for i, name in enumerate(sorted(SCENARIOS), start=1):
        fn, fragments = SCENARIOS[name]
        with tempfile.TemporaryDirectory() as tmp:
            res = fn(Path(tmp))
        ok = res.rc == 2 and res.kept and all(f in res.message for f in fragments)
        verdict = "refused" if ok else "NOT OK"
        verdicts[f"output scenario: {verdict}"] += 1
        print(f"| {i} | {_cell(name)} | {_cell(res.message)} | {res.rc} | {res.note} | {verdict} |")

    policy_rows = policies()
    print()
    print("| legal input (tests/data/policy/) | policy |")
    print("|---|---|")
    for name, text in policy_rows:
        verdicts["legal input: accepted as documented"] += 1
        print(f"| `{name}` | {_cell(text)} |")

    print()
    print("| verdict | count |")
    print("|---|---|")
    for k, v in sorted(verdicts.items()):
        print(f"| {k} | {v} |")
    return 0 if not any("NOT OK" in k for k in verdicts) else 1


def policies() -> list[tuple[str, str]]:
    import io
    from contextlib import redirect_stdout

    from rerank_align.data import load_beir, read_run
    from rerank_align.data.records import read_group_records
    from rerank_align.evaluation.config import load_suite
    from rerank_align.evaluation.runner import run_suite
    from rerank_align.mine import main as mine_main

    policy = REPO / "tests" / "data" / "policy"
    rows = []
    run = read_run(policy / "run_ties.run")
    order = " > ".join(d for d, _ in run["q1"])
    rows.append(("run_ties.run", f"accepted; ties ordered by the rank column, then file order: {order}"))
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logging.disable(logging.NOTSET)
    logger = logging.getLogger("rerank_align.data.beir")
    logger.addHandler(handler)
    load_beir(policy / "qrels_unknown_doc")
    logger.removeHandler(handler)
    warning = records[0].replace(str(policy) + "/", "") if records else "(no warning)"
    rows.append(("qrels_unknown_doc/", f"accepted and kept; one warning: {warning}"))
    with tempfile.TemporaryDirectory() as tmp:
        res = run_suite(load_suite(policy / "bom_suite.yaml"), out=Path(tmp) / "e", show_progress=False)
        c = res["collections"]["bom"]
        files = ", ".join(sorted(Path(p).name for p in c["boms_stripped"]))
        rows.append(
            (
                "bom_collection/ (bom_suite.yaml)",
                f"accepted; a byte-order mark stripped from {len(c['boms_stripped'])} files ({files}), listed in "
                f"results.json `boms_stripped` and warned; judged {c['n_queries_judged']}, evaluated "
                f"{c['n_queries_evaluated']}, with candidates {c['n_queries_with_candidates']}, "
                f"{c['n_candidates']} candidates, {c['dropped_unjudged_candidates']} dropped",
            )
        )
        col = policy / "empty_docs_collection"
        out = Path(tmp) / "groups.jsonl"
        buf = io.StringIO()
        with redirect_stdout(buf):
            mine_main([str(col), "--run", str(col / "bm25.run"), "--out", str(out), "--sampling", "top"])
        n = len(read_group_records(out, min_negatives=1))
        said = buf.getvalue().strip().rsplit(" (", 1)[-1].rstrip(")")
        rows.append(
            (
                "empty_docs_collection/ (mine)",
                f"accepted; documents without text are not training documents: {said}; the {n} group written "
                "passes train's validation",
            )
        )
    logging.disable(logging.WARNING)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
