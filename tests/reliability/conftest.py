"""Fixtures for the reliability tests: a small synthetic BEIR task and a tiny training recipe on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rerank_align_testing.synthetic import make_task, write_beir


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Tiny models gain nothing from threads, and on a shared CPU extra threads cost ~10x; subprocesses too."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def syn_task(tmp_path_factory) -> Path:
    return write_beir(make_task(n_train=16, n_test=6, n_candidates=10), tmp_path_factory.mktemp("rel_syn"))


def tiny_recipe(model: Path, task: Path, out: Path, path: Path, **training) -> Path:
    """A score/infonce recipe on the tiny causal model, written as YAML (what `python -m rerank_align.train` reads)."""
    d = {
        "model": {
            "name_or_path": str(model),
            "kind": "yesno",
            "max_query_length": 8,
            "max_document_length": 24,
            "max_length": 64,
        },
        "data": {
            "beir": str(task),
            "split": "train",
            "run": str(task / "first_stage.run"),
            "num_negatives": 5,
            "max_train_samples": 24,
        },
        "method": {"loss": "infonce", "group_size": 4},
        "training": {
            "output_dir": str(out),
            "learning_rate": 1e-3,
            "disable_tqdm": True,
            "per_device_train_batch_size": 2,
            "logging_steps": 1,
            **training,
        },
        "seed": 13,
    }
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path
