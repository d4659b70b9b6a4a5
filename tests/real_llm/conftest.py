"""Fixtures for the real-LLM tests: a ChatML tokenizer built in code, and SmolLM2's tokenizer when prepared."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def chat_tok():
    """The tiny byte-level BPE tokenizer (chat markers are special tokens) with a ChatML chat template."""
    from rerank_align_testing.chat import CHATML
    from rerank_align_testing.tiny import train_causal_tokenizer

    tok = train_causal_tokenizer()
    tok.chat_template = CHATML
    return tok


def prepared_smollm2() -> Path | None:
    from rerank_align.models.packaged import is_complete, prepared_path

    folder = prepared_path("smollm2-135m-instruct")
    return folder if is_complete(folder) else None


@pytest.fixture(scope="module")
def smollm2_tok():
    """SmolLM2's own tokenizer from the prepared cache folder (skipped where it was never prepared)."""
    folder = prepared_smollm2()
    if folder is None:
        pytest.skip(
            "smollm2-135m-instruct is not prepared (rerank-align models prepare smollm2-135m-instruct)"
        )
    from rerank_align.scoring.modeling import load_tokenizer

    return load_tokenizer(str(folder))


@pytest.fixture
def named_cache(tmp_path, monkeypatch):
    """A tiny chat Llama prepared under SmolLM2's name in a temporary model cache (the name resolves to it)."""
    import json
    import shutil

    from rerank_align.models.packaged import CACHE_ENV
    from rerank_align_testing.chat import build_tiny_chat_llama

    folder = tmp_path / "cache" / "smollm2-135m-instruct"
    build_tiny_chat_llama(tmp_path / "tiny")
    shutil.copytree(tmp_path / "tiny", folder)
    (folder / "provenance.json").write_text(
        json.dumps({"name": "smollm2-135m-instruct", "test": "tiny stand-in"})
    )
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return folder
