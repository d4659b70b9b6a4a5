"""Complete listwise labels: qrels grades with tie-breaking, pointwise and multi-pass listwise teachers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rerank_align.data import read_list_records
from rerank_align.data.beir import Collection
from rerank_align.data.lists import (
    lists_from_qrels,
    lists_from_teacher,
    listwise_teacher_ranking,
    shuffle_candidates,
    write_list_records,
)
from rerank_align.errors import RerankAlignError
from rerank_align.scoring.listwise import ListRanking


def _collection(n=8):
    corpus = {f"d{i}": {"id": f"d{i}", "title": "", "text": f"doc k{i}"} for i in range(n)}
    grades = {"d1": 2, "d3": 1, "d5": 1, "d6": 0}
    return Collection(Path("c"), corpus, {"q": "query"}, {"q": grades}), {
        "q": [(f"d{i}", float(n - i)) for i in range(n)]
    }


def test_qrels_lists_break_ties_by_first_stage_or_teacher(tmp_path):
    col, run = _collection()
    (rec,) = lists_from_qrels(col, run, depth=8)
    assert rec["ranking"] == [1, 3, 5, 0, 2, 4, 6, 7]  # grade, then first-stage order
    assert rec["labels"][1] == 2.0
    teacher = {"q": {"d5": 3.0, "d3": 1.0, "d7": 9.0, "d0": -1.0}}
    (rec,) = lists_from_qrels(col, run, depth=8, teacher_scores=teacher)
    assert rec["ranking"][:4] == [1, 5, 3, 7]  # ties among grade 1 and grade 0 by teacher score
    write_list_records([rec], tmp_path / "l.jsonl")
    assert read_list_records(tmp_path / "l.jsonl")[0]["ranking"] == rec["ranking"]


class _Pointwise:
    def score_pairs(self, queries, docs):
        return np.array([float(d["text"].split("k")[1]) for d in docs])


class _OracleListwise:
    """Sliding windows whose every window is sorted perfectly (higher key first), counting windows."""

    def __init__(self):
        self.calls = 0

    def rank_windows(self, windows, decoding):  # marks it as listwise for lists_from_teacher
        raise AssertionError

    def rank_lists(self, queries, doc_lists, *, strategy, window, stride, decoding=None):
        from rerank_align.scoring.listwise import window_schedule

        docs = doc_lists[0]
        keys = [int(d["text"].split("k")[1]) for d in docs]
        order = list(range(len(docs)))
        for a, b in window_schedule(len(docs), window, stride, strategy):
            self.calls += 1
            order[a:b] = sorted(order[a:b], key=lambda i: -keys[i])
        return [ListRanking(order)]


def test_pointwise_teacher_sorts_all():
    col, run = _collection()
    (rec,) = lists_from_teacher(col, run, _Pointwise(), depth=8)
    assert rec["ranking"] == [7, 6, 5, 4, 3, 2, 1, 0] and "labels" in rec


def test_listwise_teacher_multi_pass_orders_every_position():
    rng = np.random.default_rng(0)
    keys = rng.permutation(45).tolist()
    docs = [{"text": f"doc k{k}"} for k in keys]
    teacher = _OracleListwise()
    order = listwise_teacher_ranking(teacher, "q", docs, window=20, stride=10)
    assert [keys[i] for i in order] == sorted(keys, reverse=True)
    # one single sliding pass would only fix the head
    one = teacher.rank_lists(["q"], [docs], strategy="sliding", window=20, stride=10)[0].order
    assert [keys[i] for i in one][:10] == list(range(44, 34, -1))
    assert [keys[i] for i in one] != sorted(keys, reverse=True)


def test_shuffled_candidates_keep_the_target_and_lose_the_input_order():
    """Every list keeps its target (the same doc at each rank, each label with its doc); over many lists the best
    doc no longer sits first; the same seed gives the same lists."""
    col, run = _collection()
    (rec,) = lists_from_qrels(col, run, depth=8)
    assert rec["ranking"][0] == 1  # d1, graded 2, is the second candidate in first-stage order
    records = [dict(rec, qid=f"q{k}") for k in range(200)]
    shuffled = shuffle_candidates(records, seed=3)
    for before, after in zip(records, shuffled):
        assert [after["docs"][i] for i in after["ranking"]] == [before["docs"][i] for i in before["ranking"]]
        assert sorted(zip(after["docs"], after["labels"]), key=str) == sorted(
            zip(before["docs"], before["labels"]), key=str
        )
    firsts = [r["ranking"][0] for r in shuffled]
    assert (
        len(set(firsts)) == 8 and max(firsts.count(i) for i in range(8)) < 50
    )  # ~25 each, not 200 at one place
    assert shuffle_candidates(records, seed=3) == shuffled and shuffle_candidates(records, seed=4) != shuffled
    assert records[0]["docs"] == rec["docs"]  # the input records are left as they were


def test_drawn_lists_are_distinct_graded_subsets_with_a_relevant_candidate():
    """Lists of ``list_size`` drawn from the top ``depth``: each a distinct subset in first-stage order, holding a
    judged-relevant candidate, ranked by grade within the subset, the same for the same seed."""
    col, run = _collection(12)  # relevant: d1 (2), d3 (1), d5 (1)
    recs = lists_from_qrels(col, run, depth=12, list_size=4, lists_per_query=30, seed=5)
    assert len(recs) == 30
    texts = {d["text"]: i for i, d in enumerate(col.corpus[f"d{i}"] for i in range(12))}
    picks = [tuple(texts[d["text"]] for d in r["docs"]) for r in recs]
    assert len(set(picks)) == 30 and all(list(p) == sorted(p) and len(p) == 4 for p in picks)
    grade = {1: 2.0, 3: 1.0, 5: 1.0}
    for p, r in zip(picks, recs):
        assert r["labels"] == [grade.get(i, 0.0) for i in p] and max(r["labels"]) > 0
        ranked = [p[j] for j in r["ranking"]]
        assert ranked == sorted(p, key=lambda i: (-grade.get(i, 0.0), i))  # grade, then first-stage order
    # draws reach deep candidates, not only the head of the run
    assert {i for p in picks for i in p} == set(range(12))
    assert lists_from_qrels(col, run, depth=12, list_size=4, lists_per_query=30, seed=5) == recs
    assert lists_from_qrels(col, run, depth=12, list_size=4, lists_per_query=30, seed=6) != recs


def test_drawn_lists_need_a_size_below_depth():
    col, run = _collection()
    with pytest.raises(RerankAlignError, match="list_size below depth"):
        lists_from_qrels(col, run, depth=8, list_size=8, lists_per_query=2)
    # a query with fewer candidates than list_size gives its one whole list
    (rec,) = lists_from_qrels(col, run, depth=4, list_size=6)
    assert len(rec["docs"]) == 4
