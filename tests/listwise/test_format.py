"""Identifiers, answer strings, permutation repair, window schedules and FIRST identifier tokens."""

from __future__ import annotations

import pytest

from rerank_align.errors import ContractError
from rerank_align.scoring.listwise import window_schedule
from rerank_align.scoring.listwise_format import (
    answer_text,
    answer_with_spans,
    first_tokens,
    parse_permutation,
    render_identifier,
)


def test_render_and_answer():
    assert render_identifier("[{i}]", 0) == "[1]"
    assert render_identifier("[{a}]", 2) == "[C]"
    assert answer_text([2, 0, 1], "[{i}]", " > ") == "[3] > [1] > [2]"
    text, spans = answer_with_spans([11, 0], "[{i}]", " > ")
    assert text == "[12] > [1]" and [text[a:b] for a, b in spans] == ["[12]", "[1]"]
    with pytest.raises(ContractError):
        render_identifier("[{a}]", 26)


@pytest.mark.parametrize(
    "text, n, perm, repaired",
    [
        ("[3] > [1] > [2]", 3, [2, 0, 1], False),
        ("[3] > [1]", 3, [2, 0, 1], True),  # missing [2] appended
        ("[2] > [2] > [1] > [3]", 3, [1, 0, 2], True),  # duplicate dropped
        ("[9] > [1] > [0] > [3] > [2]", 3, [0, 2, 1], True),  # unknown ids dropped
        ("", 3, [0, 1, 2], True),
        ("I cannot rank these.", 2, [0, 1], True),
        ("3, 1, 2", 3, [2, 0, 1], True),  # lenient: bare numbers
        ("[3]>[1]>[2]", 3, [2, 0, 1], False),
        ("[ 2 ] > [1]", 2, [1, 0], False),
    ],
)
def test_parse_repairs(text, n, perm, repaired):
    p = parse_permutation(text, n)
    assert p.permutation == perm and p.repaired is repaired
    assert sorted(p.permutation) == list(range(n))


def test_parse_never_crashes_on_garbage():
    for junk in [None, 12, "[[[", "]]] > >", "[-1] > [999999999999999999]", "[A] > [B]", "\x00\ud800"]:
        p = parse_permutation(junk, 4)
        assert sorted(p.permutation) == [0, 1, 2, 3]


def test_parse_letters():
    p = parse_permutation("[C] > [a] > [B]", 3, "[{a}]")
    assert p.permutation == [2, 0, 1] and not p.repaired
    p = parse_permutation("[Z] > [B]", 3, "[{a}]")
    assert p.permutation == [1, 0, 2] and p.repaired and p.dropped == 1 and p.appended == 2


def test_window_schedule_back_to_front_and_covers_the_top():
    assert window_schedule(100, 20, 10, "sliding")[:2] == [(80, 100), (70, 90)]
    assert window_schedule(100, 20, 10, "sliding")[-1] == (0, 20)
    # RankGPT's loop would stop at (5, 25) and never rank the top; here the last window starts at 0
    assert window_schedule(25, 20, 10, "sliding") == [(5, 25), (0, 15)]
    assert window_schedule(15, 20, 10, "sliding") == [(0, 15)]
    assert window_schedule(100, 20, 10, "full") == [(0, 100)]
    assert window_schedule(1, 20, 10, "sliding") == []


def test_first_tokens_tiny_tokenizer():
    from rerank_align_testing.tiny import train_causal_tokenizer

    tok = train_causal_tokenizer()
    ft = first_tokens(tok, "[{i}]", 20)
    assert tok.convert_ids_to_tokens(list(ft.prefix)) == ["["]
    assert tok.convert_ids_to_tokens(list(ft.token_ids))[:3] == ["1", "2", "3"]
    assert len(set(ft.token_ids)) == 20


def test_first_tokens_refuses_when_not_distinct(digit_tok):
    # "[1]" and "[12]" both start "[", "1" with a digit-splitting tokenizer
    assert len(first_tokens(digit_tok, "[{i}]", 9).token_ids) == 9
    with pytest.raises(ContractError, match=r"distinct first token.*\[1\], \[10\], \[11\]"):
        first_tokens(digit_tok, "[{i}]", 12)
    ft = first_tokens(digit_tok, "[{a}]", 26)
    assert digit_tok.convert_ids_to_tokens(list(ft.token_ids))[:2] == ["A", "B"]
