"""Token ids and scores equal to the official constructions, written here from the published code and independently of
rerank_align's encoder:

- Qwen3-Reranker (model card, ``process_inputs``): the fixed prefix and suffix tokenised on their own, the formatted
  ``<Instruct>: …\\n<Query>: …\\n<Document>: …`` tokenised as one string with ``truncation="longest_first"`` at
  ``max_length − len(prefix) − len(suffix)``, left padding; score = p(yes) from the log-softmax over (no, yes) at the
  last position.
- FlagEmbedding's bge-reranker-v2-gemma (``get_inputs``): bos + ids of ``"A: " + query`` (cut at 3/4 of max_length),
  ids of ``"\\n"``, ids of ``"B: " + passage``, joined with ``prepare_for_model(truncation="only_second")``, then
  ``"\\n"`` and the prompt; score = the logit of "Yes" at the last position.
- plain / custom templates (no official code): the rendered prompt tokenised as one string, as a serving stack does.

Each is compared on the tiny models built in code, for both padding sides, with and without truncation.
"""

from __future__ import annotations

import pytest
import torch
from official_prompts import (
    BGE_PROMPT,
    LONG_DOC,
    PAIRS,
    bge_official_ids,
    last_logit_scores,
    padded,
    qwen3_official_ids,
    qwen3_official_scores,
    whole_string_ids,
)

from rerank_align.scoring import PairEncoder, Reranker, ScoringContract, build_contract
from rerank_align.scoring.modeling import load_model, load_tokenizer


# -- helpers ------------------------------------------------------------------------------------------------------
def _ours(tok, contract, pairs, side):
    c = ScoringContract.from_dict({**contract.to_dict(), "padding_side": side})
    enc = PairEncoder(tok, c)
    feats = enc.encode([q for q, _ in pairs], [d for _, d in pairs])
    return [f["input_ids"] for f in feats], enc.collate(feats)


def _assert_same_batches(tok, ours_batch, official_ids, side):
    theirs = padded(tok, official_ids, side)
    assert torch.equal(ours_batch["input_ids"], theirs["input_ids"])
    assert torch.equal(ours_batch["attention_mask"], theirs["attention_mask"])


@pytest.mark.parametrize("side", ["left", "right"])
def test_qwen3_ids_and_scores_equal_the_model_card(tiny_causal, side):
    tok = load_tokenizer(str(tiny_causal))
    max_length = 120  # binds for the long document only
    pairs = [*PAIRS, ("kalomi nesu", LONG_DOC)]
    contract = build_contract(
        tok,
        base_model=str(tiny_causal),
        kind="yesno",
        architecture="causal",
        template="qwen3",
        max_query_length=4096,
        max_document_length=4096,
        max_length=max_length,
        padding_side=side,
    )
    official = qwen3_official_ids(tok, pairs, max_length)
    ours, batch = _ours(tok, contract, pairs, side)
    assert ours == official
    assert len(official[-1]) == max_length  # truncation was exercised
    _assert_same_batches(tok, batch, official, side)

    model = load_model(str(tiny_causal), contract).eval()
    rr = Reranker(model, tok, contract, batch_size=4)
    ours_p = torch.from_numpy(rr.score_pairs([q for q, _ in pairs], [d for _, d in pairs])).double().exp()
    theirs_p = qwen3_official_scores(model, tok, official)
    assert torch.max(torch.abs(ours_p - theirs_p)).item() <= 1e-5


def test_qwen3_whole_prompt_differs_from_per_piece_tokenisation(tiny_causal):
    """The case the per-piece encoder got wrong: the space after "<Query>:" merges into the query's first token
    (``Ġkalomi`` in the tiny vocabulary, whose English words are spelt out in characters)."""
    tok = load_tokenizer(str(tiny_causal))
    contract = build_contract(tok, base_model="x", kind="yesno", architecture="causal", template="qwen3")
    pieces = ScoringContract.from_dict(
        {**contract.to_dict(), "version": 1}
    )  # what version-1 models were given
    pairs = [("kalomi nesu", "kalomi tavo")]
    official = qwen3_official_ids(tok, pairs, 8192)
    assert _ours(tok, contract, pairs, "right")[0] == official
    assert _ours(tok, pieces, pairs, "right")[0] != official


