"""The precision policy: ``auto`` resolves from the hardware, everywhere it is used (both machines simulated)."""

from __future__ import annotations

import json

import pytest
import torch

from rerank_align.errors import RecipeError, RerankAlignError
from rerank_align.precision import describe, native_bf16, resolve


@pytest.mark.parametrize(("native", "want"), [("0", "float32"), ("1", "bfloat16")])
def test_auto_resolves_from_the_simulated_capability(monkeypatch, native, want):
    monkeypatch.setenv("RERANK_ALIGN_NATIVE_BF16", native)
    assert resolve("auto", "cpu") == resolve(None, "cpu") == want
    # explicit choices never depend on the machine
    for name in ("float32", "bfloat16", "float16"):
        assert resolve(name, "cpu") == name
    assert resolve(True, "cpu") == "bfloat16" and resolve(False, "cpu") == "float32"
    assert describe("cpu")["native_bf16"] is (native == "1")


def test_probe_reads_the_cpu_flags_when_not_forced(monkeypatch):
    """Without the override, the probe asks torch for AVX512-BF16 / AMX: simulate each CPU kind."""
    monkeypatch.delenv("RERANK_ALIGN_NATIVE_BF16", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert native_bf16("cpu") is False and resolve("auto", "cpu") == "float32"  # AVX2-only EPYC
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bf16("cpu") is True and resolve("auto", "cpu") == "bfloat16"  # Sapphire Rapids (AMX)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert native_bf16("cpu") is True  # Cooper Lake / Zen 4 (AVX512-BF16)
    assert native_bf16("mps") is False  # devices the policy does not know never get bf16 by default


def test_bad_values_are_one_line_errors(monkeypatch):
    with pytest.raises(RerankAlignError, match="unknown precision 'bf17'"):
        resolve("bf17", "cpu")
    monkeypatch.setenv("RERANK_ALIGN_NATIVE_BF16", "yes")
    with pytest.raises(RerankAlignError, match="RERANK_ALIGN_NATIVE_BF16"):
        resolve("auto", "cpu")


@pytest.mark.parametrize(("native", "want"), [("0", (False, "float32")), ("1", (True, "bfloat16"))])
def test_recipe_training_precision(monkeypatch, native, want):
    from rerank_align.train import training_precision

    monkeypatch.setenv("RERANK_ALIGN_NATIVE_BF16", native)
    mixed, name = training_precision({}, "cpu")  # absent = auto
    assert (mixed["bf16"], name) == want and mixed["fp16"] is False
    assert training_precision({"bf16": "auto"}, "cpu")[1] == want[1]
    # explicit booleans are kept whatever the machine
    assert training_precision({"bf16": True}, "cpu") == ({"bf16": True, "fp16": False}, "bfloat16")
    assert training_precision({"bf16": False}, "cpu") == ({"bf16": False, "fp16": False}, "float32")
    assert training_precision({"fp16": True, "bf16": "auto"}, "cpu") == (
        {"bf16": False, "fp16": True},
        "float16",
    )
    with pytest.raises(RecipeError, match="training.fp16"):
        training_precision({"fp16": True, "bf16": True}, "cpu")


def test_recipes_accept_auto_and_reject_other_strings():
    from rerank_align.config import load_recipe

    r = load_recipe("recipes/quickstart/minilm_scifact.yaml", ["training.bf16=auto"])
    assert r.training["bf16"] == "auto"
    with pytest.raises(RecipeError, match="training.bf16"):
        load_recipe("recipes/quickstart/minilm_scifact.yaml", ["training.bf16=bfloat16x"])


@pytest.mark.parametrize("native", ["0", "1"])
def test_eval_system_precision_resolves_and_is_recorded(tiny_bert, monkeypatch, native):
    from rerank_align.evaluation.config import _parse_system
    from rerank_align.evaluation.systems import build_scorer

    monkeypatch.setenv("RERANK_ALIGN_NATIVE_BF16", native)
    spec = _parse_system(
        {"name": "b", "type": "base", "path": str(tiny_bert)}, tiny_bert.parent, "systems[0]"
    )
    assert spec.precision == "auto"
    scorer, info = build_scorer(spec)
    want = "bfloat16" if native == "1" else "float32"
    assert info["precision"] == want and info["precision_requested"] == "auto"
    # bf16 scores never share a cache entry with float32 ones
    assert scorer.fingerprint.endswith("+autocast-bfloat16") == (native == "1")
    forced = _parse_system(
        {"name": "b", "type": "base", "path": str(tiny_bert), "precision": "float32"}, tiny_bert.parent, "s"
    )
    assert build_scorer(forced)[1]["precision"] == "float32"


def test_eval_suite_reads_the_old_autocast_key_and_rejects_bad_values(tiny_bert):
    from rerank_align.evaluation.config import SuiteError, _parse_system

    old = _parse_system(
        {"name": "b", "type": "base", "path": str(tiny_bert), "autocast": "bfloat16"}, tiny_bert.parent, "s"
    )
    assert old.precision == "bfloat16"
    with pytest.raises(SuiteError, match="s.precision"):
        _parse_system(
            {"name": "b", "type": "base", "path": str(tiny_bert), "precision": "fp8"}, tiny_bert.parent, "s"
        )
    with pytest.raises(SuiteError, match="precision"):
        _parse_system({"name": "f", "type": "first_stage", "precision": "float32"}, tiny_bert.parent, "s")


@pytest.mark.parametrize("native", ["0", "1"])
def test_label_biencoder_teacher_follows_the_policy(tmp_path, monkeypatch, capsys, native):
    """`label --precision auto` (the default) encodes in the resolved precision and says which, once."""
    from rerank_align.label import score_teacher

    monkeypatch.setenv("RERANK_ALIGN_NATIVE_BF16", native)
    seen = []
    real = torch.autocast

    def spy(*args, **kwargs):
        seen.append(kwargs.get("dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)

    class FakeST:
        def __init__(self, *a, **k):
            pass

        def encode(self, texts, **k):
            return torch.nn.functional.normalize(torch.randn(len(texts), 4), dim=-1).numpy()

    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeST)
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    out = score_teacher(
        f"biencoder:{model_dir}",
        {"q1": ["d1", "d2"]},
        {"q1": "what"},
        {"d1": {"title": "", "text": "a"}, "d2": {"title": "", "text": "b"}},
        8,
    )
    assert set(out["q1"]) == {"d1", "d2"}
    assert seen == ([torch.bfloat16] if native == "1" else [])
    err = capsys.readouterr().err
    assert f"precision {'bfloat16' if native == '1' else 'float32'}" in err


def test_train_summary_records_the_resolved_precision(tiny_bert, tmp_path, monkeypatch):
    from rerank_align.config import load_recipe
    from rerank_align.train import run

    groups = tmp_path / "g.jsonl"
    groups.write_text(
        "".join(
            json.dumps({"query": f"q{i}", "positives": [f"p{i}"], "negatives": [f"n{i}", f"m{i}"]}) + "\n"
            for i in range(4)
        )
    )
    recipe = load_recipe(
        "recipes/quickstart/minilm_scifact.yaml",
        [
            f"model.name_or_path={tiny_bert}",
            f"data.train_file={groups}",
            "data.beir=null",
            "data.teacher_files=[]",
            "method.loss=infonce",
            "method.group_size=3",
            "training.max_steps=1",
            f"training.output_dir={tmp_path / 'out'}",
            "training.bf16=auto",
        ],
    )
    summary = run(recipe)
    assert summary["precision"] == "float32"  # conftest pins the probe to "no native bf16"
    saved = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert saved["precision"] == "float32"
