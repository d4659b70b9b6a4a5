"""ONNX Runtime backend for encoder cross-encoders: the same scores, a faster CPU forward.

``Reranker.from_pretrained(path, backend="onnx")`` (or ``"onnx-int8"``; ``backend:`` in an eval-suite system,
``--backend`` of ``label``) scores through an ONNX Runtime session instead of the torch module. Only the
sequence-classification forward of an encoder (``kind: head``, ``architecture: encoder``) is exported: tokenisation,
length-sorted batching and the contract stay the project's, so a pair gets the same token ids on both backends.

- ``onnx``: the float32 graph. Scores equal the torch forward's to float rounding (checked at export on a padded
  batch of two pairs: max |Δ| must stay ≤ 1e-3, or the export is refused; 4e-6 measured on MiniLM-L6). ONNX
  Runtime applies its own graph optimisations (operator fusion) when the session is created.
- ``onnx-int8``: the same graph after ONNX Runtime's dynamic quantisation of every linear layer (int8 weights with
  one scale per output channel, activations quantised per batch with one scale per tensor at run time; Jacob et al.
  2018, arXiv 1712.05877, as implemented by ``onnxruntime.quantization.quantize_dynamic``), with the outlier features
  of the layer inputs split off in float32. The inputs that come out of a normalisation or an activation (query/key/
  value and the up-projection read a LayerNorm output, the down-projection the GELU output) carry a few channels far
  larger than the rest (MiniLM-L6: one channel up to 28 against 6 for the 99th-percentile channel; Bondarenko et al.
  2021, arXiv 2109.12948), and one activation scale per tensor then rounds every other channel coarsely. So, as in
  LLM.int8's mixed-precision decomposition (Dettmers et al. 2022, arXiv 2208.07339), the ``OUTLIER_CHANNELS``
  channels with the largest magnitude on a calibration batch are zeroed in the quantised product and multiplied in
  float32 (``Gather`` + a ``Gemm`` whose bias input is the int8 part; the quantiser rewrites it as MatMul + Add) —
  a static choice of channels,
  where LLM.int8 picks them per batch. The attention output projection (its input is the attention context, merged
  from the heads by a ``Reshape``) has no outliers and is quantised as it is. On 100 held-out SciFact train queries
  this kept a Spearman correlation of 0.9986 with float32 (0.9940 with every layer plainly int8, 0.9972 with the
  down-projections left float32, the previous recipe; scripts/onnx_int8_dev.py). On SciFact test the quickstart
  model's nDCG@10 is 0.0013 above float32 (p 0.74) at 1.60× sentence-transformers' float32 ``predict``, against
  1.68× for plain int8 (docs/benchmarks.md).
- ``onnx-int8-full``: every linear layer plainly in int8, no channel split: ~5 % faster, and the furthest from float32
  (SciFact test nDCG@10 −0.0076 for the quickstart model). docs/benchmarks.md has both, measured.
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
OUTLIER_CHANNELS = 2
RECIPES = {
    "onnx-int8": f"int8-dynamic/per-channel/all-linear/top-{OUTLIER_CHANNELS}-input-channels-float32",
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
    return _pairs_batch(encoder, _CALIBRATION[:2])


# Calibration pairs for the outlier channels: which channels are large is a property of the weights (the same few
# channels on any text), so a handful of ordinary pairs from several domains finds them.
_CALIBRATION = [
    ("what causes tides", "Tides are caused by the moon."),
    (
        "does vitamin d supplementation reduce the risk of fractures in older adults",
        "A randomised trial of vitamin D and calcium in 36,282 postmenopausal women found no reduction in hip "
        "fractures, although adherent participants had fewer fractures than those given placebo.",
    ),
    ("how do i reset my router", "Hold the reset button for ten seconds until the lights blink, then wait."),
    ("who wrote the origin of species", "Charles Darwin published On the Origin of Species in 1859."),
    (
        "python list comprehension syntax",
        "[x * 2 for x in items if x > 0] builds a new list in one expression.",
    ),
    (
        "interest rate and inflation",
        "Central banks raise rates to cool demand when prices rise faster than wages.",
    ),
    (
        "symptoms of dehydration",
        "Thirst, dark urine, dizziness and fatigue are early signs of losing fluids.",
    ),
    (
        "best time to plant tomatoes",
        "Plant seedlings outdoors after the last frost, when nights stay above 10 °C.",
    ),
]


def _pairs_batch(encoder: Any, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    return encoder.collate(encoder.encode([q for q, _ in pairs], [d for _, d in pairs]))


def _calibration_batch(encoder: Any) -> dict[str, torch.Tensor]:
    return _pairs_batch(encoder, _CALIBRATION)


def _linear_matmuls(graph: Any) -> list[Any]:
    """The MatMul nodes with a weight (a graph initializer) as second input: the linear layers."""
    weights = {t.name for t in graph.initializer}
    return [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def _channel_maxima(model: Any, tensors: list[str], feed: dict[str, np.ndarray], mask: np.ndarray) -> dict:
    """max |x| per channel (last axis) of each named tensor over the real (unpadded) tokens of ``feed``."""
    import onnx
    import onnxruntime as ort

    probe = copy.deepcopy(model)
    known = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in known:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = sess.run(tensors, feed)
    real = mask.reshape(-1).astype(bool)
    return {n: np.abs(v.reshape(-1, v.shape[-1])[real]).max(axis=0) for n, v in zip(tensors, values)}


def _split_outlier_channels(model: Any, feed: dict[str, np.ndarray], mask: np.ndarray, k: int) -> list[str]:
    """Rewrite ``model`` (an ONNX ModelProto, in place) so that each linear layer reading a normalisation or
    activation output computes ``(x ⊙ m) W' + b + x[:, S] W[S]``: ``S`` the ``k`` channels of largest max |x| on the
    calibration feed, ``m`` zero on them, ``W'`` the weight with those rows zeroed (quantised later), the last term
    in float32 through a Gemm whose bias input is the rest. Returns the names of the linear nodes so split."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    # the attention context (heads merged by a Reshape/Transpose) has no outlier channels: left as it is
    chosen = [
        n
        for n in _linear_matmuls(graph)
        if producer.get(n.input[0]) is None or producer[n.input[0]].op_type not in ("Reshape", "Transpose")
    ]
    # nodes are keyed by their first output: names are optional in ONNX, output names are unique
    chosen_outputs = {n.output[0] for n in chosen}
    maxima = _channel_maxima(model, sorted({n.input[0] for n in chosen}), feed, mask)
    new: list[Any] = []
    after: dict[str, list[Any]] = {}  # nodes to emit right after the node with this output
    split_inputs: dict[str, str] = {}  # input tensor -> prefix of its masked / gathered versions
    initializers = []
    for node in graph.node:
        if not node.output or node.output[0] not in chosen_outputs:
            new.append(node)
            new += after.pop(node.output[0], []) if node.output else []
            continue
        x, w_name = node.input
        p = node.name
        w = numpy_helper.to_array(weights[w_name])
        idx = np.sort(np.argsort(-maxima[x], kind="stable")[:k]).astype(np.int64)
        if x not in split_inputs:  # q, k and v read the same input: mask and gather it once
            split_inputs[x] = p
            keep = np.ones(w.shape[0], np.float32)
            keep[idx] = 0.0
            initializers += [
                numpy_helper.from_array(keep, f"{p}/outlier_keep"),
                numpy_helper.from_array(idx, f"{p}/outlier_channels"),
                numpy_helper.from_array(np.array([-1, k], np.int64), f"{p}/outlier_shape"),
            ]
            new += [
                helper.make_node(
                    "Mul", [x, f"{p}/outlier_keep"], [f"{p}/x_inliers"], name=f"{p}/outlier_mask"
                ),
                helper.make_node(
                    "Gather",
                    [x, f"{p}/outlier_channels"],
                    [f"{p}/x_out3"],
                    name=f"{p}/outlier_gather",
                    axis=-1,
                ),
                helper.make_node(
                    "Reshape",
                    [f"{p}/x_out3", f"{p}/outlier_shape"],
                    [f"{p}/x_outliers"],
                    name=f"{p}/outlier_2d",
                ),
            ]
        s = split_inputs[x]
        main = w.copy()
        main[idx] = 0.0  # tighter per-column weight scales; the rows are multiplied by zeros anyway
        initializers += [
            numpy_helper.from_array(main, f"{p}/weight_inliers"),
            numpy_helper.from_array(w[idx].copy(), f"{p}/weight_outliers"),
            numpy_helper.from_array(np.array([-1, w.shape[1]], np.int64), f"{p}/out_shape"),
        ]
        y = node.output[0]
        new.append(helper.make_node("MatMul", [f"{s}/x_inliers", f"{p}/weight_inliers"], [y], name=p))
        # add the outlier term after the bias Add, so ONNX Runtime still fuses the bias into the int8 product
        nxt = consumers.get(y, [])
        anchor = (
            nxt[0]
            if len(nxt) == 1 and nxt[0].op_type == "Add" and any(i in weights for i in nxt[0].input)
            else None
        )
        total = anchor.output[0] if anchor is not None else y
        partial = f"{p}/inliers_out"
        if anchor is not None:
            anchor.output[0] = partial
        else:
            new[-1].output[0] = partial
        tail = [
            helper.make_node("Shape", [partial], [f"{p}/shape"], name=f"{p}/shape"),
            helper.make_node(
                "Reshape", [partial, f"{p}/out_shape"], [f"{p}/inliers_2d"], name=f"{p}/inliers_2d"
            ),
            helper.make_node(
                "Gemm",
                [f"{s}/x_outliers", f"{p}/weight_outliers", f"{p}/inliers_2d"],
                [f"{p}/sum_2d"],
                name=f"{p}/outliers",
            ),
            helper.make_node("Reshape", [f"{p}/sum_2d", f"{p}/shape"], [total], name=f"{p}/sum"),
        ]
        if anchor is not None:
            after[partial] = tail
        else:
            new += tail
    graph.initializer.extend(initializers)
    del graph.node[:]
    graph.node.extend(new)
    # the original weights of split layers are no longer read: drop them rather than ship them twice
    used = {i for n in graph.node for i in n.input}
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    return [n.name for n in chosen]


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
    import onnx

    graph = onnx.load(str(fp32))
    linear = [n.name for n in _linear_matmuls(graph.graph)]
    calibration = _calibration_batch(encoder)
    split = _split_outlier_channels(
        graph,
        {k: calibration[k].numpy() for k in names},
        calibration["attention_mask"].numpy(),
        OUTLIER_CHANNELS,
    )
    sources = {"onnx-int8": directory / "model_split.onnx", "onnx-int8-full": fp32}
    onnx.save(graph, str(sources["onnx-int8"]))
    for backend, source in sources.items():
        # the split graph keeps the linear nodes' names; its added float32 Gemms are not MatMuls, so stay float32
        quantize_dynamic(
            str(source),
            str(directory / _FILES[backend]),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=linear,
        )
    sources["onnx-int8"].unlink()
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
            "onnx_int8_outlier_channels": OUTLIER_CHANNELS,
            "onnx_int8_split_layers": split,
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
