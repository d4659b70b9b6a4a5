"""A synthetic collection in which relevance is a function of the text.

Each query names a key word (plus one filler word as noise). Key words never start a text, so a byte-level BPE
sees them with their leading space in queries and documents alike (one token id for both). A candidate's grade is how often it contains the
query's key word, capped at 2. Negatives often contain *other* key words, so "has a key word" is not enough: a
model must match the query's word in the document. The first-stage run lists candidates in random order, so an
untrained scorer sits near the random-ranking nDCG@10 and the only way up is to learn the matching rule.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "vo", "ri", "pe", "zu", "ga", "fi"]


def _words(n: int, rng: random.Random, length: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(SYLLABLES) for _ in range(length))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def vocabulary(seed: int = 0, n_keywords: int = 40, n_fillers: int = 80) -> tuple[list[str], list[str]]:
    """Key words (3 syllables) and filler words (2 syllables), fixed by ``seed``."""
    rng = random.Random(1000 + seed)
    taken: set[str] = set()
    return _words(n_keywords, rng, 3, taken), _words(n_fillers, rng, 2, taken)


def make_task(
    n_train: int = 200,
    n_test: int = 50,
    n_candidates: int = 20,
    seed: int = 0,
) -> dict:
    """``{"corpus", "queries", "qrels": {"train", "test"}, "run"}`` in BEIR shapes (ids are strings)."""
    keywords, fillers = vocabulary()
    rng = random.Random(seed)
    corpus: dict[str, dict] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    run: dict[str, list[tuple[str, float]]] = {}
    for qi in range(n_train + n_test):
        split = "train" if qi < n_train else "test"
        qid = f"q{qi}"
        kw = rng.choice(keywords)
        queries[qid] = f"about {kw} {rng.choice(fillers)}"
        grades = [2, 2, 1, 1, 1] + [0] * (n_candidates - 5)
        rng.shuffle(grades)
        judged: dict[str, int] = {}
        cands: list[str] = []
        for ci, g in enumerate(grades):
            words = [rng.choice(fillers) for _ in range(rng.randint(6, 12))]
            if g == 0 and rng.random() < 0.6:  # distractor: another key word
                other = rng.choice([k for k in keywords if k != kw])
                for _ in range(rng.randint(1, 2)):
                    words.insert(rng.randrange(1, len(words) + 1), other)
            for _ in range(g):
                words.insert(rng.randrange(1, len(words) + 1), kw)
            did = f"{qid}d{ci}"
            corpus[did] = {"id": did, "title": "", "text": " ".join(words)}
            judged[did] = g
            cands.append(did)
        qrels[split][qid] = judged
        run[qid] = [(d, float(len(cands) - r)) for r, d in enumerate(cands)]
    return {"corpus": corpus, "queries": queries, "qrels": qrels, "run": run}


def write_beir(task: dict, folder: str | Path) -> Path:
    """Write the task as a BEIR folder with ``first_stage.run`` (random order) for the data path to read."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for d in task["corpus"].values():
            fh.write(json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]}) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for qid, text in task["queries"].items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, qrels in task["qrels"].items():
        with open(folder / "qrels" / f"{split}.tsv", "w") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for qid, judged in qrels.items():
                for did, g in judged.items():
                    fh.write(f"{qid}\t{did}\t{g}\n")
    with open(folder / "first_stage.run", "w") as fh:
        for qid, cands in task["run"].items():
            for rank, (did, score) in enumerate(cands, start=1):
                fh.write(f"{qid} Q0 {did} {rank} {score} random\n")
    return folder
