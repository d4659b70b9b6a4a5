"""The scoring contract: training-time scores == Reranker.from_pretrained(saved).score(), for every kind."""

from __future__ import annotations

import json

import pytest
import torch

from rerank_align.errors import ContractError
from rerank_align.scoring import PairEncoder, Reranker, ScoringContract, build_contract, score_forward
from rerank_align.scoring.modeling import load_model, load_tokenizer
from rerank_align.scoring.templates import PRESETS

QUERY = "kalomi suta"
DOCS = [
    "kalomi vota ripe suta kalomi",
    {"title": "Tides", "text": "the moon pulls water " * 30},
    {"title": "", "text": "zuga fine"},
    "short",
    {"title": "only a title", "text": ""},
]

CASES = {
    "yesno-qwen3": ("tiny_causal", dict(kind="yesno", template="qwen3")),
    "yesno-bge-gemma": ("tiny_causal", dict(kind="yesno", template="bge-gemma")),
    "yesno-plain": ("tiny_causal", dict(kind="yesno", template="plain", formula="logit_diff")),
    "yesno-custom": (
        "tiny_qwen2",
        dict(kind="yesno", template="Q={query} | D={document} ->", formula="yes_logit"),
    ),
    "head-causal": ("tiny_causal", dict(kind="head", template="plain")),
    "head-encoder": ("tiny_bert", dict(kind="head")),
}


def _setup(request, name):
    fixture, fields = CASES[name]
    base = request.getfixturevalue(fixture)
    arch = "encoder" if fixture == "tiny_bert" else "causal"
    tok = load_tokenizer(str(base))
    contract = build_contract(
        tok,
        base_model=str(base),
        architecture=arch,
        max_query_length=8,
        max_document_length=24,
        max_length=96,
        **fields,
    )
    torch.manual_seed(0)
    model = load_model(str(base), contract)
    return model, tok, contract


def _training_path_scores(model, tok, contract, padding_side):
    """What the score trainer does: encode the group, collate it as one batch, score_forward (eval mode)."""
    c = ScoringContract.from_dict({**contract.to_dict(), "padding_side": padding_side})
    enc = PairEncoder(tok, c)
    batch = enc.collate(enc.encode([QUERY] * len(DOCS), DOCS))
    model.eval()
    with torch.no_grad():
        return score_forward(model, contract, batch).scores


@pytest.mark.parametrize("name", list(CASES))
def test_train_and_serve_scores_identical(request, tmp_path, name):
    model, tok, contract = _setup(request, name)
    train_scores = _training_path_scores(model, tok, contract, "right")
    if contract.architecture != "encoder":  # causal positions come from the mask: padding side cannot matter
        train_scores_left = _training_path_scores(model, tok, contract, "left")
        torch.testing.assert_close(train_scores, train_scores_left, atol=1e-6, rtol=0)

    Reranker(model, tok, contract).save_pretrained(tmp_path / "saved")
    for batch_size in (1, 2, 7):
        rr = Reranker.from_pretrained(tmp_path / "saved", batch_size=batch_size)
        served = torch.tensor(rr.score(QUERY, DOCS))
        assert torch.max(torch.abs(served - train_scores)).item() <= 1e-6, (name, batch_size)
    assert json.loads((tmp_path / "saved" / "reranker.json").read_text())["kind"] == contract.kind


def test_yesno_never_computes_the_full_vocabulary(request):
    model, tok, contract = _setup(request, "yesno-qwen3")

    def boom(*a, **k):
        raise AssertionError("lm_head over the full vocabulary was called")

    model.get_output_embeddings().forward = boom
    rr = Reranker(model, tok, contract)
    assert len(rr.score(QUERY, DOCS)) == len(DOCS)


def test_formulas_match_their_definitions(request):
    model, tok, contract = _setup(request, "yesno-plain")
    enc = PairEncoder(tok, contract)
    batch = enc.collate(enc.encode([QUERY] * 2, DOCS[:2]))
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits  # full vocabulary, the naive way
    last = batch["attention_mask"].sum(-1) - 1
    full = logits[torch.arange(2), last]
    y, n = full[:, contract.answer_token_ids["yes"]], full[:, contract.answer_token_ids["no"]]
    expected = {
        "logit_diff": y - n,
        "log_softmax_yes": torch.log_softmax(torch.stack([y, n], -1), -1)[:, 0],
        "yes_logit": y,
    }
    for formula, want in expected.items():
        c = ScoringContract.from_dict({**contract.to_dict(), "formula": formula})
        with torch.no_grad():
            got = score_forward(model, c, batch).scores
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_reranker_json_stores_every_string_literally(request):
    _, tok, contract = _setup(request, "yesno-qwen3")
    d = contract.to_dict()
    preset = PRESETS["qwen3"]
    assert d["template"] == preset.template.replace("{instruction}", preset.default_instruction)
    assert "<think>\n\n</think>\n\n" in d["template"]
    assert d["answer_tokens"] == {"yes": "yes", "no": "no"}
    assert d["answer_token_ids"] == {
        k: tok.encode(v, add_special_tokens=False)[0] for k, v in d["answer_tokens"].items()
    }
    assert d["formula"] == "log_softmax_yes" and "logsumexp" in d["formula_text"]
    gemma = build_contract(tok, base_model="x", kind="yesno", architecture="causal", template="bge-gemma")
    assert gemma.template.startswith(tok.bos_token + "A: ") and gemma.formula == "yes_logit"
    assert gemma.answer_tokens["yes"] == "Yes"


