"""``rerank-align mine``: hard negatives from a first-stage run (or BM25) → group records (JSONL).

Every group is checked with the same validation ``train`` applies before anything is written, so a mined file is
always trainable. Corpus documents with neither title nor text (real collections ship a few) cannot be training
documents: such negatives are left out and groups whose positive is empty are skipped; both counts are printed.

False-negative guard: give teacher scores (``--teacher-file``: JSONL ``{qid, doc_id, score}`` or a TREC run, or
``--teacher``: a model that scores the candidates, as in ``rerank-align label``) and ``--teacher-margin`` and / or
``--teacher-ratio``. A candidate is then dropped when ``t_neg > t_pos - margin`` or ``t_neg > ratio * t_pos``
(NV-Retriever's TopK-MarginPos / TopK-PercPos): one the teacher rates about as high as the judged positive is likely
an unjudged relevant document. The teacher scores are written into each group's ``scores`` (for distillation).
``--teacher-ratio`` compares raw magnitudes, so it needs non-negative scores: use ``--teacher-normalization minmax``
(or ``none`` with a probability-like teacher), not ``zscore``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rerank_align.data import groups_from_run, load_beir
from rerank_align.data.bm25 import first_stage
from rerank_align.data.records import validate_group
from rerank_align.data.teachers import ensemble, read_teacher_file
from rerank_align.errors import InputError
from rerank_align.io import check_output, write_jsonl
from rerank_align.label import score_teacher


def _has_content(doc: dict) -> bool:
    return bool(str(doc.get("text") or "").strip() or str(doc.get("title") or "").strip() or doc.get("image"))


def trainable_groups(groups: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Drop empty documents (and groups left without a positive or a negative); validate the rest."""
    kept: list[dict] = []
    counts = {
        "empty_negatives_dropped": 0,
        "groups_skipped_empty_positive": 0,
        "groups_skipped_no_negative": 0,
    }
    for g in groups:
        if not all(_has_content(d) for d in g["positives"]):
            counts["groups_skipped_empty_positive"] += 1
            continue
        negs = [d for d in g["negatives"] if _has_content(d)]
        counts["empty_negatives_dropped"] += len(g["negatives"]) - len(negs)
        if not negs:
            counts["groups_skipped_no_negative"] += 1
            continue
        if len(negs) != len(g["negatives"]):
            labels = g.get("labels")
            if labels is not None:  # positive first, then one per negative
                labels = labels[:1] + [y for d, y in zip(g["negatives"], labels[1:]) if _has_content(d)]
            g = dict(g, negatives=negs) | ({"labels": labels} if labels is not None else {})
        validate_group(g, f"mined group for query {g.get('qid')!r}", min_negatives=1)
        kept.append(g)
    return kept, counts


def load_collection(folder: str, split: str, run: str | None):
    """A BEIR folder / BeIR hub id, or an MRB task folder (images on either side; docs/mrb.md), whose
    ``candidates.run`` is then the default run."""
    if (Path(folder) / "mrb.json").is_file():
        from rerank_align.evaluation.mrb import as_collection

        return as_collection(folder, split), run or str(Path(folder) / "candidates.run")
    return load_beir(folder, split=split), run


def teacher_scores(args: argparse.Namespace, col, run) -> dict[str, dict[str, float]] | None:
    """The ensemble of ``--teacher-file`` and ``--teacher`` scores over every judged query's candidates."""
    teachers = [read_teacher_file(p) for p in args.teacher_file]
    if args.teacher:
        pairs: dict[str, list[str]] = {}
        for qid, judged in col.qrels.items():
            docs = [d for d, _ in run.get(qid, [])[: args.depth] if d in col.corpus]
            docs += [d for d in judged if d in col.corpus and d not in docs]
            if docs and qid in col.queries:
                pairs[qid] = docs
        teachers += [
            score_teacher(t, pairs, col.queries, col.corpus, args.batch_size, max_length=args.max_length)
            for t in args.teacher
        ]
    return ensemble(teachers, args.teacher_normalization) if teachers else None


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="rerank-align mine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or a BeIR hub id"
    )
    p.add_argument("--split", default="train")
    p.add_argument("--run", help="TREC run with candidates (default: BM25 over the corpus with bm25s)")
    p.add_argument("--out", required=True, help="output JSONL of group records")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--num-negatives", type=int, default=7)
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--sampling", choices=["random", "top"], default="random")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("false-negative guard (teacher scores)")
    g.add_argument(
        "--teacher-file",
        action="append",
        default=[],
        help="teacher scores: JSONL {qid, doc_id, score} or TREC run",
    )
    g.add_argument(
        "--teacher",
        action="append",
        default=[],
        help="a teacher model scoring the candidates: reranker:PATH | crossencoder:PATH | biencoder:PATH",
    )
    g.add_argument("--teacher-normalization", choices=["zscore", "minmax", "none"], default="zscore")
    g.add_argument("--teacher-margin", type=float, help="drop negatives with t_neg > t_pos - margin")
    g.add_argument("--teacher-ratio", type=float, help="drop negatives with t_neg > ratio * t_pos")
    g.add_argument("--batch-size", type=int, default=32, help="teacher model batch size")
    g.add_argument("--max-length", type=int, help="token limit of crossencoder / biencoder teachers")
    args = p.parse_args(argv)
    guard = args.teacher_margin is not None or args.teacher_ratio is not None
    if guard and not (args.teacher_file or args.teacher):
        raise InputError(
            "--teacher-margin / --teacher-ratio need teacher scores", hint="add --teacher-file or --teacher"
        )
    if args.teacher_ratio is not None and args.teacher_normalization == "zscore":
        raise InputError(
            "--teacher-ratio compares magnitudes, but z-scored teacher scores can be negative",
            hint="use --teacher-normalization minmax (or none with a non-negative teacher), or --teacher-margin",
        )
    check_output(
        args.out,
        overwrite=args.overwrite,
        kind="file",
        sources=[args.beir, *([args.run] if args.run else []), *args.teacher_file],
    )
    col, run_path = load_collection(args.beir, args.split, args.run)
    run = first_stage(col, run_path, depth=args.depth)
    teacher = teacher_scores(args, col, run)
    groups = groups_from_run(
        col,
        run,
        num_negatives=args.num_negatives,
        depth=args.depth,
        sampling=args.sampling,
        teacher_scores=teacher,
        teacher_margin=args.teacher_margin,
        teacher_ratio=args.teacher_ratio,
        seed=args.seed,
    )
    groups, counts = trainable_groups(groups)
    if not groups:
        raise InputError(
            f"no group could be mined from {len(col.qrels)} judged queries",
            where=args.beir,
            hint="check that the run covers the judged queries of this split",
        )
    n = write_jsonl(args.out, groups)
    kept = sum(len(g["negatives"]) for g in groups)
    guard_note = (
        f"; false-negative guard (margin {args.teacher_margin}, ratio {args.teacher_ratio})" if guard else ""
    )
    dropped = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items() if v)
    print(
        f"wrote {n} groups ({kept} negatives) from {len(col.qrels)} judged queries to {args.out}{guard_note}"
        + (f" ({dropped})" if dropped else "")
    )
    return 0
