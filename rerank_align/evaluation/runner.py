"""Run a suite: candidates → scores (cached, sharded across processes) → final orders → metrics → significance.

Data parallel: when launched with ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE > 1``), every process scores
the queries ``qids[rank::world]`` of each collection, the per-query orders are gathered with
``accelerate.utils.gather_object``, every process computes the (cheap) metrics from the full set, and only rank 0
writes files. Scores do not depend on the shard, so 1 and N processes give identical results.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_align.data import jsonl
from rerank_align.data.beir import load_beir, read_run
from rerank_align.errors import InputError, RerankAlignError
from rerank_align.evaluation.cache import ScoreCache, doc_key, list_key, query_key
from rerank_align.evaluation.config import CollectionSpec, Suite, SuiteError
from rerank_align.evaluation.metrics import canonical_name, evaluate, final_order, mean
from rerank_align.evaluation.mrb import aggregate, load_mrb_task
from rerank_align.evaluation.report import build_results, write_outputs
from rerank_align.evaluation.significance import bootstrap_ci, compare
from rerank_align.evaluation.systems import build_scorer, doc_text
from rerank_align.io import check_output, check_safetensors
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.modeling import resolve_model_path

CHUNK_PAIRS = 256
"""Pairs scored (and committed to the cache) per step."""


@dataclass
class Prepared:
    spec: CollectionSpec
    queries: dict[str, Any]
    corpus: dict[str, dict]
    qrels: dict[str, dict[str, int]]
    run: dict[str, list[tuple[str, float]]]
    qids: list[str]
    depth: int
    run_path: str
    dropped_self_hits: int = 0
    info: dict = field(default_factory=dict)
    n_judged: int = 0
    """Judged queries of the split (qrels with a query text), before ``--limit-queries``."""
    dropped_unjudged: int = 0
    """Run rows of queries without judgments (they cannot be scored by any metric)."""
    boms_stripped: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ distribution


class Dist:
    """Process rank / world size (accelerate's PartialState when launched distributed, else a single process)."""

    def __init__(self) -> None:
        self.rank, self.world, self._state = 0, 1, None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch
            from accelerate import PartialState

            # without a GPU, accelerate only sets up a process group when asked for CPU (gloo)
            self._state = PartialState(cpu=not torch.cuda.is_available())
            self.rank, self.world = self._state.process_index, self._state.num_processes

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: list) -> list:
        if self.world == 1:
            return obj
        from accelerate.utils import gather_object

        return gather_object(obj)

    def barrier(self) -> None:
        if self._state is not None:
            self._state.wait_for_everyone()


# ------------------------------------------------------------------------------------------------- candidates


def bm25_first_stage(corpus: dict[str, dict], queries: dict[str, str], qids: list[str], k: int) -> dict:
    """bm25s (lucene, k1=0.9, b=0.4, English stop words, Snowball stemmer) over title + text; zero scores dropped."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = list(corpus)
    retriever = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    retriever.index(
        bm25s.tokenize(
            [doc_text(corpus[i]) for i in ids], stopwords="en", stemmer=stemmer, show_progress=False
        ),
        show_progress=False,
    )
    run: dict[str, list[tuple[str, float]]] = {}
    qtok = bm25s.tokenize([queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False)
    docs, scores = retriever.retrieve(qtok, k=min(k, len(ids)), show_progress=False)
    for q, ds, ss in zip(qids, docs, scores):
        run[q] = [(ids[int(d)], float(s)) for d, s in zip(ds, ss) if s > 0]
    return run


def trec_eval_order(cands: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Score descending, equal scores by doc id descending: the order trec_eval / pytrec_eval evaluate a run in."""
    return sorted(sorted(cands, key=lambda c: c[0], reverse=True), key=lambda c: -c[1])


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split())


