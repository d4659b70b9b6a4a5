"""fullrank token weights (arXiv 2412.14574) from character offsets, the weighted token NLL and the causal shift."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models

from rerank_align.losses import (
    fullrank_token_weights,
    identifier_spans,
    rank_weight,
    token_logps,
    weighted_token_nll,
)

CHARS = "[]0123456789 >"


def char_tokenizer() -> Tokenizer:
    """Every character its own token: "[12]" is four tokens."""
    vocab = {c: i for i, c in enumerate(CHARS)}
    return Tokenizer(models.BPE(vocab=vocab, merges=[]))


def merging_tokenizer() -> Tokenizer:
    """A BPE that merges "] >" into one token, so the ">" separator id never appears on its own."""
    vocab = {c: i for i, c in enumerate(CHARS)}
    vocab[" >"] = len(vocab)
    vocab["] >"] = len(vocab)
    return Tokenizer(models.BPE(vocab=vocab, merges=[(" ", ">"), ("]", " >")]))


def w(r):
    return 1 + 1 / math.log2(r + 1)


def test_identifier_split_into_several_tokens_gets_its_weight_on_every_token():
    tok = char_tokenizer()
    target = "[12] > [3] > [1]"
    enc = tok.encode(target)
    assert enc.tokens[:4] == ["[", "1", "2", "]"]
    weights = fullrank_token_weights(target, enc.offsets, dtype=torch.float64)
    expected = [w(1)] * 4 + [1, 1, 1] + [w(2)] * 3 + [1, 1, 1] + [w(3)] * 3
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float64))


def separator_id_weights(ids, sep_id):
    """The reference implementation's approach: identifiers are the tokens between hard-coded separator ids."""
    out, rank = [], 1
    for i in ids:
        if i == sep_id:
            out.append(1.0)
            rank += 1
        else:
            out.append(w(rank))
    return out


def test_offsets_not_a_hard_coded_separator_id():
    tok = merging_tokenizer()
    target = "[12] > [3]"
    enc = tok.encode(target)
    assert "] >" in enc.tokens and ">" not in enc.tokens
    weights = fullrank_token_weights(target, enc.offsets, dtype=torch.float64).tolist()
    by_token = dict(zip(enc.tokens, weights))
    assert by_token["] >"] == pytest.approx(w(1))  # the merged token overlaps "[12]"'s closing bracket
    assert by_token["3"] == pytest.approx(w(2))
    # with the separator-id approach the ">" id never appears: "[3]" would get rank 1's weight
    buggy = separator_id_weights(enc.ids, tok.token_to_id(">"))
    assert buggy[enc.tokens.index("3")] == pytest.approx(w(1))
    assert weights != buggy


def test_special_and_uncovered_tokens_get_weight_one():
    weights = fullrank_token_weights("[2] > [1]", [(0, 0), (0, 3), (3, 6), (6, 9), (9, 9)])
    torch.testing.assert_close(weights, torch.tensor([1.0, w(1), 1.0, w(2), 1.0]))


def test_identifier_parser_and_custom_spans():
    assert identifier_spans("[3] > [1] > [2]") == [(0, 3), (6, 9), (12, 15)]
    assert identifier_spans("C > A", pattern=r"[A-Z]") == [(0, 1), (4, 5)]
    weights = fullrank_token_weights("C > A", [(0, 1), (1, 4), (4, 5)], pattern=r"[A-Z]")
    torch.testing.assert_close(weights, torch.tensor([w(1), 1.0, w(2)]))
    with pytest.raises(ValueError):
        rank_weight(0)


@settings(max_examples=25, deadline=None)
@given(perm=st.permutations(list(range(1, 13))))
def test_weights_for_any_permutation_with_char_tokens(perm):
    target = " > ".join(f"[{i}]" for i in perm)
    enc = char_tokenizer().encode(target)
    weights = fullrank_token_weights(target, enc.offsets, dtype=torch.float64)
    # slow reference: walk the string character by character
    expected, rank, inside = [], 0, False
    for ch in target:
        if ch == "[":
            rank += 1
            inside = True
        expected.append(w(rank) if inside else 1.0)
        if ch == "]":
            inside = False
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float64))


def test_weighted_token_nll_hand_and_normalisation_switch():
    lp = torch.log(torch.tensor([[0.5, 0.25, 0.9]], dtype=torch.float64))
    wt = torch.tensor([[2.0, 1.0, 7.0]], dtype=torch.float64)
    m = torch.tensor([[True, True, False]])
    num = 2 * math.log(2) + math.log(4)
    assert float(weighted_token_nll(lp, wt, m)) == pytest.approx(num / 2)
    assert float(weighted_token_nll(lp, wt, m, normalize="weights")) == pytest.approx(num / 3)
    assert float(weighted_token_nll(lp, wt, m, denominator=4.0)) == pytest.approx(num / 4)
    # padding is inert, even with nan
    lp2 = torch.where(m, lp, torch.full_like(lp, float("nan")))
    assert float(weighted_token_nll(lp2, wt, m)) == pytest.approx(num / 2)


@pytest.mark.parametrize("normalize", ["tokens", "weights"])
def test_weighted_token_nll_gradcheck(normalize):
    g = torch.Generator().manual_seed(0)
    lp = -torch.rand(2, 4, generator=g, dtype=torch.float64)
    wt = 1 + torch.rand(2, 4, generator=g, dtype=torch.float64)
    m = torch.tensor([[True, True, True, False], [True, False, False, False]])
    f = lambda x: weighted_token_nll(x, wt, m, normalize=normalize)  # noqa: E731
    assert torch.autograd.gradcheck(f, (lp.requires_grad_(),))


def test_token_logps_shift_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 7, (2, 5), generator=g)
    m = torch.tensor([[False, False, True, True, True], [False, True, True, False, False]])
    lp, sm = token_logps(logits, ids, m)
    for b in range(2):
        for t in range(4):
            want = torch.log_softmax(logits[b, t], -1)[ids[b, t + 1]] if m[b, t + 1] else 0.0
            assert float(lp[b, t]) == pytest.approx(float(want))
            assert bool(sm[b, t]) == bool(m[b, t + 1])
