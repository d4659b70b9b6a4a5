"""Listwise inference: batched generation, sliding windows, repair counting, Reranker.rerank."""

from __future__ import annotations

import re

from rerank_align.scoring.listwise import ListwiseRanker

from .conftest import listwise_reranker


def _docs(keys):
    return [{"text": f"lolo kami k{k}"} for k in keys]


def _oracle(self, windows, decoding):
    """A perfect window ranker: higher key first (the key is the number after 'k' in each doc)."""
    out = []
    for _, docs in windows:
        keys = [int(re.search(r"k(\d+)", d["text"]).group(1)) for d in docs]
        out.append((sorted(range(len(docs)), key=lambda i: -keys[i]), False, 0, ""))
    return out


def test_batched_generation_equals_one_by_one(tiny_causal):
    rr = listwise_reranker(tiny_causal, strategy="full")
    lw = rr.listwise
    windows = [("about kami", _docs(range(3))), ("about suta pelo", _docs(range(6)))]
    together = lw.generate(windows)
    alone = [lw.generate([w])[0] for w in windows]
    assert together == alone
    # FIRST: batched logits equal single ones
    a = lw.first_logits(windows)
    b = [lw.first_logits([w])[0] for w in windows]
    assert all((x - y).abs().max() < 1e-4 for x, y in zip(a, b))


def test_sliding_windows_bubble_the_best_to_the_top(tiny_causal, monkeypatch):
    monkeypatch.setattr(ListwiseRanker, "rank_windows", _oracle)
    rr = listwise_reranker(tiny_causal, window=4, stride=2)
    keys = [3, 17, 0, 5, 11, 2, 8, 14, 1, 9, 6]  # best (17, 14) start deep in the list
    res = rr.rank_lists(["q"], [_docs(keys)])[0]
    top = [keys[i] for i in res.order]
    assert top[:2] == [17, 14]  # a back-to-front pass fixes the best window - stride
    assert res.outputs == 5 and sorted(res.order) == list(range(11))
    # full strategy: one window, exact order
    full = rr.rank_lists(["q"], [_docs(keys)], strategy="full")[0]
    assert [keys[i] for i in full.order] == sorted(keys, reverse=True) and full.outputs == 1


def test_repairs_are_counted_on_corrupted_outputs(tiny_causal, monkeypatch):
    outputs = iter(["[2] > [1] > [3]", "[2] > [2] > [1]", "[1] > [7] > [3] > [2]", "no idea", "[3] > [1]"])
    monkeypatch.setattr(ListwiseRanker, "generate", lambda self, ws: [(next(outputs), 5) for _ in ws])
    rr = listwise_reranker(tiny_causal, strategy="full")
    res = rr.rank_lists(["q"] * 5, [_docs([0, 1, 2])] * 5)
    assert [r.repaired for r in res] == [0, 1, 1, 1, 1]
    assert [r.order for r in res] == [[1, 0, 2], [1, 0, 2], [0, 2, 1], [0, 1, 2], [2, 0, 1]]


def test_reranker_rerank_listwise(tiny_causal):
    rr = listwise_reranker(tiny_causal, decoding="first", window=5, stride=2)
    out = rr.rerank("about kami", _docs(range(9)), top_k=4)
    assert len(out) == 4 and [s for _, s in out] == [9.0, 8.0, 7.0, 6.0]
    gen = listwise_reranker(tiny_causal, strategy="full").rank_lists(["about kami"], [_docs(range(4))])[0]
    assert sorted(gen.order) == [0, 1, 2, 3] and gen.outputs == 1 and gen.generated_tokens > 0