def prepare_collection(spec: CollectionSpec, suite: Suite, *, limit_queries: int | None = None) -> Prepared:
    """Load the collection and its first-stage candidates; apply the self-hit policy and the query limit."""
    boms_before = len(jsonl.BOMS_STRIPPED)
    mrb_type = spec.mrb_type
    if spec.mrb_type is not None or (spec.path / "mrb.json").exists():
        task = load_mrb_task(spec.path, spec.split)
        queries, corpus, qrels = task.queries, task.corpus, task.qrels
        mrb_type = mrb_type or task.type
        default_run = spec.path / "candidates.run"
    else:
        col = load_beir(spec.path, spec.split)
        queries, corpus, qrels = col.queries, col.corpus, col.qrels
        default_run = spec.path / "bm25_top100.run"
    depth = spec.depth or suite.depth
    qids = [q for q in qrels if q in queries]
    n_judged = len(qids)
    if limit_queries is not None:
        qids = qids[:limit_queries]
    run_path = spec.run if spec.run is not None else None
    if run_path is None and mrb_type is not None:
        run_path = default_run
    if run_path is not None:
        run = read_run(run_path)
        run_label = str(run_path)
        if spec.first_stage_order == "trec_eval":
            run = {q: trec_eval_order(c) for q, c in run.items()}
    else:
        run = {
            q: trec_eval_order(c) for q, c in bm25_first_stage(corpus, queries, qids, max(depth, 100)).items()
        }
        run_label = "bm25s(lucene,k1=0.9,b=0.4,en-stop,snowball,title+text)"
    keep = set(qids)
    dropped_unjudged = sum(len(c) for q, c in run.items() if q not in qrels)
    if not qids:
        raise InputError("no judged query has a text in the queries file", where=str(spec.path))
    if run_path is not None and not any(run.get(q) for q in qids):
        raise InputError(
            f"the run has no candidates for any of the {len(qids)} judged queries "
            f"(run query ids, first: {next(iter(run))!r}; judged, first: {qids[0]!r})",
            where=run_label,
            hint="the run and qrels must use the same query ids and split",
        )
    run = {q: c for q, c in run.items() if q in keep}
    dropped = 0
    for q, cands in run.items():
        new = []
        for d, s in cands:
            if d == q and spec.drop_self_hits != "never":
                is_self = spec.drop_self_hits == "always" or (
                    d in corpus and _norm(doc_text(corpus[d])) == _norm(_qtext(queries[q]))
                )
                if is_self:
                    dropped += 1
                    continue
            new.append((d, s))
        run[q] = new
    missing = sorted({d for q in run for d, _ in run[q][:depth] if d not in corpus})
    if missing:
        raise InputError(
            f"{len(missing)} candidate documents are not in the corpus (first: {missing[0]!r})",
            where=run_label,
            hint="the run and corpus.jsonl must come from the same collection",
        )
    qrels = {q: qrels[q] for q in qids}
    return Prepared(
        spec,
        queries,
        corpus,
        qrels,
        run,
        qids,
        depth,
        run_label,
        dropped,
        info={"mrb_type": mrb_type},
        n_judged=n_judged,
        dropped_unjudged=dropped_unjudged,
        boms_stripped=jsonl.BOMS_STRIPPED[boms_before:],
    )


def _qtext(q: Any) -> str:
    return q if isinstance(q, str) else str(q.get("text") or "")


# ---------------------------------------------------------------------------------------------------- scoring


