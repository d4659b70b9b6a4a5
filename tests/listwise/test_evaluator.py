"""The evaluator runs listwise systems end to end and reports how many outputs needed repair."""

from __future__ import annotations

import json

from rerank_align.evaluation.config import load_suite
from rerank_align.evaluation.runner import run_suite
from rerank_align.scoring.listwise import ListwiseRanker


def _suite(tmp_path, task, model, depth=10):
    p = tmp_path / f"suite{depth}.yaml"
    contract = "{kind: listwise, max_length: 1024, max_document_length: 48, list_format: {strategy: full}}"
    first = "{kind: listwise, max_length: 1024, list_format: {decoding: first, window: 6, stride: 3}}"
    p.write_text(
        f"""
name: lw
depth: {depth}
metrics: [nDCG@10]
collections:
  - {{name: synth, path: {task}, run: first_stage.run, rel: 1}}
systems:
  - {{name: first_stage, type: first_stage}}
  - {{name: gen, type: base, path: {model}, contract: {contract}}}
  - {{name: first, type: base, path: {model}, contract: {first}}}
baseline: first_stage
significance: {{permutations: 100, bootstrap: 100}}
"""
    )
    return load_suite(p)


def test_listwise_systems_in_the_evaluator(tmp_path, synth_task, tiny_causal, monkeypatch):
    texts = iter(
        ["[2] > [1]", "[1] > [1] > [2]"] * 100
    )  # one output in two is a clean (partial) list → repaired

    def fake_generate(self, windows):
        return [(next(texts), 4) for _ in windows]

    monkeypatch.setattr(ListwiseRanker, "generate", fake_generate)
    res = run_suite(_suite(tmp_path, synth_task, tiny_causal), show_progress=False, out=tmp_path / "o")
    t = res["timing"]["per_system"]
    assert t["gen"]["synth"]["outputs"] == 6 and t["gen"]["synth"]["repaired"] == 6
    assert t["first"]["synth"]["outputs"] == 6 * 3 and t["first"]["synth"]["repaired"] == 0
    col = res["collections"]["synth"]
    assert set(col["metrics"]) == {"first_stage", "gen", "first"}
    assert 0.0 <= col["metrics"]["first"]["nDCG@10"] <= 1.0
    report = (tmp_path / "o" / "report.md").read_text()
    assert "gen · synth: 6 of 6 outputs repaired" in report
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["timing"]["per_system"]["first"]["synth"]["outputs"] == 18


def test_a_rerun_reads_listwise_orders_and_counters_from_the_cache(
    tmp_path, synth_task, tiny_causal, monkeypatch
):
    """Same model, same lists: no model call, the same metrics and repair counters. Another list (a shallower
    depth, so other candidates) is ranked again."""
    texts = iter(["[2] > [1]", "[3] > [1] > [2]"] * 200)
    monkeypatch.setattr(ListwiseRanker, "generate", lambda self, windows: [(next(texts), 4) for _ in windows])
    first = run_suite(_suite(tmp_path, synth_task, tiny_causal), show_progress=False, out=tmp_path / "o")

    def no_model(self, *a, **k):
        raise AssertionError("the model was called for a cached list")

    with monkeypatch.context() as m:
        m.setattr(ListwiseRanker, "rank_lists", no_model)
        again = run_suite(_suite(tmp_path, synth_task, tiny_causal), show_progress=False, out=tmp_path / "o")
    for name in ("gen", "first"):
        a, b = first["timing"]["per_system"][name]["synth"], again["timing"]["per_system"][name]["synth"]
        assert (a["outputs"], a["repaired"]) == (b["outputs"], b["repaired"]) and a["outputs"] > 0
        assert b["cached"] == a["scored"] > 0 and b["scored"] == 0
        assert (
            first["collections"]["synth"]["per_query"][name]
            == again["collections"]["synth"]["per_query"][name]
        )
    shallow = run_suite(
        _suite(tmp_path, synth_task, tiny_causal, depth=6), show_progress=False, out=tmp_path / "o"
    )
    assert shallow["timing"]["per_system"]["gen"]["synth"]["scored"] > 0
