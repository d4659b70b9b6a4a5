"""The evaluator end to end on a generated collection with fake scorers (no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rerank_align.evaluation.cli import main
from rerank_align.evaluation.config import load_suite
from rerank_align.evaluation.runner import run_suite
from rerank_align.evaluation.systems import LexicalOverlapScorer, Scorer


class ConstantScorer:
    """Every pair scores the same: the final order must be the first-stage order."""

    name = "const"
    fingerprint = "const-v1"

    def score_pairs(self, queries, docs):
        return np.zeros(len(queries))


class ReverseScorer:
    """Scores by doc id (descending alphabetical) so the order differs from the first stage."""

    name = "rev"
    fingerprint = "rev-v1"

    def __init__(self, fail_after: int | None = None):
        self.calls, self.pairs, self.fail_after = 0, 0, fail_after

    def score_pairs(self, queries, docs):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("interrupted")
        self.pairs += len(docs)
        return np.array([-int(d["id"].lstrip("dq")) for d in docs], dtype=float)


def test_scorer_protocol():
    assert isinstance(LexicalOverlapScorer(), Scorer)
    assert isinstance(ReverseScorer(), Scorer)


def test_end_to_end_outputs(synth_suite, tmp_path):
    suite = load_suite(synth_suite)
    res = run_suite(suite, show_progress=False, out=tmp_path / "o")
    out = tmp_path / "o"
    for f in (
        "results.json",
        "report.md",
        "plots/nDCG_10_per_collection.png",
        "plots/nDCG_10_delta_per_query.png",
    ):
        assert (out / f).is_file(), f
    assert (out / "runs" / "synth" / "lex.run").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["systems"]["lex"]["fingerprint"] == "lexical-overlap-v1"
    assert set(saved["versions"]) >= {"torch", "ir_measures", "pytrec_eval"}
    assert "commit" in saved["git"]
    c = res["collections"]["synth"]
    assert set(c["metrics"]["lex"]) == {"nDCG@10", "RR@10", "R@10", "R@100", "AP", "judged@10"}
    sig = c["significance"]["lex"]["nDCG@10"]
    assert sig["wins"] + sig["ties"] + sig["losses"] == c["n_queries"] == 12
    assert 0 < sig["p_perm"] <= 1 and sig["p_perm_holm"] >= sig["p_perm"]
    assert "lex" in (out / "report.md").read_text()


def test_ties_fall_back_on_first_stage_order(synth_suite, tmp_path):
    from rerank_align.evaluation.runner import prepare_collection

    suite = load_suite(synth_suite, ["systems.1.type=lexical", "systems.1.name=const"])
    res = run_suite(suite, scorers={"const": ConstantScorer()}, show_progress=False, write=False)
    c = res["collections"]["synth"]
    assert c["per_query"]["const"] == c["per_query"]["first"]
    prep = prepare_collection(suite.collections[0], suite)
    # the first-stage order is trec_eval's: score descending, equal scores by doc id descending
    for cands in prep.run.values():
        for (d1, s1), (d2, s2) in zip(cands, cands[1:]):
            assert s1 > s2 or (s1 == s2 and d1 > d2)


def test_never_injects_unretrieved_judged_docs(synth_suite, tmp_path):
    suite = load_suite(synth_suite)
    run_suite(suite, scorers={"lex": ReverseScorer()}, show_progress=False, out=tmp_path / "o")
    from rerank_align.data.beir import read_qrels, read_run

    cands = read_run(suite.collections[0].path / "bm25_top100.run")
    reranked = read_run(tmp_path / "o" / "runs" / "synth" / "lex.run")
    qrels = read_qrels(suite.collections[0].path / "qrels" / "test.tsv")
    for q, docs in reranked.items():
        assert {d for d, _ in docs} <= {d for d, _ in cands[q]}
        assert any(
            d not in {x for x, _ in cands[q]} for d in qrels[q]
        )  # a judged doc exists that was not retrieved
    # R@100 cannot exceed the first stage's: reranking a fixed candidate set never adds recall
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert (
        res["collections"]["synth"]["metrics"]["lex"]["R@100"]
        == res["collections"]["synth"]["metrics"]["first"]["R@100"]
    )


def test_self_hit_dropped_only_when_the_doc_is_the_query(synth_suite):
    res = run_suite(load_suite(synth_suite), show_progress=False, write=False)
    assert res["collections"]["synth"]["dropped_self_hits"] == 1
    res = run_suite(
        load_suite(synth_suite, ["collections.synth.drop_self_hits=never"]), show_progress=False, write=False
    )
    assert res["collections"]["synth"]["dropped_self_hits"] == 0


def test_cache_makes_a_rerun_free_and_survives_an_interruption(synth_suite, tmp_path, monkeypatch):
    import rerank_align.evaluation.runner as runner

    monkeypatch.setattr(runner, "CHUNK_PAIRS", 50)
    suite = load_suite(synth_suite, ["depth=20"])
    out = tmp_path / "o"
    # interrupted after the first chunk: what was scored is committed
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, scorers={"lex": ReverseScorer(fail_after=1)}, show_progress=False, out=out)
    partial = ReverseScorer()
    first = run_suite(suite, scorers={"lex": partial}, show_progress=False, out=out)
    total = first["collections"]["synth"]["n_candidates"]  # depth 20 = the whole run here
    assert 0 < partial.pairs < total  # resumed: only the pairs missing after the interruption
    again = ReverseScorer()
    second = run_suite(suite, scorers={"lex": again}, show_progress=False, out=out)
    assert again.calls == 0
    assert second["collections"]["synth"]["per_query"] == first["collections"]["synth"]["per_query"]
    assert second["timing"]["per_system"]["lex"]["synth"]["scored"] == 0
    fresh = ReverseScorer()
    third = run_suite(suite, scorers={"lex": fresh}, show_progress=False, write=False, use_cache=False)
    assert fresh.pairs == total
    assert third["collections"]["synth"]["per_query"] == first["collections"]["synth"]["per_query"]


def test_limit_queries_and_depth(synth_suite):
    res = run_suite(load_suite(synth_suite, ["depth=5"]), limit_queries=3, show_progress=False, write=False)
    c = res["collections"]["synth"]
    assert c["n_queries"] == 3 and c["depth"] == 5
    assert (
        c["metrics"]["lex"]["R@100"] == c["metrics"]["first"]["R@100"]
    )  # below depth: first-stage order kept


def test_cli(synth_suite, tmp_path, capsys):
    assert (
        main(
            [
                str(synth_suite),
                "--out",
                str(tmp_path / "c"),
                "--no-progress",
                "--limit-queries",
                "4",
                "depth=10",
            ]
        )
        == 0
    )
    assert "synth" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "results.json").read_text())["collections"]["synth"]["n_queries"] == 4
    assert main([str(synth_suite), "dept=10"]) == 2
    err = capsys.readouterr().err
    assert "dept" in err and "did you mean 'depth'" in err
    assert main([str(synth_suite), "--systems", "nope"]) == 2
    # an override after the system names is an override, not a system
    out_d = tmp_path / "d"
    assert main([str(synth_suite), "--out", str(out_d), "--no-progress", "--systems", "lex", "depth=7"]) == 0
    res_d = json.loads((out_d / "results.json").read_text())
    assert res_d["collections"]["synth"]["depth"] == 7 and "lex" in res_d["systems"]
    assert not any("=" in name for name in res_d["systems"])
    # ... kept whole when its value holds commas (a system replaced by a flow mapping)
    out_e = tmp_path / "e"
    swap = "systems.1={name: lex2, type: lexical}"
    assert (
        main([str(synth_suite), "--out", str(out_e), "--no-progress", "--systems", "first,lex2", swap]) == 0
    )
    assert set(json.loads((out_e / "results.json").read_text())["systems"]) == {"first", "lex2"}


def test_bm25s_first_stage_when_no_run(synth_suite):
    res = run_suite(load_suite(synth_suite, ["collections.synth.run=null"]), show_progress=False, write=False)
    c = res["collections"]["synth"]
    assert c["run"].startswith("bm25s") and c["n_queries_with_candidates"] > 0


def test_cross_encoder_system(synth_suite, tmp_path):
    from rerank_align_testing.tiny import build_tiny_bert

    tiny = build_tiny_bert(tmp_path / "ce")
    suite = load_suite(synth_suite, [f"systems.1={{name: ce, type: cross_encoder, path: {tiny}}}"])
    res = run_suite(suite, show_progress=False, write=False, use_cache=False, limit_queries=3)
    assert res["systems"]["ce"]["fingerprint"] and res["collections"]["synth"]["metrics"]["ce"]["R@100"] >= 0


def test_fuse_formula_by_hand():
    from rerank_align.evaluation.runner import fuse

    # reranker [1, 2, 3]: z = [-1.2247, 0, 1.2247]; first stage [3, 3, 0]: mean 2, sd sqrt(2), z = [0.7071, 0.7071, -1.4142]
    got = fuse([1.0, 2.0, 3.0], [3.0, 3.0, 0.0], 0.25)
    zr, zf = [-(1.5**0.5), 0.0, 1.5**0.5], [0.5**0.5, 0.5**0.5, -(2**0.5)]
    assert got == pytest.approx([0.25 * a + 0.75 * b for a, b in zip(zr, zf)], abs=1e-12)
    assert fuse([5.0, 5.0], [2.0, 1.0], 0.9) == pytest.approx(
        [0.1, -0.1]
    )  # constant reranker: first stage decides


def test_fuse_first_stage_interpolates_between_the_two_orders(synth_suite):
    base = ["systems.1.type=reranker", "systems.1.name=rev", "systems.1.path=unused"]
    orders = {}
    for w in (0.0, 0.5, 1.0):
        suite = load_suite(synth_suite, [*base, f"systems.1.fuse_first_stage={w}"])
        res = run_suite(suite, scorers={"rev": ReverseScorer()}, show_progress=False, write=False)
        c = res["collections"]["synth"]
        orders[w] = c["per_query"]["rev"]
        if w == 0.0:
            assert c["per_query"]["rev"] == c["per_query"]["first"]  # w = 0 is the first stage
        assert res["systems"]["rev"]["fuse_first_stage"] == w
    plain = load_suite(synth_suite, base)
    res = run_suite(plain, scorers={"rev": ReverseScorer()}, show_progress=False, write=False)
    assert res["collections"]["synth"]["per_query"]["rev"] == orders[1.0]  # w = 1 is the reranker alone
    assert orders[0.5] != orders[0.0] and orders[0.5] != orders[1.0]


@pytest.mark.parametrize(
    "override, message",
    [
        ("systems.0.fuse_first_stage=0.5", "applies to reranker"),
        ("systems.1.fuse_first_stage=1.5", "above the maximum 1"),
    ],
)
def test_fuse_first_stage_is_validated(synth_suite, override, message):
    from rerank_align.evaluation.config import SuiteError

    with pytest.raises(SuiteError, match=message):
        load_suite(synth_suite, ["systems.1.type=reranker", "systems.1.path=unused", override])
