"""Every shipped eval suite (eval/suites/*.yaml) parses; the collections and runs it reads ship; each folder it expects
under outputs/ (a trained model, a dev split) is made by a recipe or script its header names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITES = sorted((REPO / "eval" / "suites").glob("*.yaml"))


def producers(header: str, folder: Path) -> list[str]:
    """Recipes named in ``header`` whose training.output_dir is ``folder``, and named scripts that mention it."""
    from rerank_align.config import load_recipe

    found = []
    for name in set(re.findall(r"recipes/\S+?\.yaml", header)):
        if (REPO / load_recipe(REPO / name).training["output_dir"]).resolve() == folder:
            found.append(name)
    for name in set(re.findall(r"scripts/\S+?\.py", header)):
        if folder.name in (REPO / name).read_text():
            found.append(name)
    return found


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_shipped_suite_parses_and_its_inputs_exist_or_are_made(path, shared_data):
    from rerank_align.evaluation.config import load_suite

    suite = load_suite(path)
    header = "\n".join(ln for ln in path.read_text().splitlines() if ln.startswith("#"))
    outputs = (REPO / "outputs").resolve()
    for c in suite.collections:
        folder = Path(c.path).resolve()
        if folder.is_relative_to(outputs):
            assert producers(header, folder), f"{path.name}: collection {c.path} is made by nothing it names"
            continue
        assert (folder / "corpus.jsonl").is_file(), (path.name, c.name, c.path)
        assert c.run is None or Path(c.run).is_file(), (path.name, c.name, c.run)
    for s in suite.systems:
        if s.path and Path(s.path).resolve().is_relative_to(outputs):
            folder = Path(s.path).resolve()
            assert producers(header, folder), (
                f"{path.name}: system {s.name} reads {s.path}, made by nothing named"
            )
