"""docs/recipes.md is generated from the recipe dataclasses and the recipe folders, and is up to date."""

from __future__ import annotations

import subprocess
import sys

from tests.recipes.conftest import REPO


def test_recipes_doc_is_up_to_date():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_recipe_docs.py"), "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_recipes_doc_documents_every_field():
    import dataclasses

    from rerank_align.config import recipe as r

    text = (REPO / "docs" / "recipes.md").read_text()
    for key, cls in (
        ("model", r.ModelConfig),
        ("data", r.DataConfig),
        ("method", r.MethodConfig),
        ("peft", r.PeftConfig),
        ("quantization", r.QuantizationConfig),
        ("eval", r.EvalConfig),
    ):
        for f in dataclasses.fields(cls):
            assert f"`{key}.{f.name}`" in text
