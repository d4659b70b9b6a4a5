"""``Reranker``: the inference API. It reads reranker.json and scores through the same code as training."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rerank_align.io import atomic_dir
from rerank_align.precision import autocast_dtype as precision_autocast_dtype
from rerank_align.precision import native_bf16
from rerank_align.precision import resolve as resolve_precision
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.encode import Doc
from rerank_align.scoring.forward import score_forward, unwrap
from rerank_align.scoring.listwise import ListwiseRanker
from rerank_align.scoring.modeling import (
    architecture_of,
    build_contract,
    is_adapter_dir,
    load_model,
    load_tokenizer,
    pair_encoder,
    read_model_type,
)
from rerank_align.scoring.onnx_backend import check_backend, load_onnx
from rerank_align.scoring.prefix import prefix_reuse_applies, score_with_prefix_reuse
from rerank_align.scoring.quantization import saved_quantization


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def fp32_heads(model: Any) -> Iterator[None]:
    """Under autocast, run the scoring heads (everything outside the backbone, and the backbone's pooler) in
    float32: a bf16 logit has ~3 significant digits, which would turn close scores into ties."""
    base = unwrap(model)
    heads = [m for name, m in base.named_children() if name != base.base_model_prefix]
    pooler = getattr(getattr(base, base.base_model_prefix, None), "pooler", None)
    if isinstance(pooler, torch.nn.Module):
        heads.append(pooler)
    saved = []
    for module in heads:
        orig = module.forward

        def fp32_forward(*args: Any, _orig: Any = orig, **kwargs: Any) -> Any:
            args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
            with torch.autocast(
                device_type=args[0].device.type if args and torch.is_tensor(args[0]) else "cpu", enabled=False
            ):
                return _orig(*args, **kwargs)

        module.forward = fp32_forward
        saved.append((module, orig))
    try:
        yield
    finally:
        for module, orig in saved:
            module.forward = orig


def bf16_autocast_supported(device: str) -> bool:
    """Whether bf16 autocast is fast here (see :func:`rerank_align.precision.native_bf16`)."""
    return native_bf16(device)


def weights_fingerprint(path: str | os.PathLike) -> str:
    """sha256 over reranker.json and every weight file (so a retrained model never reuses a cached score)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.name == "reranker.json" or f.suffix in (".safetensors", ".bin", ".pt"):
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()


class Reranker:
    """Score and rerank documents for a query.

    >>> rr = Reranker.from_pretrained("outputs/minilm-scifact")          # doctest: +SKIP
    >>> rr.score("what causes tides?", ["The moon's gravity...", "Tidal pools..."])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        contract: ScoringContract,
        *,
        batch_size: int = 32,
        device: str | None = None,
        path: str | None = None,
        fingerprint: str | None = None,
        autocast_dtype: torch.dtype | str | None = "auto",
        live: bool = False,
        reuse_prefix: bool = False,
        backend: str = "torch",
    ) -> None:
        """``live=True`` wraps a model that is being trained: it is neither moved nor switched to eval mode
        (the caller chooses the mode; 4-bit models on CPU must not run an eval-mode forward mid-training).

        ``autocast_dtype``: run the backbone under ``torch.autocast`` in this dtype (heads stay float32); the
        default ``"auto"`` is the project's precision policy (bfloat16 where the hardware runs it natively, else
        float32: :mod:`rerank_align.precision`); a precision name (``"float32"``, ``"bfloat16"``, ``"float16"``),
        a ``torch.dtype`` or ``None`` (float32) choose explicitly.

        ``reuse_prefix=True`` (causal text models): each query's shared prompt prefix runs once and its KV cache
        serves all of that query's documents (scoring/prefix.py); scores equal the plain path's to float
        rounding (≤ 1e-5 in float32, tested), not bit for bit, so it is opt-in.

        ``backend`` (encoder cross-encoders): ``torch`` (default), ``onnx`` (ONNX Runtime, float32: the same scores
        to float rounding), ``onnx-int8`` (dynamically quantised linear layers, their largest input
        channels split off in float32: faster on CPU, scores change) or ``onnx-int8-full`` (no split);
        see :mod:`rerank_align.scoring.onnx_backend`. The ONNX backends run float32 graphs whatever the precision
        policy says."""
        self.contract = contract
        self.tokenizer = tokenizer
        self.encoder = pair_encoder(tokenizer, contract)
        if live:
            self.model = model
            self.device = str(next(model.parameters()).device)
        else:
            self.device = device or _default_device()
            self.model = model.to(self.device) if getattr(model, "hf_device_map", None) is None else model
            self.model.eval()
        self.batch_size = batch_size
        self.path = path
        self.autocast_dtype = self._resolve_autocast(autocast_dtype)
        self.reuse_prefix = reuse_prefix
        self.fingerprint = fingerprint or contract.sha256
        self.name = Path(path).name if path else contract.base_model
        self.backend = backend
        self.onnx = None
        if backend != "torch":
            self.onnx = load_onnx(self.model, self.encoder, contract, backend)
            self.autocast_dtype = None
        self.listwise = None
        if contract.kind == "listwise":
            self.listwise = ListwiseRanker(
                self.model, tokenizer, contract, device=self.device, batch_size=batch_size
            )

    def _resolve_autocast(self, value: torch.dtype | str | None) -> torch.dtype | None:
        if value is None or isinstance(value, torch.dtype):
            return None if value == torch.float32 else value
        resolved = resolve_precision(value, self.device)
        return precision_autocast_dtype(resolved)

    @property
    def precision(self) -> str:
        """The precision scoring runs in: ``float32``, ``bfloat16``, ``float16`` or ``int8-dynamic``."""
        if self.backend.startswith("onnx-int8"):
            return "int8-dynamic"
        return "float32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")

    def set_precision(self, value: torch.dtype | str | None) -> str:
        """Change the scoring precision (``auto`` or a name, as in the constructor); returns the resolved one."""
        if self.onnx is None:  # the ONNX graphs have one precision each
            self.autocast_dtype = self._resolve_autocast(value)
        return self.precision

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        device: str | None = None,
        batch_size: int = 32,
        dtype: str | None = None,
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        autocast_dtype: torch.dtype | str | None = "auto",
        backend: str = "torch",
    ) -> Reranker:
        """Load a folder saved by rerank_align (full model or LoRA adapter) with its reranker.json.

        A LoRA adapter is loaded onto its base model (``base_model`` in reranker.json); when the trainer's
        ``recipe.yaml`` beside it says the base was 4-bit (QLoRA), the base is loaded in 4-bit the same way."""
        path = Path(path)
        contract = ScoringContract.load(path)
        if backend != "torch":
            check_backend(backend, contract)  # before loading any weights
        if is_adapter_dir(path):
            from peft import PeftModel

            # a QLoRA adapter scores as trained only on its 4-bit base (the quantisation error is part of the model)
            base = load_model(
                contract.base_model,
                contract,
                revision=contract.base_model_revision,
                dtype=dtype,
                allow_pickle=allow_pickle,
                trust_remote_code=trust_remote_code,
                quantization_config=saved_quantization(path),
            )
            model = PeftModel.from_pretrained(base, str(path))
        else:
            model = load_model(
                str(path),
                contract,
                dtype=dtype,
                allow_pickle=allow_pickle,
                trust_remote_code=trust_remote_code,
            )
        tokenizer = load_tokenizer(str(path), trust_remote_code=trust_remote_code)
        contract.check_tokenizer(tokenizer)
        return cls(
            model,
            tokenizer,
            contract,
            device=device,
            batch_size=batch_size,
            path=str(path),
            fingerprint=weights_fingerprint(path),
            autocast_dtype=autocast_dtype,
            backend=backend,
        )

    @classmethod
    def from_base(
        cls,
        name_or_path: str,
        *,
        kind: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        dtype: str | None = None,
        revision: str | None = None,
        seed: int = 0,
        autocast_dtype: torch.dtype | str | None = "auto",
        backend: str = "torch",
        **contract_fields: Any,
    ) -> Reranker:
        """Score with an untrained base model, zero-shot, under a contract built from ``contract_fields``.

        ``kind`` defaults to ``head`` for encoders and ``yesno`` for causal LMs. A newly initialised head is seeded
        with ``seed`` so the baseline is reproducible.
        """
        architecture = architecture_of(read_model_type(name_or_path, revision))
        kind = kind or ("head" if architecture == "encoder" else "yesno")
        tokenizer = load_tokenizer(name_or_path, revision=revision)
        contract = build_contract(
            tokenizer,
            base_model=name_or_path,
            base_model_revision=revision,
            kind=kind,
            architecture=architecture,
            **contract_fields,
        )
        torch.manual_seed(seed)
        model = load_model(name_or_path, contract, revision=revision, dtype=dtype)
        fp = hashlib.sha256((contract.sha256 + f"base-seed{seed}").encode()).hexdigest()
        rr = cls(
            model,
            tokenizer,
            contract,
            device=device,
            batch_size=batch_size,
            path=None,
            fingerprint=fp,
            autocast_dtype=autocast_dtype,
            backend=backend,
        )
        rr.name = f"{Path(name_or_path).name} (untrained)"
        return rr

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Weights (safetensors), tokenizer and reranker.json, written atomically."""
        with atomic_dir(directory) as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            if self.contract.vision is not None:  # for other tools; scoring rebuilds it from reranker.json
                self.encoder.processor.save_pretrained(tmp)
            self.contract.save(tmp)

    # -- scoring -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def score_pairs(
        self, queries: Sequence[str | dict], docs: Sequence[Doc], *, show_progress: bool = False
    ) -> np.ndarray:
        """One float score per (query, doc) pair. Pairs are sorted by length into batches (less padding)."""
        if self.contract.kind == "listwise":
            raise NotImplementedError("listwise rerankers rank whole lists; use rerank()")
        if len(queries) == 0:
            return np.zeros(0, dtype=np.float32)
        feats = self.encoder.encode(queries, docs)
        if self.reuse_prefix:
            if prefix_reuse_applies(self.contract, self.model):
                groups: dict[str, list[int]] = {}
                for i, q in enumerate(self.encoder.texts(queries, [""] * len(queries))[0]):
                    groups.setdefault(q, []).append(i)
                with self._precision():
                    return score_with_prefix_reuse(
                        self.model,
                        self.contract,
                        self.encoder,
                        feats,
                        list(groups.values()),
                        batch_size=self.batch_size,
                        device=self.device,
                    )
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]), reverse=True)
        scores = np.empty(len(feats), dtype=np.float32)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        progress = None
        if show_progress:
            from rich.progress import Progress

            progress = Progress(transient=True)
            task = progress.add_task("scoring", total=len(feats))
            progress.start()
        try:
            # one autocast region for the whole call: its cache of bf16 weight copies then lives across batches
            with self._precision():
                for idx in batches:
                    batch = {
                        k: v.to(self.device) for k, v in self.encoder.collate([feats[i] for i in idx]).items()
                    }
                    if self.onnx is not None:
                        scores[idx] = self.onnx(batch)
                    else:
                        scores[idx] = (
                            score_forward(self.model, self.contract, batch).scores.float().cpu().numpy()
                        )
                    if progress is not None:
                        progress.advance(task, len(idx))
        finally:
            if progress is not None:
                progress.stop()
        return scores

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        """``autocast_dtype`` for the backbone, float32 for the heads; nothing when no autocast is set."""
        if self.autocast_dtype is None:
            yield
            return
        with (
            torch.autocast(device_type=self.device.split(":")[0], dtype=self.autocast_dtype),
            fp32_heads(self.model),
        ):
            yield

    def score(self, query: str | dict, docs: Sequence[Doc]) -> list[float]:
        return self.score_pairs([query] * len(docs), docs).tolist()

    def rerank(
        self, query: str | dict, docs: Sequence[Doc], top_k: int | None = None
    ) -> list[tuple[int, float]]:
        """``(index into docs, score)`` best first; ties keep the input (first-stage) order.

        Listwise rerankers rank the list as the contract's ``list_format`` says (full / sliding windows, generated
        permutation or FIRST logits); the score is ``len(docs) - position``."""
        if self.listwise is not None:
            order = self.rank_lists([query], [docs])[0].order
            return [(i, float(len(docs) - p)) for p, i in enumerate(order[:top_k])]
        s = self.score(query, docs)
        order = sorted(range(len(docs)), key=lambda i: (-s[i], i))
        return [(i, s[i]) for i in order[:top_k]]

    def rank_lists(
        self, queries: Sequence[str | dict], doc_lists: Sequence[Sequence[Doc]], **options: Any
    ) -> list:
        """Listwise kind only: a :class:`~rerank_align.scoring.listwise.ListRanking` per list (order, number of
        model outputs, how many needed repair). ``options``: strategy, decoding, window, stride."""
        if self.listwise is None:
            raise NotImplementedError("rank_lists is for listwise rerankers; use rerank() or score_pairs()")
        return self.listwise.rank_lists(queries, doc_lists, **options)
