"""ONNX Runtime backend for encoder cross-encoders: the same scores, a faster CPU forward.

``Reranker.from_pretrained(path, backend="onnx")`` (or ``"onnx-int8"``; ``backend:`` in an eval-suite system,
``--backend`` of ``label``) scores through an ONNX Runtime session instead of the torch module. Only the
sequence-classification forward of an encoder (``kind: head``, ``architecture: encoder``) is exported: tokenisation,
length-sorted batching and the contract stay the project's, so a pair gets the same token ids on both backends.

- ``onnx``: the float32 graph. Scores equal the torch forward's to float rounding (checked at export on a padded
  batch of two pairs: max |Δ| must stay ≤ 1e-3, or the export is refused; 4e-6 measured on MiniLM-L6). ONNX
  Runtime applies its own graph optimisations (operator fusion) when the session is created.
- ``onnx-int8``: the same graph after ONNX Runtime's dynamic quantisation of the linear layers (int8 weights with one
  scale per output channel, activations quantised per batch with one scale per tensor at run time; Jacob et al.
  2018, arXiv 1712.05877, as implemented by ``onnxruntime.quantization.quantize_dynamic``), except the feed-forward
  down-projections (weight shape intermediate × hidden), which stay float32: their input, the GELU output, carries
  the outlier features that one activation scale per tensor cannot represent (Bondarenko et al. 2021, arXiv
  2109.12948). On held-out SciFact train queries that one choice raised the Spearman correlation with float32 from
  0.9940 to 0.9972 (the best of the variants tried) for 1.44× instead of 1.76× the float32 graph's speed; on SciFact
  test the quickstart model loses 0.0014 nDCG@10 (p 0.63) against float32 (scripts/onnx_int8_dev.py).
- ``onnx-int8-full``: every linear layer in int8: the fastest, and the furthest from float32 (SciFact test
  nDCG@10 −0.0076 for the quickstart model). docs/benchmarks.md has both, measured.
- Of the quantisation settings measured (signed/unsigned weights, per-tensor/per-channel scales, 7-bit
  ``reduce_range``) signed weights with per-channel scales were both the closest to float32 and the fastest on an
  AVX2 CPU; activation × activation products (attention) are never quantised (``MatMulConstBOnly``).

Why not sentence-transformers' own ONNX backend: its ``onnx`` extra needs ``optimum-onnx``, whose only releases
require transformers < 4.58, while sentence-transformers 6.3 requires transformers ≥ 5; the two cannot be installed
together. The export here is ``torch.onnx.export`` with eager attention (the SDPA path traces its padding branch as
a constant) and the inputs named in the order of the model's ``forward`` signature.

Exports are cached by the reranker's weights fingerprint under ``$RERANK_ALIGN_ONNX_CACHE`` (default
``$XDG_CACHE_HOME/rerank_align/onnx``), written atomically with a provenance file; a model folder is never written to.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank_align.errors import RerankAlignError
from rerank_align.io import atomic_dir, atomic_write, user_cache
from rerank_align.scoring.contract import ScoringContract

BACKENDS = ("torch", "onnx", "onnx-int8", "onnx-int8-full")
CACHE_ENV = "RERANK_ALIGN_ONNX_CACHE"
PARITY_TOLERANCE = 1e-3
_FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx", "onnx-int8-full": "model_int8_full.onnx"}
# what each int8 file holds, for score caches: a changed recipe must not reuse old scores
RECIPES = {
    "onnx-int8": "int8-dynamic/per-channel/ffn-down-float32",
    "onnx-int8-full": "int8-dynamic/per-channel/all-linear",
}


def check_backend(backend: str, contract: ScoringContract, where: str = "backend") -> None:
    """One line naming the key and the fix when ``backend`` cannot score this contract."""
    if backend not in BACKENDS:
        raise RerankAlignError(
            f"unknown backend {backend!r}", where=where, hint=f"use one of {', '.join(BACKENDS)}"
        )
    if backend != "torch" and not (contract.kind == "head" and contract.architecture == "encoder"):
        raise RerankAlignError(
            f"backend {backend!r} exports encoder cross-encoders only (this reranker is {contract.kind} "
            f"on a {contract.architecture})",
            where=where,
            hint="use backend: torch",
        )


def default_cache() -> Path:
    """``$RERANK_ALIGN_ONNX_CACHE``, else ``$XDG_CACHE_HOME/rerank_align/onnx`` (``~/.cache/...``)."""
    return user_cache(CACHE_ENV, "onnx")


def _input_names(model: Any, batch: dict[str, torch.Tensor]) -> list[str]:
    # torch.onnx.export binds keyword inputs in the order of forward()'s signature, not the dict's order
    params = list(inspect.signature(model.forward).parameters)
    return [p for p in params if p in batch]


def _probe_batch(encoder: Any) -> dict[str, torch.Tensor]:
    """Two real-looking pairs of different lengths, so the exported graph sees padding and both masks."""
    feats = encoder.encode(
        ["what causes tides", "does vitamin d supplementation reduce the risk of fractures in older adults"],
        [
            "Tides are caused by the moon.",
            "A randomised trial of vitamin D and calcium in 36,282 postmenopausal women found no reduction in hip "
            "fractures, although adherent participants had fewer fractures than those given placebo.",
        ],
    )
    return encoder.collate(feats)


def _linear_matmuls(path: Path, config: Any) -> tuple[list[str], set[str]]:
    """The MatMul nodes with a weight (a graph initializer) as second input, and among them the feed-forward
    down-projections (weight intermediate_size × hidden_size), found by shape so any encoder family works."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    linear = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in shapes]
    down_shape = (config.intermediate_size, config.hidden_size)
    down = {n.name for n in graph.node if n.op_type == "MatMul" and shapes.get(n.input[1]) == down_shape}
    if not down:
        raise RerankAlignError(
            f"no feed-forward down-projection ({down_shape[0]} × {down_shape[1]}) found in the exported graph",
            where=str(path),
            hint="use backend: onnx-int8-full or onnx",
        )
    return linear, down


