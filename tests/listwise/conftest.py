"""Helpers for the listwise tests: a tokenizer that splits identifiers into several tokens, and tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest


def digit_tokenizer():
    """A WordLevel tokenizer that splits every digit and bracket: ``[12]`` → ``[``, ``1``, ``2``, ``]``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from rerank_align_testing.synthetic import vocabulary

    keywords, fillers = vocabulary()
    words = [
        "<eos>",
        "<unk>",
        "[",
        "]",
        ">",
        ".",
        ":",
        ",",
        "\n",
        *list("0123456789"),
        *list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    ]
    words += "I will provide you with passages each indicated by a numerical identifier Rank the based on their".split()
    words += "relevance to search query Search Query above All should be included and listed using identifiers".split()
    words += "in descending order of relevance The output format e g Only respond ranking results do not say any".split()
    words += "word or explain about".split() + keywords + fillers
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Punctuation(),
        ]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>", unk_token="<unk>"
    )


def tiny_model_for(tokenizer, path: Path, hidden_size: int = 32) -> Path:
    import torch
    import transformers

    cfg = transformers.Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=hidden_size // 2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    transformers.Qwen3ForCausalLM(cfg).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def digit_tok():
    return digit_tokenizer()


@pytest.fixture(scope="session")
def digit_model(tmp_path_factory, digit_tok) -> Path:
    return tiny_model_for(digit_tok, tmp_path_factory.mktemp("digit") / "m")


@pytest.fixture(scope="session")
def synth_task(tmp_path_factory) -> Path:
    from rerank_align_testing.synthetic import make_task, write_beir

    return write_beir(make_task(16, 6, 10, seed=3), tmp_path_factory.mktemp("synth") / "task")


def listwise_reranker(path, **list_format):
    from rerank_align.scoring import Reranker

    return Reranker.from_base(
        str(path),
        kind="listwise",
        device="cpu",
        max_length=1024,
        max_document_length=48,
        list_format=list_format,
    )
