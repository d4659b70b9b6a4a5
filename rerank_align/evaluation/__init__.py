"""Evaluation harness (docs/design.md §6): rerank real first-stage runs, compare systems, test significance, report.

Heavy libraries (ir-measures, scipy, matplotlib, torch, sentence-transformers) are imported inside functions.
"""

from rerank_align.evaluation.config import (
    CollectionSpec,
    SignificanceSpec,
    Suite,
    SuiteError,
    SystemSpec,
    load_suite,
    parse_suite,
)
from rerank_align.evaluation.runner import run_suite
from rerank_align.evaluation.systems import CrossEncoderScorer, LexicalOverlapScorer, Scorer

__all__ = [
    "CollectionSpec",
    "CrossEncoderScorer",
    "LexicalOverlapScorer",
    "Scorer",
    "SignificanceSpec",
    "Suite",
    "SuiteError",
    "SystemSpec",
    "load_suite",
    "parse_suite",
    "run_suite",
]
