"""``rerank-align label``: teacher scores for distillation, from one or several teachers.

Teachers (repeat ``--teacher``):
  ``reranker:PATH``   any rerank_align reranker folder (``Reranker.from_pretrained``)
  ``crossencoder:PATH`` a sentence-transformers CrossEncoder checkpoint
  ``biencoder:PATH``  a sentence-transformers embedding model (cosine similarity)
  ``run:FILE``        scores of a TREC run (e.g. the BM25 first stage)

Candidates: every (query, doc) of group records (``--groups``), or the top ``--depth`` of a run for each judged
query of a BEIR split plus its judged documents (``--beir``/``--split``/``--run``), so positives get teacher
scores too. Each teacher is normalised per query (``--normalization``: zscore, minmax, none) and the teachers are
averaged (heterogeneous-ensemble distillation). Output: JSONL ``{"qid", "doc_id", "score"}`` (``data.teacher_files``
reads it), written atomically; with ``--groups-out`` the group records are also written with ``scores`` attached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rerank_align.data import load_beir, read_group_records
from rerank_align.data.bm25 import first_stage
from rerank_align.data.teachers import attach, ensemble, read_teacher_file
from rerank_align.errors import InputError
from rerank_align.io import check_output, check_safetensors, write_jsonl
from rerank_align.precision import autocast, log_resolution, resolve

Pairs = dict[str, list[str]]  # qid → doc ids


def _candidates_from_beir(args: argparse.Namespace) -> tuple[Pairs, dict[str, Any], dict[str, dict]]:
    col = load_beir(args.beir, split=args.split)
    run = first_stage(col, args.run, depth=args.depth)
    pairs: Pairs = {}
    for qid, judged in col.qrels.items():
        if qid not in run:
            # no candidates: its judged documents alone would be a one-document list, which per-query
            # normalisation cannot score and no trainer draws from
            continue
        docs = [d for d, _ in run[qid][: args.depth] if d in col.corpus]
        docs += [d for d in judged if d in col.corpus and d not in docs]
        if docs:
            pairs[qid] = docs
    return pairs, col.queries, col.corpus


def _candidates_from_groups(path: str) -> tuple[Pairs, dict[str, Any], dict[str, dict], list[dict]]:
    records = read_group_records(path)
    pairs: Pairs = {}
    queries: dict[str, Any] = {}
    corpus: dict[str, dict] = {}
    for i, rec in enumerate(records):
        qid = rec.get("qid")
        docs = rec["positives"] + rec["negatives"]
        if qid is None or any("id" not in d for d in docs):
            raise InputError(
                f"record {i + 1} needs a qid and doc ids to be labelled", where=f"{path}:{i + 1}"
            )
        queries[qid] = rec["query"]
        for d in docs:
            corpus[d["id"]] = d
            pairs.setdefault(qid, [])
            if d["id"] not in pairs[qid]:
                pairs[qid].append(d["id"])
    return pairs, queries, corpus, records


def score_teacher(
    spec: str,
    pairs: Pairs,
    queries: dict,
    corpus: dict,
    batch_size: int,
    *,
    max_length: int | None = None,
    precision: str = "auto",
) -> dict[str, dict[str, float]]:
    """Scores of one teacher for every candidate pair. ``precision``: the precision policy
    (rerank_align/precision.py) for model teachers; ``auto`` = bf16 only where the hardware runs it natively."""
    from rerank_align.scoring.modeling import resolve_model_path

    def st_precision() -> Any:
        """The sentence-transformers teachers (CPU) run under the resolved precision, said once."""
        resolved = resolve(precision, "cpu")
        log_resolution(f"label {spec}", precision, resolved, "cpu")
        return autocast(resolved, "cpu")

    kind, _, path = spec.partition(":")
    if kind in ("crossencoder", "biencoder"):
        path = resolve_model_path(path)
    flat = [(q, d) for q, docs in pairs.items() for d in docs]
    if kind == "run":
        run = read_teacher_file(path)
        out = {q: {d: run[q][d] for d in docs if d in run.get(q, {})} for q, docs in pairs.items()}
        # candidates a run did not retrieve get the query's lowest score (they ranked below its depth)
        floored = 0
        for q, docs in pairs.items():
            floor = min(out[q].values()) if out[q] else 0.0
            for d in docs:
                floored += d not in out[q]
                out[q].setdefault(d, floor)
        if floored:
            # Said, not refused: on pooled qrels (TREC DL) most judged documents lie below a first stage's depth,
            # and a teacher that ranks them all last trains against the judgments.
            print(
                f"[rerank-align] label {spec}: {floored} of {len(flat)} candidates are not in the run (judged "
                "documents below its depth); each gets its query's lowest run score, so this teacher ranks them "
                "last (scripts/teacher_agreement.py measures how often the labels then agree with the qrels)",
                file=sys.stderr,
            )
        return out
    if kind == "reranker":
        from rerank_align.scoring import Reranker

        rr = Reranker.from_pretrained(path, batch_size=batch_size, autocast_dtype=precision)
        log_resolution(f"label {spec}", precision, rr.precision, rr.device)
        scores = rr.score_pairs(
            [queries[q] for q, _ in flat], [corpus[d] for _, d in flat], show_progress=True
        )
    elif kind == "crossencoder":
        from sentence_transformers import CrossEncoder

        from rerank_align.scoring.contract import format_document

        ce = CrossEncoder(path, device="cpu", max_length=max_length)
        texts = [(queries[q], format_document(corpus[d], "{title} {text}")) for q, d in flat]
        with st_precision():
            scores = ce.predict(texts, batch_size=batch_size, show_progress_bar=True)
    elif kind == "biencoder":
        from sentence_transformers import SentenceTransformer

        from rerank_align.scoring.contract import format_document

        model = SentenceTransformer(path, device="cpu")
        if max_length:
            model.max_seq_length = max_length
        qids = list(pairs)
        dids = sorted({d for _, d in flat})
        docs = [format_document(corpus[d], "{title} {text}") for d in dids]
        with st_precision():
            q_vecs = model.encode(
                [queries[q] for q in qids], normalize_embeddings=True, batch_size=batch_size
            )
            d_vecs = model.encode(
                docs, normalize_embeddings=True, batch_size=batch_size, show_progress_bar=True
            )
        q_emb = dict(zip(qids, q_vecs.astype("float32")))
        d_emb = dict(zip(dids, d_vecs.astype("float32")))
        scores = [float(q_emb[q] @ d_emb[d]) for q, d in flat]
    else:
        raise InputError(
            f"unknown teacher {spec!r}", hint="reranker:PATH, crossencoder:PATH, biencoder:PATH or run:FILE"
        )
    out: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(flat, scores):
        out.setdefault(q, {})[d] = float(s)
    return out


def _check_outputs(args: argparse.Namespace) -> None:
    """Before any teacher loads: the output files are new (or ``--overwrite``) and are none of the inputs, and
    every local teacher model's safetensors files are complete."""
    inputs = [x for x in (args.groups, args.beir, args.run) if x]
    inputs += [t.split(":", 1)[1] for t in args.teacher if ":" in t]
    for flag in ("out", "groups_out"):
        value = getattr(args, flag)
        if value:
            check_output(
                value,
                overwrite=args.overwrite,
                kind="file",
                sources=inputs,
                where="--" + flag.replace("_", "-"),
            )
    for t in args.teacher:
        model = t.split(":", 1)[1] if ":" in t else ""
        if not t.startswith("run:") and Path(model).is_dir():
            check_safetensors(model)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="rerank-align label", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--teacher",
        action="append",
        required=True,
        help="reranker:PATH | crossencoder:PATH | biencoder:PATH | run:FILE",
    )
    p.add_argument("--groups", help="group records JSONL to label")
    p.add_argument("--beir", help="BEIR folder (with --split and --run)")
    p.add_argument("--split", default="train")
    p.add_argument(
        "--run",
        help="candidate run (default: BM25 with bm25s); judged queries absent from it are not labelled",
    )
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--max-queries", type=int, help="label only the first N queries (sorted by id)")
    p.add_argument("--normalization", choices=["zscore", "minmax", "none"], default="zscore")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, help="token limit for biencoder / crossencoder teachers")
    p.add_argument(
        "--precision",
        "--autocast",
        dest="precision",
        choices=["auto", "float32", "bfloat16", "float16"],
        default="auto",
        help="model teachers' precision: auto (default) = bfloat16 where the hardware runs it natively "
        "(CUDA with bf16, CPU with AVX512-BF16/AMX), else float32; --autocast is the old name",
    )
    p.add_argument("--out", required=True, help="teacher scores JSONL")
    p.add_argument("--groups-out", help="also write the group records with 'scores' attached")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out / --groups-out files")
    args = p.parse_args(argv)
    _check_outputs(args)
    if bool(args.groups) == bool(args.beir):
        raise InputError("give exactly one of --groups or --beir")
    records = None
    if args.groups:
        pairs, queries, corpus, records = _candidates_from_groups(args.groups)
    else:
        pairs, queries, corpus = _candidates_from_beir(args)
    if args.max_queries:
        pairs = {q: pairs[q] for q in sorted(pairs)[: args.max_queries]}
    teachers = [
        score_teacher(
            t, pairs, queries, corpus, args.batch_size, max_length=args.max_length, precision=args.precision
        )
        for t in args.teacher
    ]
    combined = ensemble(teachers, args.normalization)
    n = write_jsonl(
        args.out,
        ({"qid": q, "doc_id": d, "score": s} for q, docs in combined.items() for d, s in docs.items()),
    )
    print(
        f"wrote {n} teacher scores for {len(combined)} queries from {len(teachers)} teacher(s) to {args.out}"
    )
    if args.groups_out and records is not None:
        write_jsonl(args.groups_out, attach(records, combined, source=args.out))
    return 0
