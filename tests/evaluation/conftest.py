"""Fixtures for the evaluation tests: a small generated BEIR collection and paths to ../shared/data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

WORDS = "apple banana cherry delta echo forest garden harbor island jungle kettle lemon meadow north ocean".split()


def make_collection(
    root: Path, *, n_queries: int = 12, n_docs: int = 60, depth: int = 20, seed: int = 0
) -> Path:
    """A BEIR folder with graded qrels and a bm25_top100.run that deliberately has tied scores, a self hit,
    and judged relevant documents that the run does not retrieve."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    docs = {}
    for i in range(n_docs):
        docs[f"d{i}"] = {
            "_id": f"d{i}",
            "title": rng.choice(WORDS),
            "text": " ".join(rng.choices(WORDS, k=12)),
        }
    queries = {f"q{i}": " ".join(rng.sample(WORDS, 3)) for i in range(n_queries)}
    # the query q0 is also a corpus document with the same id and text (ArguAna / Quora style self hit)
    docs["q0"] = {"_id": "q0", "title": "", "text": queries["q0"]}
    with open(root / "corpus.jsonl", "w") as fh:
        for d in docs.values():
            fh.write(json.dumps(d) + "\n")
    with open(root / "queries.jsonl", "w") as fh:
        for q, t in queries.items():
            fh.write(json.dumps({"_id": q, "text": t}) + "\n")
    ids = list(docs)
    with open(root / "qrels" / "test.tsv", "w") as fh, open(root / "bm25_top100.run", "w") as run:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qi, q in enumerate(queries):
            cands = rng.sample([d for d in ids if d != "q0"], depth)
            if q == "q0":
                cands = ["q0", *cands[:-1]]
            for rank, d in enumerate(cands, start=1):
                score = 10.0 - (rank // 3)  # groups of equal scores
                run.write(f"{q} Q0 {d} {rank} {score:.4f} synth\n")
            judged = cands[: depth // 2 : 2]
            for d in judged:
                fh.write(f"{q}\t{d}\t{rng.choice([0, 1, 2])}\n")
            # a relevant document the first stage did not retrieve: it must never be injected
            missing = next(d for d in ids if d not in cands and d != "q0")
            fh.write(f"{q}\t{missing}\t2\n")
            if qi == 0:
                fh.write(f"{q}\t{cands[-1]}\t1\n")
    return root


@pytest.fixture
def synth(tmp_path: Path) -> Path:
    return make_collection(tmp_path / "synth")


@pytest.fixture
def synth_suite(tmp_path: Path, synth: Path) -> Path:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"""
name: synth
output: out
depth: 20
collections:
  - {{name: synth, path: {synth}, run: bm25_top100.run, rel: 1}}
systems:
  - {{name: first, type: first_stage}}
  - {{name: lex, type: lexical}}
baseline: first
significance: {{permutations: 1000, bootstrap: 200}}
"""
    )
    return suite


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "scifact" / "corpus.jsonl").exists():
        pytest.skip(f"../shared/data not found at {SHARED_DATA}")
    return SHARED_DATA
