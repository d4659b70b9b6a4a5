"""Inputs that look suspicious but are legal, with their documented policy (docs/reliability.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from rerank_align.data import load_beir, read_run
from rerank_align.evaluation.runner import trec_eval_order

POLICY = Path(__file__).resolve().parents[1] / "data" / "policy"


def test_run_ties_are_legal_and_ordered_by_the_rank_column():
    """TREC runs may tie; candidates are ordered by score, then the run's own rank column, then file order."""
    run = read_run(POLICY / "run_ties.run")
    assert [d for d, _ in run["q1"]] == ["d1", "d2", "d3", "d4"]
    # the evaluator can instead follow trec_eval's tie order (doc id descending) when a suite asks for it
    assert [d for d, _ in trec_eval_order(run["q1"])] == ["d1", "d4", "d3", "d2"]


def test_qrels_naming_unknown_documents_are_kept_and_reported(caplog):
    """Pooled judgments may judge documents outside the shipped corpus: kept (they count in recall), one warning."""
    with caplog.at_level(logging.WARNING, logger="rerank_align.data.beir"):
        col = load_beir(POLICY / "qrels_unknown_doc")
    assert col.qrels["q1"] == {"d1": 2, "d9": 1}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "qrels/test.tsv: 1 judged documents are not in corpus.jsonl (first: 'd9')" in lines[0]


def test_byte_order_marks_are_stripped_and_counted(tmp_path):
    """A UTF-8 BOM (Windows editors) would glue itself to the first id and silently drop that row: stripped,
    and every file it was stripped from is listed in the results."""
    from rerank_align.evaluation.config import load_suite
    from rerank_align.evaluation.runner import run_suite

    res = run_suite(load_suite(POLICY / "bom_suite.yaml"), out=tmp_path / "eval", show_progress=False)
    c = res["collections"]["bom"]
    stripped = sorted(Path(p).name for p in c["boms_stripped"])
    assert stripped == ["bm25.run", "corpus.jsonl", "queries.jsonl", "test.tsv"]
    assert c["n_queries_judged"] == c["n_queries_evaluated"] == c["n_queries_with_candidates"] == 2
    assert c["n_candidates"] == 6 and c["dropped_unjudged_candidates"] == 0
    assert [d for d in res["collections"]["bom"]["per_query"]["first"]["nDCG@10"]] == ["q1", "q2"]


def test_mine_writes_only_groups_that_train_accepts(tmp_path, capsys):
    """Corpus documents without text are legal in a collection but not as training documents: mine leaves them
    out (counted) and the file it writes passes the validation train applies."""
    from rerank_align.data.records import read_group_records
    from rerank_align.mine import main

    col = POLICY / "empty_docs_collection"
    out = tmp_path / "groups.jsonl"
    assert main([str(col), "--run", str(col / "bm25.run"), "--out", str(out), "--sampling", "top"]) == 0
    printed = capsys.readouterr().out
    assert "empty negatives dropped: 2" in printed and "groups skipped empty positive: 1" in printed
    groups = read_group_records(out, min_negatives=1)
    assert len(groups) == 1 and [d["id"] for d in groups[0]["negatives"]] == ["d2", "d3"]
