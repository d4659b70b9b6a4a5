"""rerank_align: fine-tune and preference-align LLM rerankers and cross-encoders from YAML recipes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rerank_align.scoring.reranker import Reranker


def __getattr__(name: str) -> Any:
    # Lazy, so `import rerank_align` (and `rerank-align --help`) never pays for torch/transformers.
    if name == "Reranker":
        from rerank_align.scoring.reranker import Reranker

        return Reranker
    raise AttributeError(name)


__all__ = ["Reranker", "__version__"]