@pytest.mark.parametrize("side", ["left", "right"])
def test_bge_gemma_ids_and_scores_equal_flagembedding(tiny_causal, side):
    tok = load_tokenizer(str(tiny_causal))
    L = 96  # FlagEmbedding's max_length: bos + A + sep + B ≤ L, then sep + prompt
    sep_n = len(tok("\n", add_special_tokens=False)["input_ids"])
    prompt_n = len(tok(BGE_PROMPT, add_special_tokens=False)["input_ids"])
    long_query = "kalomi nesu " * 60
    pairs = [*PAIRS, ("kalomi nesu", LONG_DOC), (long_query, "gafi zuta")]
    # "A: " + query is cut at 3L/4 tokens there; the query's budget here excludes the tokens of "A:" alone
    a_only = len(tok("A:", add_special_tokens=False)["input_ids"])
    contract = build_contract(
        tok,
        base_model=str(tiny_causal),
        kind="yesno",
        architecture="causal",
        template="bge-gemma",
        max_query_length=L * 3 // 4 - a_only,
        max_document_length=4096,
        max_length=L + sep_n + prompt_n,
        padding_side=side,
    )
    official = bge_official_ids(tok, pairs, L)
    ours, batch = _ours(tok, contract, pairs, side)
    assert ours == official
    assert len(official[-2]) == L + sep_n + prompt_n  # the long passage was cut
    _assert_same_batches(tok, batch, official, side)

    model = load_model(str(tiny_causal), contract).eval()
    rr = Reranker(model, tok, contract, batch_size=4)
    got = torch.from_numpy(rr.score_pairs([q for q, _ in pairs], [d for _, d in pairs])).double()
    want = last_logit_scores(model, official, [tok.convert_tokens_to_ids("Yes")])
    assert torch.max(torch.abs(got - want)).item() <= 1e-5


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "fixture,template,formula",
    [
        ("tiny_causal", "plain", "logit_diff"),
        ("tiny_qwen2", "Q={query} | D={document} ->", "yes_logit"),
        ("tiny_qwen2", "<|im_start|>user\nQuery: {query}\nDocument: {document}<|im_end|>\n", "logit_diff"),
    ],
)
def test_plain_and_custom_templates_tokenise_the_whole_prompt(request, fixture, template, formula, side):
    base = request.getfixturevalue(fixture)
    tok = load_tokenizer(str(base))
    contract = build_contract(
        tok,
        base_model=str(base),
        kind="yesno",
        architecture="causal",
        template=template,
        formula=formula,
        padding_side=side,
    )
    official = whole_string_ids(tok, contract.template, PAIRS)
    ours, batch = _ours(tok, contract, PAIRS, side)
    assert ours == official
    _assert_same_batches(tok, batch, official, side)

    model = load_model(str(base), contract).eval()
    ids = contract.answer_token_ids
    want = last_logit_scores(model, official, [ids["yes"]] + ([ids["no"]] if formula == "logit_diff" else []))
    got = Reranker(model, tok, contract, batch_size=4).score_pairs(
        [q for q, _ in PAIRS], [d for _, d in PAIRS]
    )
    assert torch.max(torch.abs(torch.from_numpy(got).double() - want)).item() <= 1e-5


def test_plain_truncation_cuts_the_document_ids_inside_the_prompt(tiny_causal):
    """A document over its budget keeps its first ``max_document_length`` tokens as they were tokenised inside the
    prompt; the prompt's other ids are those of the whole string."""
    tok = load_tokenizer(str(tiny_causal))
    contract = build_contract(
        tok, base_model="x", kind="yesno", architecture="causal", template="plain", max_document_length=10
    )
    (ours,), _ = _ours(tok, contract, [("kalomi nesu", LONG_DOC)], "right")
    full = tok(contract.template.format(query="kalomi nesu", document=LONG_DOC), add_special_tokens=False)
    head = tok("Query: kalomi nesu\nDocument:", add_special_tokens=False)["input_ids"]
    tail = tok("\nRelevant:", add_special_tokens=False)["input_ids"]
    assert full["input_ids"][: len(head)] == head
    assert ours == full["input_ids"][: len(head) + 10] + tail


@pytest.mark.parametrize("template", ["qwen3", "bge-gemma", "plain"])
def test_prefix_reuse_equals_plain_path(tiny_causal, template):
    tok = load_tokenizer(str(tiny_causal))
    contract = build_contract(
        tok, base_model=str(tiny_causal), kind="yesno", architecture="causal", template=template
    )
    model = load_model(str(tiny_causal), contract).eval()
    queries = [q for q, _ in PAIRS] + ["kalomi nesu"] * 3
    docs = [d for _, d in PAIRS] + [LONG_DOC, "gafi", "kalomi tavo"]
    plain = Reranker(model, tok, contract, batch_size=4).score_pairs(queries, docs)
    reuse = Reranker(model, tok, contract, batch_size=4, reuse_prefix=True).score_pairs(queries, docs)
    assert abs(plain - reuse).max() <= 1e-5
