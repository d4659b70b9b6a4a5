"""How the quickstart's settings were chosen: train on SciFact train minus 100 held-out train queries, evaluate on
those 100 (never on the test queries), including score fusion with BM25 at several weights.

    .venv/bin/python scripts/quickstart_dev.py NAME [recipe overrides ...]
    .venv/bin/python scripts/quickstart_dev.py kl method.loss=kl

The first call labels every SciFact train query the way the quickstart does (scripts/quickstart.py
``teacher_labels``: BM25 top-100, teacher ensemble over the top ``LABEL_DEPTH`` + judged documents) into
``outputs/quickstart_dev/labels/``. Writes ``outputs/quickstart_dev/{dev,train}/`` (BEIR folders: the split), the
model under ``outputs/quickstart_dev/runs/NAME`` and the evaluation under ``outputs/quickstart_dev/eval/NAME``;
appends a line to ``outputs/quickstart_dev/results.jsonl``. A second call with the same NAME (e.g. with
``QUICKSTART_DEV_DEPTH=30``) reuses the trained model and records the overrides it was trained with.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs" / "quickstart_dev"
N_DEV = 100
WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6)
LABELS = OUT / "labels"  # BM25 run + teacher labels of every train query, as the quickstart makes them


def split(out: Path = OUT, n_dev: int = N_DEV) -> tuple[Path, Path]:
    """``out/train/`` (qrels/train.tsv without ``n_dev`` seeded dev queries) and ``out/dev/`` (their qrels as
    qrels/test.tsv); corpus and queries are links to data/scifact."""
    from rerank_align.data import load_beir

    src = REPO / "data" / "scifact"
    qids = sorted(load_beir(src, split="train").qrels)
    dev = set(random.Random(0).sample(qids, n_dev))
    folders = {"train": (out / "train", "train.tsv", False), "dev": (out / "dev", "test.tsv", True)}
    for folder, name, keep_dev in folders.values():
        (folder / "qrels").mkdir(parents=True, exist_ok=True)
        for f in ("corpus.jsonl", "queries.jsonl"):
            if not (folder / f).exists():
                (folder / f).symlink_to(src / f)
        lines = (src / "qrels" / "train.tsv").read_text().splitlines(keepends=True)
        kept = [ln for ln in lines[1:] if (ln.split("\t")[0] in dev) == keep_dev]
        (folder / "qrels" / name).write_text(lines[0] + "".join(kept))
    return folders["train"][0], folders["dev"][0]


def main() -> int:
    name, overrides = sys.argv[1], sys.argv[2:]
    os.chdir(REPO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rerank_align.evaluation.cli import main as eval_main
    from rerank_align.train import main as train_main

    train_dir, dev_dir = split()
    run, teacher = LABELS / "bm25_train.run", LABELS / "teacher.jsonl"
    if not teacher.exists():
        sys.path.insert(0, str(REPO / "scripts"))
        from quickstart import teacher_labels

        from rerank_align.data import load_beir

        col = load_beir(REPO / "data" / "scifact", split="train")
        LABELS.mkdir(parents=True, exist_ok=True)
        # Dev queries are labelled too (their qrels are not in the train split, so they never become training
        # groups); the dev evaluation reranks the same BM25 run.
        teacher_labels(col, sorted(col.qrels), LABELS)
    model = OUT / "runs" / name
    t0 = time.time()
    trained_with = model / "dev_overrides.json"
    reused = (model / "reranker.json").exists()
    if reused:
        # the row must say how this model was trained, not what this call was given
        if not trained_with.exists():
            sys.exit(
                f"{model}: trained before the dev script recorded its overrides; retrain under a new NAME"
            )
        stored = json.loads(trained_with.read_text())
        if overrides and overrides != stored:
            sys.exit(f"{model} was trained with {stored}, not {overrides}; pass no overrides or a new NAME")
        overrides = stored
    else:
        train_main(
            [
                "recipes/quickstart/minilm_scifact.yaml",
                f"data.beir={train_dir}",
                f"data.run={run}",
                f"data.teacher_files=[{teacher}]",
                f"training.output_dir={model}",
                *overrides,
            ]
        )
        trained_with.write_text(json.dumps(overrides))
    train_s = time.time() - t0
    system = {"type": "reranker", "path": str(model)}  # precision: auto (rerank_align/precision.py)
    suite = {
        "name": f"quickstart_dev_{name}",
        "depth": int(os.environ.get("QUICKSTART_DEV_DEPTH", "20")),
        "metrics": ["nDCG@10"],
        "cache": str(OUT / "score_cache.sqlite"),
        "collections": [{"name": "dev", "path": str(dev_dir), "run": str(run)}],
        "systems": [
            {"name": "bm25", "type": "first_stage"},
            {"name": "ce", **system},
            *({"name": f"ce+bm25@{w}", **system, "fuse_first_stage": w} for w in WEIGHTS),
        ],
        "baseline": "bm25",
    }
    # a rerun at another depth (QUICKSTART_DEV_DEPTH) keeps the depth-20 evaluation beside it
    tag = name if suite["depth"] == 20 else f"{name}_depth{suite['depth']}"
    suite_path = OUT / "eval" / f"{tag}.yaml"
    suite_path.parent.mkdir(parents=True, exist_ok=True)
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False))
    eval_main([str(suite_path), "--out", str(OUT / "eval" / tag), "--quiet"])
    res = json.loads((OUT / "eval" / tag / "results.json").read_text())
    metrics = {s: round(m["nDCG@10"], 4) for s, m in res["collections"]["dev"]["metrics"].items()}
    line = {
        "name": name,
        "overrides": overrides,
        "reused_model": reused,
        "depth": suite["depth"],
        "train_s": round(train_s, 1),
        "dev_nDCG@10": metrics,
    }
    print(json.dumps(line))
    with open(OUT / "results.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
