"""List prompts: the contract's strings, exact tokenisation, and the per-passage truncation rule."""

from __future__ import annotations

import pytest

from rerank_align.errors import ContractError
from rerank_align.scoring.listwise_prompt import MIN_PASSAGE_TOKENS, ListPromptBuilder
from rerank_align.scoring.modeling import build_contract


def _builder(tok, **kw):
    c = build_contract(tok, base_model="x", kind="listwise", architecture="causal", **kw)
    return ListPromptBuilder(tok, c)


@pytest.fixture(scope="module")
def tok():
    from rerank_align_testing.tiny import train_causal_tokenizer

    return train_causal_tokenizer()


def test_prompt_is_the_contract_template(tok):
    b = _builder(tok, max_length=2048)
    docs = ["lolo kami", {"title": "mine", "text": "suta"}]
    p = b.build("about kami", docs)
    f = b.fmt
    passages = "".join(
        f.passage_template.replace("{identifier}", f"[{k + 1}]").replace("{document}", d)
        for k, d in enumerate(["lolo kami", "mine\nsuta"])
    )
    expected = (
        f.prompt_template.replace("{n}", "2").replace("{query}", "about kami").replace("{passages}", passages)
    )
    assert tok.decode(p.input_ids) == expected and not p.truncated


def test_truncation_water_fills_long_passages_and_keeps_short_ones(tok):
    long_doc = " ".join(["lolo kami suta"] * 40)
    short = "kami"
    b = _builder(tok, max_length=2048, max_document_length=512)
    full = b.build("q", [long_doc, short, long_doc])
    assert not full.truncated
    limit = len(full.input_ids) + b.answer_reserve(3) - 100
    b = _builder(tok, max_length=limit, max_document_length=512)
    p = b.build("q", [long_doc, short, long_doc])
    assert p.truncated
    assert len(p.input_ids) + b.answer_reserve(3) <= limit
    assert p.passage_tokens[1] == full.passage_tokens[1]  # the short passage keeps every token
    assert p.passage_tokens[0] == p.passage_tokens[2]  # long ones are cut to the same cap
    assert p.passage_tokens[0] >= full.passage_tokens[0] - 50 - 1  # and no more than needed


def test_per_document_cap_and_side(tok):
    b = _builder(
        tok, max_length=4096, max_document_length=5, truncation_side={"query": "right", "document": "left"}
    )
    doc = "lolo kami suta vozu rika pene tazu lolo kami"
    p = b.build("q", [doc, doc])
    assert p.passage_tokens == [5, 5]
    assert tok.decode(p.input_ids).count(tok.decode(tok.encode(doc)[-5:])) == 2


def test_impossible_fit_names_the_needed_length(tok):
    b = _builder(tok, max_length=200)
    with pytest.raises(ContractError, match="raise max_length to at least"):
        b.build("q", ["lolo kami suta"] * 30)
    assert MIN_PASSAGE_TOKENS == 4