def test_truncation_per_field_and_template_suffix_kept(request):
    _, tok, contract = _setup(request, "yesno-qwen3")
    enc = PairEncoder(tok, contract)
    long_doc = "kalomi " * 500
    (feat,) = enc.encode(["suta " * 100], [long_doc])
    suffix = tok.encode(
        "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", add_special_tokens=False
    )
    assert feat["input_ids"][-len(suffix) :] == suffix
    assert len(feat["input_ids"]) <= contract.max_length


def test_tokenizer_mismatch_is_refused(request, tiny_bert, tmp_path):
    model, tok, contract = _setup(request, "yesno-plain")
    Reranker(model, tok, contract).save_pretrained(tmp_path / "m")
    data = json.loads((tmp_path / "m" / "reranker.json").read_text())
    data["answer_token_ids"]["yes"] += 1
    (tmp_path / "m" / "reranker.json").write_text(json.dumps(data))
    with pytest.raises(ContractError, match="answer token yes"):
        Reranker.from_pretrained(tmp_path / "m")


def test_rerank_orders_and_breaks_ties_by_input_order(request):
    model, tok, contract = _setup(request, "head-encoder")
    rr = Reranker(model, tok, contract)
    ranked = rr.rerank(QUERY, ["same", "same", "other"], top_k=3)
    assert [i for i, _ in ranked if ranked[0][1] == _] == sorted(i for i, s in ranked if s == ranked[0][1])
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)


def test_contract_rejects_contradictions():
    with pytest.raises(ContractError, match="architecture"):
        ScoringContract(kind="yesno", architecture="encoder", base_model="x", template="{query}{document}")
    with pytest.raises(ContractError, match="unknown keys"):
        ScoringContract.from_dict(
            {"kind": "head", "architecture": "encoder", "base_model": "x", "formula": "head", "extra": 1}
        )


def test_segments_are_stored_literally_and_checked(request):
    _, tok, contract = _setup(request, "yesno-qwen3")
    d = contract.to_dict()
    assert d["version"] == 2 and "".join(d["segments"]) == d["template"]
    assert d["segments"][0].endswith("<|im_start|>user\n") and d["segments"][2].startswith("<|im_end|>")
    gemma = build_contract(tok, base_model="x", kind="yesno", architecture="causal", template="bge-gemma")
    assert gemma.segments[:3] == [tok.bos_token, "A: {query}", "\n"]
    plain = build_contract(tok, base_model="x", kind="yesno", architecture="causal", template="plain")
    assert plain.segments is None and "segments" not in plain.to_dict()  # the whole prompt is one string
    with pytest.raises(ContractError, match="concatenate"):
        ScoringContract.from_dict({**d, "segments": [*d["segments"][:2], "x"]})
    with pytest.raises(ContractError, match="whole inside one segment"):
        t = d["template"]
        i = t.index("{query}") + 3
        ScoringContract.from_dict({**d, "segments": [t[:i], t[i:]]})


def test_version_1_contracts_keep_their_per_piece_ids(request, tmp_path):
    """A reranker.json written before whole-string tokenisation scores with the ids its model was trained on:
    every literal piece and every field tokenised alone."""
    model, tok, contract = _setup(request, "yesno-qwen3")
    old = {k: v for k, v in contract.to_dict().items() if k != "segments"}
    old.update(version=1, max_length=512)  # nothing cut: the ids are the pieces' ids
    c1 = ScoringContract.from_dict(old)
    (feat,) = PairEncoder(tok, c1).encode([QUERY], ["kalomi vota"])
    t = c1.template
    a, rest = t.split("{query}")
    b, c = rest.split("{document}")
    pieces = [tok.encode(x, add_special_tokens=False) for x in (a, QUERY, b, "kalomi vota", c)]
    assert feat["input_ids"] == [i for p in pieces for i in p]
    Reranker(model, tok, c1).save_pretrained(tmp_path / "v1")
    assert json.loads((tmp_path / "v1" / "reranker.json").read_text())["version"] == 1
    assert Reranker.from_pretrained(tmp_path / "v1").encoder.encode([QUERY], ["kalomi vota"])[0] == feat