def score_rankings(
    prep: Prepared,
    scorer: Any,
    cache: ScoreCache,
    qids: list[str],
    *,
    progress: Any = None,
    task: Any = None,
    chunk_pairs: int | None = None,
    fuse_first_stage: float | None = None,
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Final orders for ``qids`` (``{qid: [doc ids]}``) and counters ``{"scored", "cached"}``.

    ``fuse_first_stage=w`` orders by ``w · z(scores) + (1 − w) · z(first-stage scores)`` per query."""
    rankings: dict[str, list[str]] = {}
    stats = {"scored": 0, "cached": 0}
    if scorer is None:
        for q in qids:
            rankings[q] = final_order(prep.run.get(q, []), None, prep.depth)
        return rankings, stats
    if getattr(scorer, "listwise", False):
        if fuse_first_stage is not None:
            raise RerankAlignError(
                f"system {scorer.name!r} is listwise: it outputs an order, not scores to fuse",
                where="fuse_first_stage",
            )
        return _rank_listwise(prep, scorer, cache, qids, progress=progress, task=task)
    fp = scorer.fingerprint
    chunk_pairs = chunk_pairs or CHUNK_PAIRS
    scores: dict[tuple[str, str], float] = {}
    chunk: list[tuple[str, str, str, str]] = []  # (qid, did, qkey, dkey)

    def flush() -> None:
        if not chunk:
            return
        found = cache.get_many(fp, [(qk, dk) for _, _, qk, dk in chunk])
        todo = [c for c in chunk if (c[2], c[3]) not in found]
        if todo:
            values = scorer.score_pairs(
                [prep.queries[q] for q, _, _, _ in todo], [prep.corpus[d] for _, d, _, _ in todo]
            )
            if len(values) != len(todo):
                raise RuntimeError(
                    f"scorer {scorer.name!r} returned {len(values)} scores for {len(todo)} pairs"
                )
            new = [(qk, dk, float(v)) for (_, _, qk, dk), v in zip(todo, values)]
            cache.put_many(fp, new)
            found.update({(qk, dk): s for qk, dk, s in new})
        for q, d, qk, dk in chunk:
            scores[(q, d)] = found[(qk, dk)]
        stats["scored"] += len(todo)
        stats["cached"] += len(chunk) - len(todo)
        if progress is not None:
            progress.advance(task, len(chunk))
        chunk.clear()

    for q in qids:
        qk = query_key(q, prep.queries[q])
        for d, _ in prep.run.get(q, [])[: prep.depth]:
            chunk.append((q, d, qk, doc_key(d, prep.corpus[d])))
        if len(chunk) >= chunk_pairs:
            flush()
    flush()
    for q in qids:
        head = prep.run.get(q, [])[: prep.depth]
        values = [scores[(q, d)] for d, _ in head]
        if fuse_first_stage is not None:
            values = fuse(values, [s for _, s in head], fuse_first_stage)
        rankings[q] = final_order(prep.run.get(q, []), values, prep.depth)
    return rankings, stats


def _zscore(values: list[float]) -> list[float]:
    n = len(values)
    mu = sum(values) / n
    sd = (sum((v - mu) ** 2 for v in values) / n) ** 0.5
    # A constant list carries no order: all zeros, so the other score decides.
    return [0.0] * n if sd == 0 else [(v - mu) / sd for v in values]


def fuse(reranker: list[float], first_stage: list[float], weight: float) -> list[float]:
    """``weight · z(reranker) + (1 − weight) · z(first stage)``, z over one query's candidates."""
    if not reranker:
        return []
    zr, zf = _zscore([float(v) for v in reranker]), _zscore([float(v) for v in first_stage])
    return [weight * a + (1.0 - weight) * b for a, b in zip(zr, zf)]


LIST_CHUNK = 16
"""Queries whose candidate lists a listwise system ranks per call (their windows are batched together)."""


LIST_STATS = ("\x00outputs", "\x00repaired")
"""Rows of a cached list that hold its counters, not a candidate (no doc key starts with a NUL)."""


def _rank_listwise(
    prep: Prepared, scorer: Any, cache: ScoreCache, qids: list[str], *, progress: Any = None, task: Any = None
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """A listwise system ranks each query's top ``depth`` as a whole. Its output depends on the whole list, so the
    cache keys it by the list (query and every candidate, in order): a rerun with the same model and list reads
    the order back, with its counters. Counters: ``outputs`` (model outputs = windows), ``repaired`` (outputs that
    were not a clean permutation and were repaired by the parser), ``scored`` / ``cached`` (candidates)."""
    fp = scorer.fingerprint
    rankings: dict[str, list[str]] = {}
    stats = {"scored": 0, "cached": 0, "outputs": 0, "repaired": 0}

    def finish(q: str, head: list, scores: list[float], outputs: int, repaired: int, cached: bool) -> None:
        rankings[q] = final_order(prep.run.get(q, []), scores, prep.depth)
        stats["cached" if cached else "scored"] += len(head)
        stats["outputs"] += outputs
        stats["repaired"] += repaired
        if progress is not None:
            progress.advance(task, len(head))

    todo = []
    for q in qids:
        head = prep.run.get(q, [])[: prep.depth]
        dks = [doc_key(d, prep.corpus[d]) for d, _ in head]
        lk = list_key(query_key(q, prep.queries[q]), dks)
        found = cache.get_many(fp, [(lk, k) for k in (*dks, *LIST_STATS)])
        if len(found) == len(dks) + len(LIST_STATS):
            outputs, repaired = (int(found[(lk, k)]) for k in LIST_STATS)
            finish(q, head, [found[(lk, k)] for k in dks], outputs, repaired, cached=True)
        else:
            todo.append((q, head, dks, lk))
    for i in range(0, len(todo), LIST_CHUNK):
        chunk = todo[i : i + LIST_CHUNK]
        results = scorer.rank_lists(
            [prep.queries[q] for q, *_ in chunk], [[prep.corpus[d] for d, _ in head] for _, head, *_ in chunk]
        )
        for (q, head, dks, lk), res in zip(chunk, results):
            scores = [0.0] * len(head)
            for pos, j in enumerate(res.order):
                scores[j] = float(len(head) - pos)
            rows = [*zip(dks, scores), (LIST_STATS[0], res.outputs), (LIST_STATS[1], res.repaired)]
            cache.put_many(fp, [(lk, k, v) for k, v in rows])
            finish(q, head, scores, res.outputs, res.repaired, cached=False)
    return {q: rankings[q] for q in qids}, stats


# ------------------------------------------------------------------------------------------------------- suite

EVAL_OUTPUTS = ("results.json", "report.md", "score_cache.sqlite*", "runs", "plots")
"""What an eval writes: a folder holding one of these is an earlier eval's, which a rerun updates (and resumes)."""


def check_systems(specs: list) -> None:
    """Every model-backed system points at something loadable: a local folder with its files and readable
    weights, or a hub id (offline: one in the Hugging Face cache). Cheap (no weights are loaded)."""
    needs = {"reranker": "reranker.json", "base": "config.json", "cross_encoder": "config.json"}
    for spec in specs:
        if spec.type not in needs:
            continue
        where = f"systems.{spec.name}.path"
        path = Path(resolve_model_path(spec.path))
        if path.exists():
            if not path.is_dir():
                raise SuiteError(f"{path} is a file, expected a model folder", where=where)
            if not (path / needs[spec.type]).is_file():
                raise SuiteError(
                    f"{path} has no {needs[spec.type]}",
                    where=where,
                    hint="a 'reranker' system needs a folder saved by rerank-align (train, merge)"
                    if spec.type == "reranker"
                    else "point it at a model folder",
                )
            check_safetensors(path)
            if (
                spec.type == "reranker"
            ):  # an unreadable or inconsistent reranker.json, before anything is scored
                ScoringContract.load(path)
            continue
        looks_local = (
            path.is_absolute() or str(spec.path).startswith((".", "~")) or str(spec.path).count("/") != 1
        )
        cached = None
        if not looks_local:
            from huggingface_hub import constants, try_to_load_from_cache

            if not constants.HF_HUB_OFFLINE:
                continue  # a hub id; it is downloaded when the system is built
            cached = try_to_load_from_cache(str(spec.path), needs[spec.type])
        if not isinstance(cached, str):
            raise SuiteError(
                f"model folder {str(spec.path)!r} not found"
                + ("" if looks_local else " (nor in the Hugging Face cache)"),
                where=where,
                hint="check the path (relative paths are relative to the suite file)",
            )


def remove_empty_cache(path: Path, *, remove_folder: bool) -> None:
    """Delete a score cache this run created and never filled (with sqlite's WAL and shared-memory files), and
    its folder when this run created that too and nothing else is in it."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)
    folder = path.parent
    if remove_folder and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def run_suite(
    suite: Suite,
    *,
    systems: list[str] | None = None,
    collections: list[str] | None = None,
    out: str | os.PathLike | None = None,
    limit_queries: int | None = None,
    use_cache: bool = True,
    scorers: dict[str, Any] | None = None,
    show_progress: bool = True,
    write: bool = True,
    argv: list[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Evaluate ``suite``; returns the results dict (also written to ``out`` by rank 0 when ``write``).

    Before the first score: the output folder is checked (writable; new, empty, an earlier eval's, or
    ``overwrite``), every system's model folder is checked (:func:`check_systems`) and every collection is
    loaded. A run that fails before caching any score leaves no score cache behind."""
    t_start = time.perf_counter()
    dist = Dist()
    sys_specs = suite.systems
    if systems:
        names = [s.name for s in suite.systems]
        for n in systems:
            if n not in names:
                raise SuiteError(
                    f"no system named {n!r}", where="--systems", hint=f"systems: {', '.join(names)}"
                )
        keep = set(systems) | {suite.baseline_name}
        sys_specs = [s for s in suite.systems if s.name in keep]
    col_specs = suite.collections
    if collections:
        unknown = [c for c in collections if c not in [x.name for x in suite.collections]]
        if unknown:
            raise SuiteError(f"no collection named {unknown[0]!r}", where="--collections")
        col_specs = [c for c in suite.collections if c.name in collections]
    out_dir = Path(out) if out is not None else (suite.output or Path("outputs/eval") / suite.name)
    cache_path = suite.cache or (out_dir / "score_cache.sqlite")
    metrics = [canonical_name(m) for m in suite.metrics]

    # everything that can be wrong is checked before the first score: output folder, every system, every collection
    if write or use_cache:
        check_output(out_dir, overwrite=overwrite, ours=EVAL_OUTPUTS, replace=False)
    check_systems([s for s in sys_specs if not (scorers and s.name in scorers)])
    preps = [prepare_collection(c, suite, limit_queries=limit_queries) for c in col_specs]
    # rank 0 creates the sqlite file (and its WAL mode) before the others open it: concurrent creation races
    cache_existed = use_cache and Path(cache_path).exists()
    folder_existed = Path(cache_path).parent.exists()
    cache = ScoreCache(cache_path if use_cache else None) if dist.main else None
    dist.barrier()
    if cache is None:
        cache = ScoreCache(cache_path if use_cache else None)
    sys_info: dict[str, dict] = {}
    per_query: dict[str, dict[str, dict]] = {p.spec.name: {} for p in preps}
    rankings_all: dict[str, dict[str, dict]] = {p.spec.name: {} for p in preps}
    timing: dict[str, dict] = {}

    progress = None
    if show_progress and dist.main:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        progress.start()
    try:
        for spec in sys_specs:
            if scorers and spec.name in scorers:
                scorer = scorers[spec.name]
                info = {
                    "type": spec.type,
                    "path": spec.path,
                    "fingerprint": getattr(scorer, "fingerprint", None),
                }
            else:
                scorer, info = build_scorer(spec, batch_size=suite.batch_size, device=suite.device)
            if spec.fuse_first_stage is not None:
                info["fuse_first_stage"] = spec.fuse_first_stage
            sys_info[spec.name] = info
            for prep in preps:
                shard = prep.qids[dist.rank :: dist.world]
                task = None
                if progress is not None:
                    total = (
                        sum(len(prep.run.get(q, [])[: prep.depth]) for q in shard)
                        if scorer is not None
                        else 0
                    )
                    task = progress.add_task(f"{spec.name} · {prep.spec.name}", total=total)
                t0 = time.perf_counter()
                ranks, stats = score_rankings(
                    prep,
                    scorer,
                    cache,
                    shard,
                    progress=progress,
                    task=task,
                    fuse_first_stage=spec.fuse_first_stage,
                )
                gathered = dist.gather([(q, ranks[q]) for q in shard] + [("__stats__", stats)])
                ranking: dict[str, list[str]] = {}
                total_stats = {"scored": 0, "cached": 0}
                for key, val in gathered:
                    if key == "__stats__":
                        for k in val:
                            total_stats[k] = total_stats.get(k, 0) + val[k]
                    else:
                        ranking[key] = val
                ranking = {q: ranking[q] for q in prep.qids}
                rankings_all[prep.spec.name][spec.name] = ranking
                per_query[prep.spec.name][spec.name] = evaluate(
                    ranking, prep.qrels, metrics, rel=prep.spec.rel
                )
                timing.setdefault(spec.name, {})[prep.spec.name] = {
                    "seconds": round(time.perf_counter() - t0, 3),
                    **total_stats,
                }
    except BaseException:
        if dist.main and use_cache and not cache_existed and cache.count() == 0:
            cache.close()
            remove_empty_cache(Path(cache_path), remove_folder=not folder_existed)
        raise
    finally:
        if progress is not None:
            progress.stop()
        cache.close()

    baseline = (
        suite.baseline_name if suite.baseline_name in [s.name for s in sys_specs] else sys_specs[0].name
    )
    sig = suite.significance
    collections_out: dict[str, dict] = {}
    for prep in preps:
        pq = per_query[prep.spec.name]
        means = {s: {m: mean(v) for m, v in pq[s].items()} for s in pq}
        cis = {
            s: {
                m: bootstrap_ci(list(pq[s][m].values()), resamples=sig.bootstrap, seed=sig.seed)
                for m in metrics
            }
            for s in pq
        }
        collections_out[prep.spec.name] = {
            "path": str(prep.spec.path),
            "run": prep.run_path,
            "split": prep.spec.split,
            "rel": prep.spec.rel,
            "depth": prep.depth,
            "mrb_type": prep.info.get("mrb_type"),
            "n_queries": len(prep.qids),
            "n_queries_judged": prep.n_judged,
            "n_queries_evaluated": len(prep.qids),
            "n_queries_with_candidates": sum(1 for q in prep.qids if prep.run.get(q)),
            "n_candidates": sum(len(prep.run.get(q, [])) for q in prep.qids),
            "dropped_unjudged_candidates": prep.dropped_unjudged,
            "boms_stripped": prep.boms_stripped,
            "dropped_self_hits": prep.dropped_self_hits,
            "drop_self_hits": prep.spec.drop_self_hits,
            "metrics": means,
            "ci95": cis,
            "significance": compare(pq, baseline, metrics, permutations=sig.permutations, seed=sig.seed),
            "per_query": pq,
        }
    results = build_results(
        suite,
        systems=sys_info,
        collections=collections_out,
        baseline=baseline,
        metrics=metrics,
        timing=timing,
        wall_seconds=time.perf_counter() - t_start,
        world_size=dist.world,
        argv=argv,
    )
    if any(c["mrb_type"] for c in collections_out.values()):
        results["mrb"] = aggregate(collections_out, results["primary_metric"])
    if write and dist.main:
        write_outputs(results, out_dir, rankings=rankings_all)
    dist.barrier()
    return results
