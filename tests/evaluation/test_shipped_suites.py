"""Every shipped eval suite (eval/suites/*.yaml) parses; the collections and runs it reads ship; each folder it expects
under outputs/ (a trained model, a dev split) is made by a recipe or script its header names."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SUITES = sorted((REPO / "eval" / "suites").glob("*.yaml"))
OUTPUTS = REPO / "outputs"


def lexical(p: str | Path) -> Path:
    """``p`` made absolute without following links."""
    return Path(os.path.normpath(p))


def producers(header: str, folder: Path) -> list[str]:
    """Recipes named in ``header`` whose training.output_dir is ``folder``, and named scripts that write under
    ``folder``'s top folder in outputs/ and name its leaf (scripts build their paths, so no literal path to match)."""
    from rerank_align.config import load_recipe

    top = "outputs/" + folder.relative_to(OUTPUTS).parts[0]
    found = []
    for name in set(re.findall(r"recipes/\S+?\.yaml", header)):
        if lexical(REPO / load_recipe(REPO / name).training["output_dir"]) == folder:
            found.append(name)
    for name in set(re.findall(r"scripts/\S+?\.py", header)):
        text = (REPO / name).read_text()
        if re.search(rf"{re.escape(top)}\b", text) and re.search(rf"\b{re.escape(folder.name)}\b", text):
            found.append(name)
    return found


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_shipped_suite_parses_and_its_inputs_exist_or_are_made(path, shared_data):
    from rerank_align.evaluation.config import load_suite

    suite = load_suite(path)
    # the paths as written, made absolute without following links: the loader resolves them, and an outputs/
    # folder may be a link to elsewhere
    raw = yaml.safe_load(path.read_text())
    header = "\n".join(ln for ln in path.read_text().splitlines() if ln.startswith("#"))
    for c, spec in zip(raw["collections"], suite.collections, strict=True):
        folder = lexical(path.parent / c["path"])
        if folder.is_relative_to(OUTPUTS):
            assert producers(header, folder), (
                f"{path.name}: collection {c['path']} is made by nothing it names"
            )
            continue
        assert (folder / "corpus.jsonl").is_file(), (path.name, spec.name, spec.path)
        assert spec.run is None or Path(spec.run).is_file(), (path.name, spec.name, spec.run)
    for s in raw["systems"]:
        folder = lexical(path.parent / s["path"]) if s.get("path") else None
        if folder is not None and folder.is_relative_to(OUTPUTS):
            assert producers(header, folder), (
                f"{path.name}: system {s['name']} reads {s['path']}, made by nothing named"
            )
