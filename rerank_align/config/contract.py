"""The scoring contract (reranker.json) of a recipe, built completely in one place.

Training builds the contract here once, before the model is loaded; every trainer, the in-training ranking eval
and every save use that object as it is and never change a field of it (tests/training/test_contract_once.py
checks both: the saved reranker.json equals this function's output for every recipe family, and no module under
``rerank_align/training`` assigns to a contract field).
"""

from __future__ import annotations

from typing import Any

from rerank_align.config.load import model_architecture
from rerank_align.config.recipe import Recipe
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.modeling import build_contract


def listwise_decoding(recipe: Recipe) -> str:
    """The list inference saved for a listwise recipe: ``method.listwise_decoding``, where ``auto`` means FIRST's
    first-token logits for ``first`` and generating the permutation for every other method (fullrank and the
    preference methods, which train on generated permutations)."""
    decoding = recipe.method.listwise_decoding
    if decoding != "auto":
        return decoding
    return "first" if recipe.method.name == "first" else "generate"


def list_format_of(recipe: Recipe) -> dict[str, Any] | None:
    """The recipe's ``list_format`` settings for a listwise contract (``None`` for a pointwise one)."""
    m, mc = recipe.model, recipe.method
    if m.kind != "listwise":
        # a pointwise contract has no list section; build_contract ignores this
        return {"prompt_template": m.list_prompt_template} if m.list_prompt_template else None
    lf: dict[str, Any] = {}
    if m.list_prompt_template:
        lf["prompt_template"] = m.list_prompt_template
    if m.list_identifier:
        lf["identifier"] = m.list_identifier
    lf.update(
        decoding=listwise_decoding(recipe),
        strategy=mc.listwise_strategy,
        window=mc.listwise_window,
        stride=mc.listwise_stride,
    )
    return lf


def recipe_contract(recipe: Recipe, tokenizer: Any, architecture: str | None = None) -> ScoringContract:
    """The complete contract a recipe trains and saves: template, answer tokens, lengths, truncation, the list
    prompt and list inference settings (listwise), the vision section (VLM).

    ``architecture`` defaults to ``model_architecture(recipe)`` (reads the base model's config.json for
    ``auto``); ``tokenizer`` is the base model's (presets resolve BOS/EOS and answer token ids through it)."""
    m = recipe.model
    return build_contract(
        tokenizer,
        base_model=m.name_or_path,
        base_model_revision=m.revision,
        kind=m.kind,
        architecture=architecture if architecture is not None else model_architecture(recipe),
        template=m.template,
        instruction=m.instruction,
        formula=m.formula,
        answer_yes=m.answer_yes,
        answer_no=m.answer_no,
        max_query_length=m.max_query_length,
        max_document_length=m.max_document_length,
        max_length=m.max_length,
        document_format=m.document_format,
        truncation_side={"query": m.query_truncation_side, "document": m.document_truncation_side},
        list_format=list_format_of(recipe),
        vision={
            k: v
            for k, v in (("min_pixels", m.image_min_pixels), ("max_pixels", m.image_max_pixels))
            if v is not None
        },
    )
