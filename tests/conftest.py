"""Shared fixtures: tiny models built in code once per test session (no hub access)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The precision policy's `auto` follows the CPU (rerank_align/precision.py). Tests pin the probe to "no native
# bf16" so every machine runs the same float32 path; tests of the bf16 path ask for it explicitly, and
# tests/test_precision.py simulates both machines.
os.environ.setdefault("RERANK_ALIGN_NATIVE_BF16", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts/ is not a package), so a test can call its functions."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_causal(tmp_path_factory) -> Path:
    """A ~120k-parameter Qwen3 causal LM with a locally trained tokenizer ("yes"/"no" single tokens)."""
    from rerank_align_testing.tiny import build_tiny_causal

    return build_tiny_causal(tmp_path_factory.mktemp("tiny") / "qwen3")


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory) -> Path:
    from rerank_align_testing.tiny import build_tiny_causal

    return build_tiny_causal(tmp_path_factory.mktemp("tiny") / "qwen2", arch="qwen2")


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """A ~200k-parameter Qwen2-VL (vision tower included) with the vision special tokens and a 56×56-pixel
    image processor."""
    from rerank_align_testing.tiny import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny") / "qwen2_vl")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny BERT cross-encoder (num_labels=1) with a locally trained WordPiece tokenizer."""
    from rerank_align_testing.tiny import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
