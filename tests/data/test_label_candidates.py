"""`rerank-align label --beir ... --run FILE`: which (query, document) pairs get a teacher score."""

from __future__ import annotations

import json

import pytest

from rerank_align.label import main as label_main
from tests.conftest import load_script


def _beir(folder):
    folder.mkdir()
    docs = [{"_id": f"d{i}", "title": "", "text": f"text {i}"} for i in range(6)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": q, "text": f"query {q}"} for q in ("q1", "q2")]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td5\t1\n")


def test_label_scores_the_run_top_depth_plus_judged_and_skips_queries_without_candidates(tmp_path, capsys):
    col = tmp_path / "col"
    _beir(col)
    # q2 is judged but absent from the run: nothing to rank it against, so it is not labelled
    run = tmp_path / "first.run"
    run.write_text("".join(f"q1 Q0 d{i} {i} {5 - i}.0 bm25\n" for i in range(1, 5)))
    out = tmp_path / "teacher.jsonl"
    rc = label_main(
        ["--teacher", f"run:{run}", "--beir", str(col), "--split", "train", "--run", str(run), "--depth", "2"]
        + ["--normalization", "none", "--out", str(out)]
    )
    assert rc in (0, None)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    labelled = {(r["qid"], r["doc_id"]) for r in rows}
    # the run's top-2 (d1, d2) and the judged d0; d3, d4 are below the depth
    assert {q for q, _ in labelled} == {"q1"}
    assert {d for _, d in labelled} == {"d0", "d1", "d2"}
    # d0 is judged but not in the run: it gets q1's lowest run score, and the label step says so
    scores = {r["doc_id"]: r["score"] for r in rows}
    assert scores["d0"] == min(scores["d1"], scores["d2"])
    assert "1 of 3 candidates are not in the run" in capsys.readouterr().err


def test_teacher_agreement_counts_pairs_inside_and_outside_the_run_top(tmp_path):
    """scripts/teacher_agreement.py: the share of (judged, top-depth negative) pairs the teacher orders as the
    qrels do, split by whether the judged document is in the run's top, against counts worked out by hand."""
    ta = load_script("teacher_agreement")
    qrels = {"q": {"a": 1, "z": 2, "n1": 0}}
    run = {"q": [("a", 3.0), ("n1", 2.0), ("n2", 1.0), ("z", 0.5)]}
    # top-3 = a, n1, n2; negatives n1 (judged 0) and n2 (unjudged); z is judged but below the top
    teacher = {"q": {"a": 5.0, "n1": 1.0, "n2": 6.0, "z": 1.0}}
    res = ta.agreement(teacher, qrels, run, depth=3, rel=1)
    # a beats n1, loses to n2; z ties n1 (a tie is not agreement) and loses to n2
    assert res == {"all": (1, 4), "inside": (1, 2), "outside": (0, 2)}


def test_student_teacher_fit_against_hand_counts():
    """scripts/student_teacher_fit.py: KL, pair agreement with the teacher and positive-first share over training
    groups, and Kendall's τ over held-out lists, against values worked out by hand."""
    import math

    fit = load_script("student_teacher_fit")
    # group 1: the student orders all three pairs as the teacher; group 2: it reverses the teacher's one pair
    res = fit.group_fit([([2.0, 1.0, 0.0], [4.0, 2.0, 0.0]), ([0.0, 1.0], [1.0, 0.0])])
    p1 = [math.exp(v) / sum(math.exp(x) for x in (2, 1, 0)) for v in (2, 1, 0)]
    q1 = [math.exp(v) / sum(math.exp(x) for x in (4, 2, 0)) for v in (4, 2, 0)]
    kl1 = sum(p * math.log(p / q) for p, q in zip(p1, q1))
    p2, q2 = [1 / (1 + math.e), math.e / (1 + math.e)], [math.e / (1 + math.e), 1 / (1 + math.e)]
    kl2 = sum(p * math.log(p / q) for p, q in zip(p2, q2))
    assert res["kl"] == pytest.approx((kl1 + kl2) / 2)
    assert res["pairs_as_teacher"] == pytest.approx(3 / 4) and res["positive_first"] == pytest.approx(3 / 3)
    assert (
        fit.group_fit([([1.0, 1.0], [2.0, 1.0])])["pairs_as_teacher"] == 0
    )  # a teacher tie is not agreement
    # τ: identical order 1, reversed -1; mean 0
    assert fit.heldout_tau([([3, 2, 1], [9, 5, 1]), ([3, 2, 1], [1, 5, 9])]) == pytest.approx(0.0)
