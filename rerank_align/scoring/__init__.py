"""The scoring contract (docs/design.md §1): reranker.json, tokenisation, the scoring forward pass and ``Reranker``."""

from rerank_align.scoring.contract import CONTRACT_FILE, ListFormat, ScoringContract
from rerank_align.scoring.encode import PairEncoder
from rerank_align.scoring.forward import ScoreOutput, score_forward
from rerank_align.scoring.modeling import build_contract, load_model, load_tokenizer
from rerank_align.scoring.reranker import Reranker

__all__ = [
    "CONTRACT_FILE",
    "ListFormat",
    "PairEncoder",
    "Reranker",
    "ScoreOutput",
    "ScoringContract",
    "build_contract",
    "load_model",
    "load_tokenizer",
    "score_forward",
]
