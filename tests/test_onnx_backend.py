"""The ONNX Runtime backends of encoder cross-encoders against independent scorers of the same weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from rerank_align.errors import RerankAlignError
from rerank_align.scoring import Reranker

QUERIES = ["what causes tides", "vitamin d and bone fractures", "how do vaccines train the immune system"]
DOCS = [
    "The moon's gravity pulls the oceans.",
    "Calcium and vitamin D supplements were given to older women in a randomised trial of hip fractures.",
    "Vaccines expose the immune system to an antigen so that memory cells form.",
    "Tidal pools host many small animals.",
]


@pytest.fixture(scope="module")
def bert(tiny_bert, tmp_path_factory):
    """The tiny BERT with its classifier scaled up: a random head gives nearly equal scores (std ~1e-4), which
    would let a broken graph pass a tolerance check."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("spread") / "bert"
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert))
    with torch.no_grad():
        model.classifier.weight.mul_(300.0)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(out)
    return out


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RERANK_ALIGN_ONNX_CACHE", str(tmp_path / "onnx"))
    return tmp_path / "onnx"


def _pairs():
    return [q for q in QUERIES for _ in DOCS], [d for _ in QUERIES for d in DOCS]


def test_onnx_float32_equals_sentence_transformers_on_the_same_folder(bert, onnx_cache):
    from sentence_transformers import CrossEncoder

    qs, ds = _pairs()
    # limits wide open: sentence-transformers cuts only the pair, so no per-field cut may differ
    limits = {"max_query_length": 512, "max_document_length": 512, "max_length": 512}
    rr = Reranker.from_base(str(bert), kind="head", device="cpu", backend="onnx", batch_size=5, **limits)
    ours = rr.score_pairs(qs, ds)
    # sentence-transformers runs the torch module on its own tokenisation; raw logits (identity activation)
    import torch

    ce = CrossEncoder(str(bert), device="cpu", max_length=512)
    ref = ce.predict(list(zip(qs, ds)), activation_fn=torch.nn.Identity(), show_progress_bar=False)
    assert np.abs(ours - np.asarray(ref)).max() < 1e-4
    # the comparison is not between constants: the score spread (0.024-0.039 over runs; the tiny tokenizer is
    # trained anew each session) is over 50 times the tolerance
    assert np.std(ours) > 0.005
    assert rr.precision == "float32" and rr.backend == "onnx"


def _float_matmul_weights(path):
    import onnx

    graph = onnx.load(str(path)).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    return [shapes[n.input[1]] for n in graph.node if n.op_type == "MatMul" and n.input[1] in shapes]


@pytest.mark.parametrize("backend", ["onnx-int8", "onnx-int8-full"])
def test_int8_graphs_quantise_the_linear_layers_they_say(bert, onnx_cache, backend):
    import onnx
    from transformers import AutoConfig

    qs, ds = _pairs()
    f32 = Reranker.from_base(str(bert), kind="head", device="cpu", backend="onnx").score_pairs(qs, ds)
    rr = Reranker.from_base(str(bert), kind="head", device="cpu", backend=backend)
    q8 = rr.score_pairs(qs, ds)
    (folder,) = [p for p in onnx_cache.iterdir() if not p.name.startswith(".")]
    file = folder / ("model_int8.onnx" if backend == "onnx-int8" else "model_int8_full.onnx")
    ops = {n.op_type for n in onnx.load(str(file)).graph.node}
    assert "DynamicQuantizeLinear" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)
    cfg = AutoConfig.from_pretrained(str(bert))
    h, i = cfg.hidden_size, cfg.intermediate_size
    graph = onnx.load(str(file)).graph
    weights = {t.name for t in graph.initializer}
    # no encoder linear layer is left a float32 MatMul in either (only the split-off outlier products are)
    left = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and n.input[1] in weights and "/encoder/" in n.name
    ]
    assert all("/outliers" in name for name in left) and (backend == "onnx-int8") == bool(left)
    assert _float_matmul_weights(folder / "model.onnx").count((h, i)) == cfg.num_hidden_layers
    assert not np.array_equal(q8, f32)  # really another graph
    # how close int8 ranks to float32 is a property of trained weights, measured on MiniLM in docs/benchmarks.md;
    # on this random model the quantisation noise is as large as the signal
    assert np.isfinite(q8).all()
    assert rr.precision == "int8-dynamic"


def _outlier_products(path):
    """(input channels, output width) of each float32 product of split-off outlier channels (the split writes a
    Gemm; ONNX Runtime's quantiser rewrites Gemms as MatMul + Add)."""
    import onnx

    graph = onnx.load(str(path)).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    return [
        shapes[n.input[1]]
        for n in graph.node
        if n.op_type in ("Gemm", "MatMul") and "/outliers" in n.name and n.input[1] in shapes
    ]


