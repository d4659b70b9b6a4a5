"""Recipes (docs/design.md §5)."""

from rerank_align.config.load import load_recipe, parse_recipe
from rerank_align.config.recipe import METHODS, Recipe

__all__ = ["METHODS", "Recipe", "load_recipe", "parse_recipe"]
