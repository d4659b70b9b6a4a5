"""Shipping a trained reranker: merge LoRA adapters, export to other model shapes, write model cards, push.

Every step that writes a model checks score parity on a probe set before the output folder appears
(``rerank_align.export.common.check_parity``); the folder is written atomically (``rerank_align.io.atomic_dir``).

Command-line entry points (each ``main(argv) -> int``):

- ``rerank_align.export.merge:main``  — ``rerank-align merge``
- ``rerank_align.export.export:main`` — ``rerank-align export``
- ``rerank_align.export.push:main``   — ``rerank-align push``
- ``rerank_align.export.card:main``   — (re)write the model card of a folder
"""
