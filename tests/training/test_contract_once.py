"""The scoring contract is built completely in one place (``config.contract.recipe_contract``); no trainer patches it.

Two halves:
- every recipe's tiny 2-step run (tests/recipes/test_recipes.py) compares the reranker.json it saved, byte for byte,
  with ``recipe_contract(recipe, tokenizer).to_json()``; the test below checks that those runs cover every trainer
  family (score, sft_yesno, listwise, preference) in the default suite;
- an AST check that no module under rerank_align/training assigns to a field of a contract (or of its
  ``list_format`` / ``vision`` sections), calls ``setattr`` on one, or ``dataclasses.replace``-s one; with a self-test
  on the patch the listwise trainer used to apply.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAINING = REPO / "rerank_align" / "training"
CONTRACT_PARTS = ("contract", "list_format", "vision")


def _mentions_contract(node: ast.AST, tainted: set[str]) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and (n.id in tainted or any(p in n.id for p in CONTRACT_PARTS)):
            return True
        if isinstance(n, ast.Attribute) and n.attr in CONTRACT_PARTS:
            return True
    return False


def contract_writes(source: str, filename: str = "<src>") -> list[str]:
    """``file:line`` of every statement that changes a contract object in ``source``.

    A name bound to an expression that reaches a contract (``lf = contract.list_format``) counts as the contract;
    ``self.contract = contract`` (storing the object on a trainer) does not change the contract and is allowed."""
    tree = ast.parse(source)
    tainted: set[str] = set()
    for node in ast.walk(tree):  # aliases (a name or attribute chain, not a call's result), flow-insensitive
        value = getattr(node, "value", None)
        if (
            isinstance(node, ast.Assign)
            and isinstance(value, (ast.Name, ast.Attribute))
            and _mentions_contract(value, set())
        ):
            tainted.update(t.id for t in node.targets if isinstance(t, ast.Name))
    found = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for t in targets:
            for n in ast.walk(t):
                # the object written into is n.value: an attribute of a contract, or an item of its dicts
                if isinstance(n, (ast.Attribute, ast.Subscript)) and isinstance(n.ctx, (ast.Store, ast.Del)):
                    if _mentions_contract(n.value, tainted):
                        found.append(f"{filename}:{node.lineno}")
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name in ("setattr", "replace", "update", "__setattr__") and node.args:
                obj = node.args[0] if name in ("setattr", "replace") else f.value  # type: ignore[union-attr]
                if _mentions_contract(obj, tainted):
                    found.append(f"{filename}:{node.lineno}")
    return found


def test_no_training_module_changes_a_contract():
    found = []
    for path in sorted(TRAINING.rglob("*.py")):
        found += contract_writes(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert found == [], f"build the whole contract in config.contract.recipe_contract instead: {found}"


@pytest.mark.parametrize(
    "patch",
    [
        # the listwise trainer's former patch, and variations of it
        "lf = contract.list_format\nlf.decoding = 'first'\n",
        "lf = contract.list_format\nlf.strategy, lf.window, lf.stride = 'full', 4, 2\n",
        "contract.list_format.decoding = 'first'\n",
        "self.contract.max_length = 8\n",
        "contract.answer_tokens['yes'] = 'Yes'\n",
        "contract.max_length += 1\n",
        "setattr(contract, 'formula', 'yes_logit')\n",
        "c = dataclasses.replace(contract, formula='yes_logit')\n",
        "encoder.contract.vision.min_pixels = 4\n",
    ],
)
def test_the_check_finds_a_contract_patch(patch):
    assert contract_writes(patch)


@pytest.mark.parametrize(
    "fine",
    [
        "self.contract = contract\n",
        "trainer.contract, trainer.ranking_eval = contract, ranking_eval\n",
        "builder = ListPromptBuilder(tokenizer, contract)\nbuilder.tokenizer = tok\n",
        "args.max_length = max(len(e) for e in examples)\n",
    ],
)
def test_the_check_allows_storing_and_reading_a_contract(fine):
    assert contract_writes(fine) == []


def test_the_recipe_runs_cover_every_trainer_family():
    """The byte-for-byte reranker.json check lives in the default (not slow) tiny run of every recipe."""
    from rerank_align.config import load_recipe
    from tests.recipes.conftest import RECIPES, rel
    from tests.recipes.test_recipes import DEFAULT_REPRESENTATIVES

    default = [
        p
        for p in RECIPES
        if not rel(p).startswith(("recipes/qwen3-4b/", "recipes/qwen3-8b/"))
        or rel(p).startswith(DEFAULT_REPRESENTATIVES)
    ]
    from rerank_align.config.recipe import METHODS

    trainers = {load_recipe(p).family.trainer for p in default}
    assert {family.trainer for family in METHODS.values()} <= trainers, trainers


@pytest.mark.parametrize(
    ("method", "setting", "expected"),
    [
        # method.listwise_decoding's documented rule: 'auto' = first for FIRST, generate for the others
        ("first", "auto", "first"),
        ("fullrank", "auto", "generate"),
        ("dpo", "auto", "generate"),
        ("irpo", "auto", "generate"),
        ("first", "generate", "generate"),
        ("fullrank", "first", "first"),
        ("dpo", "first", "first"),
    ],
)
def test_listwise_decoding_rule(method, setting, expected, tiny_causal):
    from rerank_align.config import parse_recipe
    from rerank_align.config.contract import recipe_contract
    from rerank_align.scoring.modeling import load_tokenizer

    recipe = parse_recipe(
        {
            "model": {"name_or_path": str(tiny_causal), "architecture": "causal", "kind": "listwise"},
            "method": {
                "name": method,
                "listwise_decoding": setting,
                "listwise_strategy": "full",
                "listwise_window": 7,
                "listwise_stride": 3,
            },
            "data": {"train_file": "unused.jsonl"},
            "training": {"output_dir": "unused"},
        }
    )
    lf = recipe_contract(recipe, load_tokenizer(str(tiny_causal))).list_format
    assert (lf.decoding, lf.strategy, lf.window, lf.stride) == (expected, "full", 7, 3)
