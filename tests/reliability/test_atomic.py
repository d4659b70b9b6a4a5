"""Interrupting a write leaves the previous good state: files, folders, checkpoints, merges, exports, results,
labelled data. Interruptions are simulated by raising inside the write (KeyboardInterrupt, as a Ctrl-C would)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from rerank_align import io as rio
from rerank_align.errors import ContractError
from rerank_align.reliability import COMMIT_FILE, is_complete, resolve_resume


def boom(*_a, **_k):
    raise KeyboardInterrupt


def snapshot(root: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``root``."""
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def leftovers(folder: Path) -> list[str]:
    return [
        p.name
        for p in folder.iterdir()
        if p.name.startswith(".") and p.name.endswith((".tmp", ".partial", ".old"))
    ]


def test_file_and_folder_primitives(tmp_path, monkeypatch):
    f = tmp_path / "labels.jsonl"
    rio.write_jsonl(f, [{"a": 1}, {"a": 2}])
    before = f.read_bytes()

    def records():
        yield {"a": 3}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rio.write_jsonl(f, records())
    with monkeypatch.context() as m:  # crash after the bytes are written, before the rename
        m.setattr(os, "fsync", boom)
        with pytest.raises(KeyboardInterrupt):
            rio.write_json(tmp_path / "labels.jsonl", {"new": True})
    assert f.read_bytes() == before

    d = tmp_path / "model"
    with rio.atomic_dir(d) as tmp:
        (tmp / "w.bin").write_bytes(b"good")
    with pytest.raises(KeyboardInterrupt), rio.atomic_dir(d) as tmp:
        (tmp / "w.bin").write_bytes(b"half")
        raise KeyboardInterrupt
    assert (d / "w.bin").read_bytes() == b"good" and sorted(os.listdir(d)) == ["w.bin"]
    assert leftovers(tmp_path) == []


def test_interrupted_checkpoint_is_never_resumed(tiny_causal, syn_task, tmp_path, monkeypatch):
    from transformers import Trainer

    from rerank_align import train
    from rerank_align.config import load_recipe
    from rerank_align.scoring import Reranker
    from tests.reliability.conftest import tiny_recipe

    out = tmp_path / "run"
    recipe = tiny_recipe(
        tiny_causal, syn_task, out, tmp_path / "r.yaml", max_steps=4, save_strategy="steps", save_steps=2
    )
    real, calls = Trainer._save_rng_state, {"n": 0}

    def cut_short(self, output_dir):  # the second checkpoint dies after its weights and optimizer are written
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", cut_short)
    with pytest.raises(KeyboardInterrupt):
        train.run(load_recipe(recipe))
    monkeypatch.undo()
    assert is_complete(out / "checkpoint-2") and not is_complete(out / "checkpoint-4")
    assert (
        out / "checkpoint-4" / "model.safetensors"
    ).is_file()  # it looks like a checkpoint, but is not one
    assert resolve_resume(True, out) == str(out / "checkpoint-2")
    with pytest.raises(Exception, match="incomplete"):
        resolve_resume(str(out / "checkpoint-4"), out)
    with pytest.raises(ContractError, match="no reranker.json"):  # the final model was never written
        Reranker.from_pretrained(out)
    summary = train.run(load_recipe(recipe, ["training.resume_from_checkpoint=true"]))
    assert summary["steps"] == 4 and is_complete(out / "checkpoint-4")
    assert json.loads((out / "checkpoint-4" / COMMIT_FILE).read_text()) == {"global_step": 4}


def test_interrupted_merge_keeps_the_previous_merge(tiny_causal, tmp_path, monkeypatch):
    from rerank_align.export import merge as merge_mod
    from tests.export.conftest import make_adapter

    adapter = make_adapter(tiny_causal, tmp_path / "adapter")
    out = tmp_path / "merged"
    merge_mod.merge(adapter, out)
    good = snapshot(out)
    monkeypatch.setattr(merge_mod, "write_card", boom)  # the last step inside the temporary folder
    with pytest.raises(KeyboardInterrupt):
        merge_mod.merge(adapter, out, overwrite=True)
    assert snapshot(out) == good
    assert leftovers(tmp_path) == []


def test_interrupted_export_keeps_the_previous_export(tiny_causal, tmp_path, monkeypatch):
    from rerank_align.export import export as export_mod
    from rerank_align.scoring import Reranker

    Reranker.from_base(str(tiny_causal)).save_pretrained(tmp_path / "src")
    out = tmp_path / "seqcls"
    assert export_mod.main([str(tmp_path / "src"), "--to", "seq-cls", "--out", str(out)]) == 0
    good = snapshot(out)
    monkeypatch.setattr(export_mod, "plain_transformers_scores", boom)  # after the weights are saved
    with pytest.raises(KeyboardInterrupt):
        export_mod.main([str(tmp_path / "src"), "--to", "seq-cls", "--out", str(out), "--overwrite"])
    assert snapshot(out) == good
    assert leftovers(tmp_path) == []


def test_interrupted_results_and_labelled_data_keep_the_previous_files(tmp_path, monkeypatch):
    from rerank_align.evaluation.config import load_suite
    from rerank_align.evaluation.runner import run_suite
    from rerank_align.mine import main as mine_main
    from tests.evaluation.conftest import make_collection

    col = make_collection(tmp_path / "col")
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"name: s\ndepth: 10\ncollections:\n  - {{name: c, path: {col}, run: bm25_top100.run}}\n"
        "systems:\n  - {name: first, type: first_stage}\n  - {name: lex, type: lexical}\n"
        "baseline: first\nsignificance: {permutations: 100, bootstrap: 100}\n"
    )
    out = tmp_path / "eval"
    run_suite(load_suite(suite), out=out, show_progress=False)
    good = snapshot(out / "results.json")
    mined = tmp_path / "groups.jsonl"
    assert (
        mine_main([str(col), "--split", "test", "--run", str(col / "bm25_top100.run"), "--out", str(mined)])
        == 0
    )
    good_mined = snapshot(mined)

    monkeypatch.setattr(os, "fsync", boom)  # every atomic write dies between its bytes and its rename
    with pytest.raises(KeyboardInterrupt):
        run_suite(load_suite(suite), out=out, show_progress=False, limit_queries=3)
    with pytest.raises(KeyboardInterrupt):
        mine_main(
            [
                str(col),
                "--split",
                "test",
                "--run",
                str(col / "bm25_top100.run"),
                "--out",
                str(mined),
                "--seed",
                "9",
                "--overwrite",
            ]
        )
    monkeypatch.undo()
    assert snapshot(out / "results.json") == good
    assert snapshot(mined) == good_mined
    assert leftovers(out) == [] and leftovers(tmp_path) == []
