"""Safe loading (safetensors only unless allowed, no remote code unless allowed, YAML safe_load) and no token in any
output: stdout, stderr, logs, checkpoints, cards, results."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from rerank_align.errors import RerankAlignError
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.modeling import load_model

CANARY = "hf_CANARYtokenDoNotLeak0123456789abcdef"


def yesno_contract() -> ScoringContract:
    return ScoringContract(
        kind="yesno",
        architecture="causal",
        base_model="x",
        template="Q: {query} D: {document} A:",
        answer_tokens={"yes": "yes", "no": "no"},
        answer_token_ids={"yes": 5, "no": 6},
    )


def test_pickle_weights_need_allow_pickle(tiny_causal, tmp_path):
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_causal, folder)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(RerankAlignError) as info:
        load_model(str(folder), yesno_contract())
    assert "no safetensors weights" in str(info.value) and "--allow-pickle" in str(info.value)
    assert "\n" not in str(info.value)
    model = load_model(str(folder), yesno_contract(), allow_pickle=True)
    assert torch.equal(model.state_dict()["model.embed_tokens.weight"], state["model.embed_tokens.weight"])


def test_remote_code_is_never_run_unless_allowed(tiny_causal, tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_causal, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "evilqwen"
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    ran = tmp_path / "code_ran"
    (folder / "evil.py").write_text(f"open({str(ran)!r}, 'w').write('x')\n")
    with pytest.raises(RerankAlignError) as info:
        load_model(str(folder), yesno_contract())
    msg = str(info.value)
    assert "\n" not in msg and "trust_remote_code: true" in msg
    assert not ran.exists()


def test_recipe_yaml_is_loaded_safely(tmp_path):
    from rerank_align.config import load_recipe

    ran = tmp_path / "yaml_ran"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"model: !!python/object/apply:os.system ['touch {ran}']\n")
    with pytest.raises(RerankAlignError, match="evil.yaml"):
        load_recipe(recipe)
    assert not ran.exists()


def test_recipe_defaults_are_safe():
    from rerank_align.config.recipe import ModelConfig

    m = ModelConfig(name_or_path="x")
    assert m.trust_remote_code is False and m.allow_pickle is False


def test_token_never_reaches_any_output(tiny_causal, syn_task, tmp_path, monkeypatch, capfd, caplog):
    """HF_TOKEN is a canary; a training run (checkpoints, logs), an eval run and a push --dry-run must not print or
    write it anywhere."""
    from rerank_align.cli import main
    from rerank_align.export.card import main as card_main
    from tests.evaluation.conftest import make_collection
    from tests.reliability.conftest import tiny_recipe

    monkeypatch.setenv("HF_TOKEN", CANARY)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", CANARY)
    caplog.set_level("DEBUG")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    model = work / "model"
    recipe = tiny_recipe(
        tiny_causal, syn_task, model, work / "r.yaml", max_steps=2, save_strategy="steps", save_steps=1
    )
    assert main(["train", str(recipe)]) == 0

    col = make_collection(work / "col", n_queries=4, n_docs=20, depth=8)
    suite = work / "suite.yaml"
    suite.write_text(
        f"name: s\ndepth: 8\ncollections:\n  - {{name: c, path: {col}, run: bm25_top100.run}}\n"
        f"systems:\n  - {{name: first, type: first_stage}}\n  - {{name: trained, type: reranker, path: {model}}}\n"
        "baseline: first\nsignificance: {permutations: 100, bootstrap: 100}\n"
    )
    assert main(["eval", str(suite), "--out", str(work / "eval"), "--no-progress"]) == 0
    assert card_main([str(model), "--results", str(work / "eval" / "results.json")]) == 0
    assert main(["push", str(model), "--repo-id", "me/tiny", "--dry-run"]) == 0

    out, err = capfd.readouterr()
    assert "would upload" in out
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "README.md" for p in files) and any(p.name == "results.json" for p in files)
    assert len(files) > 20
    leaks = [str(p) for p in files if CANARY.encode() in p.read_bytes()]
    assert leaks == []
    assert CANARY not in out and CANARY not in err and CANARY not in caplog.text
