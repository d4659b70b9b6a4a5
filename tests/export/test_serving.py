"""Exports other stacks read as they are, checked against those stacks' own reading (re-implemented here from their
code, never from rerank_align's):

- vLLM's score API (``get_score_prompt`` in vllm/entrypoints/pooling/scoring/io_processor.py): with a score template
  (``vllm serve --chat-template FILE``) the messages ``[{"role": "query"}, {"role": "document"}]`` are rendered and the
  string is tokenised whole (``tokenizer(full_prompt, **encode_kwargs)``); without one, ``use_sep_token`` (config.json)
  true gives ``tokenizer(text=q, text_pair=d)``, false gives ``tokenizer(text=q + d)``. The classifier's logit is then
  read at the last token (Qwen3ForSequenceClassification's own pooling).
- sentence-transformers 6.3 ``CrossEncoder(path)`` itself (installed).
- plain transformers with the official prompt code (Qwen3-Reranker's model card, FlagEmbedding's get_inputs).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from official_prompts import (
    BGE_PROMPT,
    PAIRS,
    bge_official_ids,
    qwen3_official_ids,
    vllm_prompt_ids,
    whole_string_ids,
)

from rerank_align.export import export as export_mod
from rerank_align.export import merge as merge_mod
from rerank_align.scoring import Reranker

from .conftest import make_adapter

Q = [q for q, _ in PAIRS]
D = [d for _, d in PAIRS]
TEMPLATES = {
    "qwen3": dict(template="qwen3"),
    "bge-gemma": dict(template="bge-gemma"),
    "plain": dict(template="plain", formula="logit_diff"),
    "custom": dict(template="Q={query} | D={document} ->", formula="yes_logit"),
}


def seq_cls_logits(path, rows):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()
    out = []
    for ids in rows:
        with torch.no_grad():
            out.append(model(input_ids=torch.tensor([ids])).logits[0, 0].item())
    return np.asarray(out)


def official_ids(name, tok, contract_dict):
    if name == "qwen3":
        return qwen3_official_ids(tok, PAIRS, 8192)
    if name == "bge-gemma":
        return bge_official_ids(tok, PAIRS, 1024)
    return whole_string_ids(tok, contract_dict["template"], PAIRS)


@pytest.fixture(scope="module")
def exported(tiny_causal, tiny_qwen2, tmp_path_factory):
    """A seq-cls export per template, from a yes/no reranker with perturbed weights (a merged LoRA)."""
    out = {}
    for name, fields in TEMPLATES.items():
        base = tiny_qwen2 if name == "custom" else tiny_causal
        root = tmp_path_factory.mktemp(f"serving_{name}")
        adapter = make_adapter(base, root / "adapter", **fields)
        merge_mod.merge(adapter, root / "merged")
        export_mod.to_seq_cls(root / "merged", root / "seqcls")
        out[name] = (root / "merged", root / "seqcls")
    return out


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_seq_cls_export_is_read_as_is_by_vllm_st_and_transformers(exported, name):
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    merged, seqcls = exported[name]
    cfg = json.loads((seqcls / "config.json").read_text())
    assert cfg["use_sep_token"] is False
    template = (seqcls / "chat_template.jinja").read_text()
    contract = json.loads((seqcls / "reranker.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(seqcls))

    # ids: Reranker == the official construction == vLLM's reading with the folder's template
    rr = Reranker.from_pretrained(seqcls)
    ours = [f["input_ids"] for f in rr.encoder.encode(Q, D)]
    assert ours == official_ids(name, tok, contract)
    vllm = [vllm_prompt_ids(seqcls, q, d, template) for q, d in PAIRS]
    assert vllm == ours
    # the rendered template keeps every character, the final newlines of Qwen3's think block included
    text = tok.apply_chat_template(
        [{"role": "query", "content": "q"}, {"role": "document", "content": "d"}],
        chat_template=template,
        tokenize=False,
    )
    assert text == contract["template"].replace("{query}", "q").replace("{document}", "d")

    # scores: Reranker (source yes/no and seq-cls), vLLM's reading, CrossEncoder, transformers + official ids
    want = rr.score_pairs(Q, D).astype("float64")
    got_vllm = seq_cls_logits(seqcls, vllm)
    got_official = seq_cls_logits(seqcls, official_ids(name, tok, contract))
    ce = CrossEncoder(str(seqcls), device="cpu", model_kwargs={"dtype": torch.float32})
    got_ce = ce.predict(PAIRS, batch_size=4, convert_to_numpy=True).astype("float64")
    source = Reranker.from_pretrained(merged).score_pairs(Q, D).astype("float64")
    transform = json.loads((seqcls / "export.json").read_text())["score_transform"]
    want_source = -np.logaddexp(0.0, -want) if transform != "identity" else want  # log p(yes) = −softplus(−d)
    for got in (got_vllm, got_official, got_ce):
        assert np.abs(got - want).max() <= 1e-4
    assert np.abs(want_source - source).max() <= 1e-4


def test_without_the_export_files_vllm_scores_another_input(exported):
    """What the two files fix: without the template and with vLLM's default use_sep_token, the prompt is lost."""
    _, seqcls = exported["qwen3"]
    rr = Reranker.from_pretrained(seqcls)
    ours = rr.encoder.encode(Q[:1], D[:1])[0]["input_ids"]
    cfg = json.loads((seqcls / "config.json").read_text())
    cfg.pop("use_sep_token")
    (seqcls / "config.json").write_text(json.dumps(cfg))
    try:
        assert vllm_prompt_ids(seqcls, *PAIRS[0]) != ours
    finally:
        cfg["use_sep_token"] = False
        (seqcls / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_merged_yesno_folder_loads_in_sentence_transformers(exported, name):
    """Transformer + LogitScore with the folder's answer tokens and formula: the same scores as Reranker."""
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.modules.logit_score import LogitScore

    merged, _ = exported[name]
    ce = CrossEncoder(str(merged), device="cpu", model_kwargs={"dtype": torch.float32})
    assert isinstance(ce[1], LogitScore)
    rj = json.loads((merged / "reranker.json").read_text())
    assert ce[1].true_token_id == rj["answer_token_ids"]["yes"]
    got = ce.predict(PAIRS, batch_size=4, convert_to_numpy=True).astype("float64")
    want = Reranker.from_pretrained(merged).score_pairs(Q, D).astype("float64")
    assert np.abs(got - want).max() <= 1e-4
    report = json.loads((merged / "merge_report.json").read_text())
    assert any("CrossEncoder" in c["name"] and c["ok"] for c in report["parity"]["checks"])


def test_log_softmax_yes_seq_cls_maps_back_to_the_model_card_probability(exported, tiny_causal):
    """Qwen3's score is p(yes) over {yes, no}: sigmoid of the exported logit, as vLLM's score API reports it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged, seqcls = exported["qwen3"]
    tok = AutoTokenizer.from_pretrained(str(merged))
    ids = qwen3_official_ids(tok, PAIRS, 8192)
    causal = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval()
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    p_yes = []
    for row in ids:
        with torch.no_grad():
            z = causal(input_ids=torch.tensor([row])).logits[0, -1]
        p_yes.append(torch.softmax(torch.stack([z[no], z[yes]]), 0)[1].item())
    d = seq_cls_logits(seqcls, ids)
    assert np.abs(1 / (1 + np.exp(-d)) - np.asarray(p_yes)).max() <= 1e-5


def test_bge_prompt_constant_is_the_preset_instruction():
    from rerank_align.scoring.templates import PRESETS

    assert PRESETS["bge-gemma"].default_instruction == BGE_PROMPT


def test_chat_template_keeps_every_character(tiny_causal):
    """Quotes, backslashes, braces, non-ASCII text, Jinja-like text and trailing newlines survive the rendering."""
    from transformers import AutoTokenizer

    from rerank_align.export.serving import chat_template

    tok = AutoTokenizer.from_pretrained(str(tiny_causal))
    template = 'Frage «{query}» \\ "{{x}}" {% if %} é\t→ {document}\n\n'
    text = tok.apply_chat_template(
        [{"role": "query", "content": "q ü"}, {"role": "document", "content": "d {x}"}],
        chat_template=chat_template(template),
        tokenize=False,
    )
    assert text == template.replace("{query}", "q ü").replace("{document}", "d {x}")
