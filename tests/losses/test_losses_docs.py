"""Every docstring example of the losses package runs, and the package import stays light."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest
import torch

MODULES = [
    "pointwise",
    "contrastive",
    "unified",
    "distill",
    "ltr",
    "token_weights",
    "preference",
    "policy_gradient",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"rerank_align.losses.{name}")
    result = doctest.testmod(mod, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


def test_import_is_light():
    code = (
        "import sys, rerank_align.losses as L; "
        "heavy = [m for m in ('transformers', 'trl', 'peft', 'datasets', 'tokenizers', 'accelerate') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
