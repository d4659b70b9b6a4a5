"""SFT yes/no with TRL's padding-free collation (``training.padding_free: true``) gives the padded batch's loss and
gradients: our completion-only labels (-100 on the prompt, the answer token last) survive the flattening, and no
answer is predicted across a sequence boundary."""

from __future__ import annotations

import tempfile

import torch

from rerank_align.scoring import PairEncoder, build_contract, load_model, load_tokenizer
from rerank_align.training.sft_yesno import sft_examples

RECORDS = [
    {
        "query": f"kalomi suta {i}",
        "positives": [{"text": "vota ripe " * (i + 1)}],
        "negatives": [{"text": "zuga fine " * (2 * i + 1)}, {"text": "x"}],
    }
    for i in range(3)
]


def _loss_and_grad(model, tok, examples, padding_free):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=tempfile.mkdtemp(),
        padding_free=padding_free,
        per_device_train_batch_size=len(examples),
        report_to=[],
        use_cpu=True,
        max_length=None,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tok
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(examples))])
    model.eval()  # no dropout: the two passes must see the same function
    model.zero_grad()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    grad = model.get_input_embeddings().weight.grad.clone()
    return batch, loss.detach(), grad


def test_padding_free_sft_loss_and_grad_equal_padded(tiny_causal):
    tok = load_tokenizer(str(tiny_causal))
    contract = build_contract(
        tok, base_model=str(tiny_causal), kind="yesno", architecture="causal", template="qwen3"
    )
    examples = sft_examples(RECORDS, PairEncoder(tok, contract), 3, 0)
    torch.manual_seed(0)
    model = load_model(str(tiny_causal), contract)
    padded, loss_p, grad_p = _loss_and_grad(model, tok, examples, False)
    flat, loss_f, grad_f = _loss_and_grad(model, tok, examples, True)
    assert padded["input_ids"].shape[0] == len(examples) and flat["input_ids"].shape[0] == 1
    assert "attention_mask" not in flat  # really padding-free: one row, sequences told apart by position_ids
    n_answers = int((flat["labels"] != -100).sum())
    assert n_answers == len(examples) == int((padded["labels"] != -100).sum())
    torch.testing.assert_close(loss_f, loss_p, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_f, grad_p, atol=1e-5, rtol=1e-4)