def test_int8_splits_the_outlier_channels_off_in_float32(bert, onnx_cache):
    """onnx-int8 keeps the largest input channels of q/k/v, the up- and the down-projection out of the int8 product
    (LLM.int8-style), not the attention output; onnx-int8-full has no split. The split graph, before quantisation,
    must compute the float32 function exactly: checked by splitting a copy here and running it."""
    import onnx
    import onnxruntime as ort
    from transformers import AutoConfig

    from rerank_align.scoring.onnx_backend import (
        OUTLIER_CHANNELS,
        _calibration_batch,
        _split_outlier_channels,
    )

    rr = Reranker.from_base(str(bert), kind="head", device="cpu", backend="onnx-int8")
    (folder,) = [p for p in onnx_cache.iterdir() if not p.name.startswith(".")]
    cfg = AutoConfig.from_pretrained(str(bert))
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    k = OUTLIER_CHANNELS
    # q, k, v and the down-projection produce hidden-size outputs, the up-projection intermediate-size ones
    assert sorted(_outlier_products(folder / "model_int8.onnx")) == sorted([(k, h)] * 4 * n + [(k, i)] * n)
    assert _outlier_products(folder / "model_int8_full.onnx") == []
    info = json.loads((folder / "onnx.json").read_text())
    assert len(info["quantization"]["onnx_int8_split_layers"]) == 5 * n
    # exactness of the rewrite: split the float32 graph without quantising and compare on fresh pairs
    model = onnx.load(str(folder / "model.onnx"))
    cal = _calibration_batch(rr.encoder)
    names = info["inputs"]
    _split_outlier_channels(model, {k_: cal[k_].numpy() for k_ in names}, cal["attention_mask"].numpy(), k)
    used = {i for n in model.graph.node for i in n.input}
    assert all(t.name in used for t in model.graph.initializer)  # the replaced weights are not shipped twice
    qs, ds = _pairs()
    batch = rr.encoder.collate(rr.encoder.encode(qs, ds))
    feed = {k_: batch[k_].numpy() for k_ in names}
    plain = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"]).run(
        None, feed
    )[0]
    split = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, feed
    )[0]
    assert np.abs(plain - split).max() < 1e-4
    assert np.std(plain) > 0.005


def test_export_is_cached_by_weights_and_reused(bert, onnx_cache, tmp_path):
    from rerank_align_testing.tiny import build_tiny_bert

    Reranker.from_base(str(bert), kind="head", device="cpu", backend="onnx")
    (folder,) = list(onnx_cache.iterdir())
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    Reranker.from_base(str(bert), kind="head", device="cpu", backend="onnx-int8")
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp  # not exported again
    other = build_tiny_bert(tmp_path / "other", seed=1)  # other weights: their own export
    Reranker.from_base(str(other), kind="head", device="cpu", backend="onnx")
    assert len([p for p in onnx_cache.iterdir() if not p.name.startswith(".")]) == 2
    # an export written under an older quantisation recipe is redone, not reused
    meta = folder / "onnx.json"
    info = json.loads(meta.read_text())
    meta.write_text(json.dumps(info | {"recipes": {"onnx-int8": "an older recipe"}}))
    Reranker.from_base(str(bert), kind="head", device="cpu", backend="onnx-int8")
    assert (folder / "model.onnx").stat().st_mtime_ns != stamp
    assert json.loads(meta.read_text())["recipes"] == info["recipes"]


def test_backend_refuses_what_it_cannot_export(bert, onnx_cache):
    with pytest.raises(RerankAlignError, match="unknown backend"):
        Reranker.from_base(str(bert), kind="head", device="cpu", backend="tensorrt")
    from rerank_align_testing.tiny import build_tiny_causal

    causal = build_tiny_causal(onnx_cache.parent / "causal")
    with pytest.raises(RerankAlignError, match="encoder cross-encoders only"):
        Reranker.from_base(str(causal), device="cpu", backend="onnx")


def test_suite_backend_key(tmp_path):
    from rerank_align.evaluation.config import SuiteError, parse_suite

    base = {"collections": [{"name": "c", "path": str(tmp_path)}], "name": "s"}
    ok = parse_suite(
        base | {"systems": [{"name": "r", "type": "base", "path": "x", "backend": "onnx-int8"}]},
        path=tmp_path / "s.yaml",
    )
    assert ok.systems[0].backend == "onnx-int8"
    with pytest.raises(SuiteError, match="backend"):
        parse_suite(base | {"systems": [{"name": "b", "type": "first_stage", "backend": "onnx"}]})


def test_a_lora_adapter_exports_merged_with_the_same_scores(bert, onnx_cache):
    import torch
    from peft import LoraConfig, get_peft_model

    base = Reranker.from_base(str(bert), kind="head", device="cpu")
    peft = get_peft_model(
        base.model, LoraConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"])
    )
    with torch.no_grad():  # a trained-looking adapter: B away from its zero init
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    qs, ds = _pairs()
    torch_scores = Reranker(peft, base.tokenizer, base.contract, device="cpu").score_pairs(qs, ds)
    onnx_scores = Reranker(peft, base.tokenizer, base.contract, device="cpu", backend="onnx").score_pairs(
        qs, ds
    )
    assert np.abs(torch_scores - onnx_scores).max() < 1e-4
    assert hasattr(peft, "peft_config")  # the export merged a copy, not the model itself
