"""The synthetic BEIR task (rerank_align_testing.synthetic), small, for the preference tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def recipe_task(tmp_path_factory) -> dict[str, Path]:
    from rerank_align_testing.synthetic import make_task, write_beir

    folder = tmp_path_factory.mktemp("pref_task")
    write_beir(make_task(n_train=8, n_test=4, n_candidates=6), folder / "beir")
    return {"beir": folder / "beir", "run": folder / "beir" / "first_stage.run"}
