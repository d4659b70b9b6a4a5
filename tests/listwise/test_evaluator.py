"""The evaluator runs listwise systems end to end and reports how many outputs needed repair."""

from __future__ import annotations

import json

from rerank_align.evaluation.config import load_suite
from rerank_align.evaluation.runner import run_suite
from rerank_align.scoring.listwise import ListwiseRanker


def _suite(tmp_path, task, model):
    p = tmp_path / "suite.yaml"
    contract = "{kind: listwise, max_length: 1024, max_document_length: 48, list_format: {strategy: full}}"
    first = "{kind: listwise, max_length: 1024, list_format: {decoding: first, window: 6, stride: 3}}"
    p.write_text(
        f"""
name: lw
depth: 10
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
