"""SFT yes/no with TRL's padding-free collation (``training.padding_free: true``) or BFD packing
(``training.packing: true``) gives the padded batch's loss and gradients: our completion-only labels (-100 on the
prompt, the answer token last) survive the flattening, no answer is predicted across a sequence boundary, and no
example is cut."""

from __future__ import annotations

import tempfile
from types import SimpleNamespace

import pytest
import torch

from rerank_align.scoring import build_contract, load_model, load_tokenizer
from rerank_align.training.sft_yesno_trainer import build_trainer

RECORDS = [
    {
        "query": f"kalomi suta {i}",
        "positives": [{"text": "vota ripe " * (i + 1)}],
        "negatives": [{"text": "zuga fine " * (2 * i + 1)}, {"text": "x"}],
    }
    for i in range(3)
]
N_EXAMPLES = 9  # 3 records × group of 3


def _loss_and_grad(model, tok, contract, **config):
    from trl import SFTConfig

    args = SFTConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=16, report_to=[], use_cpu=True, **config
    )
    recipe = SimpleNamespace(method=SimpleNamespace(group_size=3), seed=0)
    trainer = build_trainer(recipe, model, tok, contract, RECORDS, args, None)
    ds = trainer.train_dataset
    batch = trainer.data_collator([ds[i] for i in range(len(ds))])  # the whole data set as one batch
    model.eval()  # no dropout: the passes must see the same function
    model.zero_grad()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    return trainer, batch, loss.detach(), model.get_input_embeddings().weight.grad.clone()


@pytest.mark.parametrize("mode", ["padding_free", "packing"])
def test_flattened_sft_loss_and_grad_equal_padded(tiny_causal, mode):
    tok = load_tokenizer(str(tiny_causal))
    contract = build_contract(
        tok, base_model=str(tiny_causal), kind="yesno", architecture="causal", template="qwen3"
    )
    torch.manual_seed(0)
    model = load_model(str(tiny_causal), contract)
    padded_tr, padded, loss_p, grad_p = _loss_and_grad(model, tok, contract)
    longest = padded_tr.args.max_length
    config = (
        {"padding_free": True} if mode == "padding_free" else {"packing": True, "max_length": 3 * longest}
    )
    tr, flat, loss_f, grad_f = _loss_and_grad(model, tok, contract, **config)
    assert padded["input_ids"].shape[0] == N_EXAMPLES and flat["input_ids"].shape[0] == 1
    assert "attention_mask" not in flat  # really flat: sequences are told apart by position_ids
    if mode == "packing":
        assert tr.args.max_length == 3 * longest  # the recipe's bin size is kept (never below the longest)
        assert len(tr.train_dataset) < N_EXAMPLES  # several examples share a bin
    # every answer token is still a label, and only those
    assert int((flat["labels"] != -100).sum()) == N_EXAMPLES == int((padded["labels"] != -100).sum())
    torch.testing.assert_close(loss_f, loss_p, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_f, grad_p, atol=1e-5, rtol=1e-4)
