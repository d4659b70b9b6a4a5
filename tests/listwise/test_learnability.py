"""Learnability on the synthetic task (scripts/learnability_listwise.py prints the full table).

The slow test is the acceptance check (held-out nDCG@10 ≥ 0.9); the default run keeps a smoke test: a few FIRST
steps lower the training loss on the same batch.
"""

from __future__ import annotations

import pytest
import torch

from rerank_align.data.lists import lists_from_qrels
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.training.listwise_trainer import ListwiseCollator, listwise_examples, listwise_loss
from rerank_align_testing.listwise_learnability import SHORT_PROMPT

from .conftest import listwise_reranker


def test_first_steps_reduce_the_loss(tiny_causal, synth_task):
    from rerank_align.data import load_beir, read_run

    col = load_beir(synth_task, split="train")
    recs = lists_from_qrels(col, read_run(synth_task / "first_stage.run"), depth=10)[:2]
    rr = listwise_reranker(tiny_causal, prompt_template=SHORT_PROMPT)
    batch = ListwiseCollator(rr.tokenizer.pad_token_id)(
        listwise_examples(recs, ListPromptBuilder(rr.tokenizer, rr.contract), "first")
    )
    model = rr.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        loss, _ = listwise_loss(model, batch, method="first")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["first", "fullrank"])
def test_learnability(method, tmp_path):
    from rerank_align_testing.listwise_learnability import learnability

    # the measured setting of docs/learnability.md (learnability()'s defaults: lists of 10, 3,000 training lists,
    # 16 epochs for FIRST, 32 for fullrank; ~18 and ~36 CPU minutes)
    r = learnability(method, tmp_path)
    assert r["trained"] >= 0.9 > r["untrained"], r
    assert r["trained_long"] >= 0.9 > r["untrained_long"], r  # lists of 20 by sliding windows of 10
