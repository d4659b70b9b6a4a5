"""Systems that order candidates: the scorer protocol and the scorers the evaluator can build.

Any object with ``name``, ``fingerprint`` and ``score_pairs(queries, docs) -> array`` (one score per pair,
higher = more relevant) is a scorer; ``rerank_align.scoring.Reranker`` is one, so are the adapters here.
A doc handed to a scorer is ``{"id", "title", "text"}`` (``"image"`` for MRB); a query is its text (or a
``{"text", "image"}`` dict for MRB).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rerank_align.precision import log_resolution
from rerank_align.scoring.modeling import resolve_model_path
from rerank_align.scoring.onnx_backend import RECIPES
from rerank_align.scoring.reranker import Reranker


@runtime_checkable
class Scorer(Protocol):
    name: str
    fingerprint: str

    def score_pairs(self, queries: list, docs: list) -> np.ndarray: ...


def doc_text(doc: Any) -> str:
    """``title + " " + text`` (stripped) of a doc dict, or the string itself."""
    if isinstance(doc, str):
        return doc
    return f"{doc.get('title') or ''} {doc.get('text') or ''}".strip()


def query_text(query: Any) -> str:
    return query if isinstance(query, str) else str(query.get("text") or "")


def hash_files(
    folder: str | Path, patterns: tuple[str, ...] = ("*.json", "*.safetensors", "*.bin", "*.txt")
) -> str:
    """sha256 over the names and bytes of the matching files directly in ``folder``."""
    folder = Path(folder)
    h = hashlib.sha256()
    files = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str | None:
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


_TOKEN = re.compile(r"[a-z0-9]+")


class LexicalOverlapScorer:
    """A cheap, deterministic scorer: fraction of distinct query tokens found in the doc, plus a tiny tf bonus.

    It exists for tests and smoke runs of the harness (it needs no model), not as a baseline to report.
    """

    def __init__(self, name: str = "lexical") -> None:
        self.name = name
        self.fingerprint = "lexical-overlap-v1"
        self.calls = 0

    def score_pairs(self, queries: list, docs: list) -> np.ndarray:
        self.calls += 1
        out = np.empty(len(queries), dtype=np.float64)
        for i, (q, d) in enumerate(zip(queries, docs)):
            qt = set(_TOKEN.findall(query_text(q).lower()))
            dt = _TOKEN.findall(doc_text(d).lower())
            ds = set(dt)
            hits = sum(1 for t in qt if t in ds)
            tf = sum(1 for t in dt if t in qt)
            out[i] = hits / max(1, len(qt)) + 1e-3 * tf / (1 + len(dt))
        return out


class CrossEncoderScorer:
    """A sentence-transformers ``CrossEncoder`` checkpoint scored through its own API (``CrossEncoder.predict``).

    The doc side is ``title + " " + text``. The score is what ``predict`` returns (its default activation for the
    checkpoint); only the order matters for the metrics.
    """

    def __init__(
        self,
        path: str,
        *,
        name: str | None = None,
        batch_size: int = 32,
        device: str | None = None,
        max_length: int | None = None,
    ) -> None:
        from sentence_transformers import CrossEncoder

        self.path = path
        self.name = name or Path(path).name
        self.batch_size = batch_size
        kwargs: dict[str, Any] = {"device": device or "cpu"}
        if max_length is not None:
            kwargs["max_length"] = max_length
        self.model = CrossEncoder(path, **kwargs)
        base = hash_files(path) if Path(path).is_dir() else f"hub:{path}"
        self.fingerprint = hashlib.sha256(f"cross_encoder|{base}|{max_length}".encode()).hexdigest()

    def score_pairs(self, queries: list, docs: list) -> np.ndarray:
        pairs = [(query_text(q), doc_text(d)) for q, d in zip(queries, docs)]
        scores = self.model.predict(
            pairs, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        scores = np.asarray(scores, dtype=np.float64)
        return scores.reshape(len(pairs), -1)[:, -1] if scores.ndim > 1 else scores


class NamedScorer:
    """Wrap a scorer (a ``Reranker``) under the suite's system name, keeping its fingerprint."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name
        self.fingerprint = str(inner.fingerprint)
        # a listwise reranker orders whole candidate lists (runner.score_rankings calls rank_lists)
        self.listwise = getattr(inner, "listwise", None) is not None

    def score_pairs(self, queries: list, docs: list) -> np.ndarray:
        return np.asarray(self.inner.score_pairs(queries, docs), dtype=np.float64).reshape(-1)

    def rank_lists(self, queries: list, doc_lists: list) -> list:
        return self.inner.rank_lists(queries, doc_lists)


def build_scorer(spec: Any, *, batch_size: int = 32, device: str | None = None) -> tuple[Any, dict]:
    """A scorer for a :class:`SystemSpec` (``None`` for the first stage) and its provenance for the results JSON."""
    bs = spec.batch_size or batch_size
    info: dict[str, Any] = {"type": spec.type, "path": spec.path}
    if spec.type == "first_stage":
        return None, info
    if spec.type == "lexical":
        scorer = LexicalOverlapScorer(spec.name)
        info["fingerprint"] = scorer.fingerprint
        return scorer, info
    if spec.type == "cross_encoder":
        path = resolve_model_path(spec.path)
        scorer = CrossEncoderScorer(
            path, name=spec.name, batch_size=bs, device=device, max_length=spec.max_length
        )
        info.update(path=path, fingerprint=scorer.fingerprint, precision="float32")
        return scorer, info
    if spec.type == "reranker":
        rr = Reranker.from_pretrained(
            spec.path, device=device, batch_size=bs, autocast_dtype=spec.precision, backend=spec.backend
        )
        info["reranker_json_sha256"] = file_sha256(Path(spec.path) / "reranker.json")
    else:  # base
        path = resolve_model_path(spec.path)
        rr = Reranker.from_base(
            path,
            device=device,
            batch_size=bs,
            autocast_dtype=spec.precision,
            backend=spec.backend,
            **spec.contract,
        )
        info["path"] = path
        info["contract_fields"] = dict(spec.contract)
    if rr.backend.startswith("onnx-int8"):  # other scores than float32's: their own cache entries
        rr.fingerprint = f"{rr.fingerprint}+{RECIPES[rr.backend]}"
    elif rr.precision != "float32":  # float32 keeps the fingerprint (and score cache) of earlier float32 runs
        rr.fingerprint = f"{rr.fingerprint}+autocast-{rr.precision}"
    info["backend"] = rr.backend
    info["precision"] = rr.precision
    info["precision_requested"] = spec.precision
    log_resolution(f"eval {spec.name}", spec.precision, rr.precision, rr.device)
    if getattr(spec, "reuse_prefix", False):
        rr.reuse_prefix = True
        rr.fingerprint = f"{rr.fingerprint}+reuse-prefix"
        info["reuse_prefix"] = True
    scorer = NamedScorer(rr, spec.name)
    info["fingerprint"] = scorer.fingerprint
    contract = getattr(rr, "contract", None)
    if contract is not None:
        info["contract_kind"] = getattr(contract, "kind", None)
        to_dict = getattr(contract, "to_dict", None)
        if callable(to_dict):
            try:
                info["contract"] = to_dict()
            except Exception:  # noqa: BLE001 - provenance only
                pass
    return scorer, info
