"""A tokenizer that splits identifiers into several tokens (``[12]`` → ``[``, ``1``, ``2``, ``]``): the fullrank
token weights still follow the identifiers' characters, and FIRST reads the right logits (or refuses)."""

from __future__ import annotations

import pytest
import torch

from rerank_align.errors import ContractError
from rerank_align.losses.token_weights import rank_weight
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.training.listwise_trainer import ListwiseCollator, listwise_examples, listwise_loss

from .conftest import listwise_reranker


def _record(n):
    docs = [
        f"about {w}"
        for w in [
            "tarizu",
            "pelo",
            "kami",
            "suta",
            "lolo",
            "mine",
            "vozu",
            "rika",
            "pene",
            "tazu",
            "gane",
            "fifi",
        ][:n]
    ]
    ranking = list(range(n))[::-1]
    return {"query": "about tarizu", "docs": docs, "ranking": ranking}


def test_fullrank_weights_follow_identifier_characters(digit_model):
    rr = listwise_reranker(digit_model)
    b = ListPromptBuilder(rr.tokenizer, rr.contract)
    rec = _record(12)
    (ex,) = listwise_examples([rec], b, "fullrank")
    start = next(i for i, x in enumerate(ex["labels"]) if x != -100)
    toks = rr.tokenizer.convert_ids_to_tokens(ex["input_ids"][start:])
    w = ex["weights"][start:]
    # "[12] > [11] > ..." : the 4 tokens of [12] carry rank 1's weight, the 4 of [11] rank 2's, ">" weight 1
    assert toks[:10] == ["[", "1", "2", "]", ">", "[", "1", "1", "]", ">"]
    assert w[:4] == pytest.approx([rank_weight(1)] * 4)
    assert w[4] == 1.0
    assert w[5:9] == pytest.approx([rank_weight(2)] * 4)
    # a one-digit identifier at rank 12 is three tokens with rank 12's weight; eos weighs 1
    assert toks[-4:] == ["[", "1", "]", "<eos>"]
    assert w[-4:] == pytest.approx([rank_weight(12)] * 3 + [1.0])
    assert all(x == 0.0 for x in ex["weights"][:start])


def test_first_refuses_numbers_it_cannot_tell_apart(digit_model):
    rr = listwise_reranker(digit_model)
    b = ListPromptBuilder(rr.tokenizer, rr.contract)
    with pytest.raises(ContractError, match="distinct first token"):
        listwise_examples([_record(12)], b, "first")


def test_first_logits_training_equals_inference_equals_reference(digit_model):
    rr = listwise_reranker(digit_model, identifier="[{a}]", decoding="first")
    b = ListPromptBuilder(rr.tokenizer, rr.contract)
    recs = [_record(12), _record(5)]
    exs = listwise_examples(recs, b, "first")
    batch = ListwiseCollator(rr.tokenizer.pad_token_id)(exs)
    with torch.no_grad():
        _, parts = listwise_loss(rr.model, batch, method="first")
    infer = rr.listwise.first_logits([(r["query"], r["docs"]) for r in recs])
    letters = rr.tokenizer.convert_tokens_to_ids(list("ABCDEFGHIJKL"))
    bracket = rr.tokenizer.convert_tokens_to_ids("[")
    for k, r in enumerate(recs):
        n = len(r["docs"])
        # reference: a plain full forward over prompt + "[", logits of the letters at the last position
        ids = torch.tensor([b.build(r["query"], r["docs"]).input_ids + [bracket]])
        with torch.no_grad():
            ref = rr.model(input_ids=ids).logits[0, -1, letters[:n]]
        assert torch.allclose(parts["first_scores"][k, :n], ref, atol=1e-4)
        assert torch.allclose(infer[k], ref, atol=1e-4)
    # and the reranker ranks by exactly these logits
    order = rr.rank_lists([recs[0]["query"]], [recs[0]["docs"]])[0].order
    assert order == sorted(range(12), key=lambda i: (-float(infer[0][i]), i))
