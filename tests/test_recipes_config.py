"""Recipe parsing: types, defaults, overrides, base inheritance."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_align.config import load_recipe
from rerank_align.config.load import apply_overrides
from rerank_align.errors import RecipeError

BASE = """
model: {name_or_path: tiny, architecture: causal, kind: yesno, template: qwen3}
data: {train_file: groups.jsonl}
method: {loss: infonce, loss_args: {temperature: 0.5}, group_size: 4}
training: {learning_rate: 1.0e-4, num_train_epochs: 1}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_typed_values_and_defaults(tmp_path):
    r = load_recipe(write(tmp_path, "r.yaml", BASE))
    assert r.model.kind == "yesno" and r.model.max_length == 512
    assert r.method.loss_args == {"temperature": 0.5} and r.method.group_size == 4
    assert r.training["learning_rate"] == 1e-4
    assert r.peft.enabled is False and r.family.trainer == "score_trainer"


def test_overrides_keep_types_and_reach_nested_keys(tmp_path):
    p = write(tmp_path, "r.yaml", BASE)
    r = load_recipe(
        p,
        [
            "method.group_size=6",
            "training.learning_rate=2e-5",
            "peft.enabled=true",
            "method.loss_args.temperature=0.1",
        ],
    )
    assert r.method.group_size == 6 and r.peft.enabled is True
    assert r.training["learning_rate"] == 2e-5 and r.method.loss_args["temperature"] == 0.1
    with pytest.raises(RecipeError, match="method.grop_size"):
        load_recipe(p, ["method.grop_size=3"])
    with pytest.raises(RecipeError, match="key=value"):
        apply_overrides({}, ["method.group_size"])


def test_yaml_12_scalars_in_files_and_overrides(tmp_path):
    # YAML 1.1 (PyYAML's default) would give eval_strategy False and learning_rate the string "3e-5"
    text = BASE.replace("learning_rate: 1.0e-4", "learning_rate: 3e-5, eval_strategy: no, save_strategy: off")
    r = load_recipe(write(tmp_path, "r.yaml", text), ["training.logging_strategy=no", "peft.enabled=True"])
    assert r.training["eval_strategy"] == "no" and r.training["save_strategy"] == "off"
    assert r.training["logging_strategy"] == "no"
    assert r.training["learning_rate"] == 3e-5 and isinstance(r.training["learning_rate"], float)
    assert r.peft.enabled is True


def test_suite_overrides_use_yaml_12_scalars(tmp_path):
    from rerank_align.config.yaml_io import load_yaml

    assert load_yaml("{a: no, b: yes, c: true, d: 1e-3, e: 7, f: .5, g: -2.5E+2}") == {
        "a": "no",
        "b": "yes",
        "c": True,
        "d": 1e-3,
        "e": 7,
        "f": 0.5,
        "g": -250.0,
    }


def test_base_inheritance_deep_merges(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    child = write(
        tmp_path, "child.yaml", "base: base.yaml\nmethod: {group_size: 3}\ntraining: {num_train_epochs: 2}\n"
    )
    r = load_recipe(child)
    assert r.method.group_size == 3 and r.method.loss == "infonce"
    assert r.training == {"learning_rate": 1e-4, "num_train_epochs": 2}
    assert r.model.template == "qwen3"


def test_pointwise_loss_allows_groups_of_one(tmp_path):
    r = load_recipe(
        write(tmp_path, "r.yaml", BASE), ["method.loss=bce", "method.loss_args={}", "method.group_size=1"]
    )
    assert r.method.group_size == 1


def test_yaml_is_loaded_safely(tmp_path):
    p = write(tmp_path, "evil.yaml", "model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError, match="invalid YAML"):
        load_recipe(p)
