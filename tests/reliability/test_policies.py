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