def export(model: Any, encoder: Any, directory: Path, *, fingerprint: str) -> dict[str, Any]:
    """Write the float32 and int8 graphs (:data:`_FILES`) into ``directory`` (a fresh folder) with ``onnx.json``."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    t0 = time.time()
    batch = _probe_batch(encoder)
    # a copy with eager attention: the SDPA path would trace its padding branch as a constant
    m = copy.deepcopy(model)
    if hasattr(m, "merge_and_unload"):  # a LoRA adapter: the merged weights compute the same function
        m = m.merge_and_unload()
    m = m.float().eval().to("cpu")
    if hasattr(m, "set_attn_implementation"):
        m.set_attn_implementation("eager")
    names = _input_names(m, batch)
    if "input_ids" not in names:
        raise RerankAlignError(
            f"cannot name the inputs of {type(m).__name__}.forward for the export",
            where="backend",
            hint="use backend: torch",
        )
    fp32 = directory / _FILES["onnx"]
    with torch.no_grad():
        torch.onnx.export(
            m,
            (),
            str(fp32),
            kwargs={k: batch[k] for k in names},
            input_names=names,
            output_names=["logits"],
            dynamic_axes={k: {0: "batch", 1: "tokens"} for k in names} | {"logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        reference = m(**{k: batch[k] for k in names}).logits[:, 0].float().numpy()
    linear, down = _linear_matmuls(fp32, m.config)
    for backend, nodes in (("onnx-int8", [n for n in linear if n not in down]), ("onnx-int8-full", linear)):
        quantize_dynamic(
            str(fp32),
            str(directory / _FILES[backend]),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=nodes,
        )
    feed = {k: batch[k].numpy() for k in names}
    diffs = {}
    for backend, file in _FILES.items():
        sess = ort.InferenceSession(str(directory / file), providers=["CPUExecutionProvider"])
        diffs[backend] = float(np.abs(sess.run(None, feed)[0][:, 0] - reference).max())
    if diffs["onnx"] > PARITY_TOLERANCE:
        raise RerankAlignError(
            f"the ONNX export scores {diffs['onnx']:.2e} away from the torch forward (tolerance {PARITY_TOLERANCE})",
            where=str(directory),
            hint="score with backend: torch and report the model type",
        )
    info = {
        "fingerprint": fingerprint,
        "inputs": names,
        "files": _FILES,
        "recipes": RECIPES,
        "max_abs_diff_vs_torch": diffs,
        "quantization": {
            "method": "onnxruntime.quantization.quantize_dynamic",
            "weight_type": "QInt8",
            "per_channel": True,
            "linear_layers": len(linear),
            "float32_in_onnx_int8": sorted(down),
        },
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
        "seconds": round(time.time() - t0, 2),
    }
    with atomic_write(directory / "onnx.json") as fh:
        json.dump(info, fh, indent=2)
    return info


def weights_key(model: Any, contract: ScoringContract) -> str:
    """sha256 of the contract and every parameter and buffer: two models share an export only if they would score
    alike (a reranker built in code has no weights file to fingerprint)."""
    h = hashlib.sha256(contract.sha256.encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def exported(model: Any, encoder: Any, fingerprint: str | None = None, cache: Path | None = None) -> Path:
    """The cache folder holding this model's exports (keyed by :func:`weights_key`), exported once, atomically."""
    fingerprint = weights_key(model, encoder.contract) if fingerprint is None else fingerprint
    folder = (cache or default_cache()) / fingerprint[:32]
    meta = folder / "onnx.json"
    complete = all((folder / f).is_file() for f in _FILES.values())
    if complete and meta.is_file():
        info = json.loads(meta.read_text())
        # an export made under another quantisation recipe holds other int8 graphs: export again
        if info.get("fingerprint") == fingerprint and info.get("recipes") == RECIPES:
            return folder
    with atomic_dir(folder) as tmp:
        export(model, encoder, tmp, fingerprint=fingerprint)
    return folder


class OnnxScorer:
    """An ONNX Runtime session over an exported cross-encoder: a collated batch → one float32 score per row."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        # the torch thread setting is the user's one knob for CPU parallelism; keep both backends on it
        so.intra_op_num_threads = threads or torch.get_num_threads()
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        feed = {k: batch[k].cpu().numpy() for k in self.inputs}
        return self.session.run(None, feed)[0][:, 0].astype(np.float32)


def load_onnx(model: Any, encoder: Any, contract: ScoringContract, backend: str) -> OnnxScorer:
    check_backend(backend, contract)
    return OnnxScorer(exported(model, encoder, weights_key(model, contract)) / _FILES[backend])
