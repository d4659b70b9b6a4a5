"""How often a teacher agrees with the qrels on the pairs a distillation recipe trains on: for every judged-relevant
document of a query (grade >= --rel) that the teacher scored, and every candidate of the run's top --depth judged
below --rel or unjudged (the negatives the score recipes draw), does the teacher score the judged one higher?

    python scripts/teacher_agreement.py outputs/smollm2_trec_dl/teacher_dl20.jsonl \\
        --qrels ../shared/data/trec-dl20-passage/qrels/test.tsv --run ../shared/data/trec-dl20-passage/bm25_top100.run

A teacher that agrees on fewer than half of these pairs teaches the opposite of the judgments. The split by where the
judged document sits shows why a teacher built from the first stage (a ``run:`` teacher) cannot rank a relevant
document the first stage did not retrieve: ``rerank-align label`` gives such a document the query's lowest run score.
"""

from __future__ import annotations

import argparse

from rerank_align.data import read_qrels, read_run
from rerank_align.data.teachers import read_teacher_file


def agreement(teacher: dict, qrels: dict, run: dict, depth: int, rel: int) -> dict[str, tuple[int, int]]:
    """``{"all" | "inside" | "outside": (agreeing pairs, pairs)}``; inside/outside: the judged document is / is not
    in the run's top ``depth``. Ties count as disagreement (the teacher does not prefer the judged document)."""
    out = {k: [0, 0] for k in ("all", "inside", "outside")}
    for qid, candidates in run.items():
        scores, judged = teacher.get(qid, {}), qrels.get(qid, {})
        top = [d for d, _ in candidates[:depth]]
        negatives = [d for d in top if judged.get(d, 0) < rel and d in scores]
        for doc, grade in judged.items():
            if grade < rel or doc not in scores:
                continue
            where = "inside" if doc in top else "outside"
            for neg in negatives:
                win = scores[doc] > scores[neg]
                for k in ("all", where):
                    out[k][0] += win
                    out[k][1] += 1
    return {k: (a, n) for k, (a, n) in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", nargs="+", help="teacher scores: JSONL {qid, doc_id, score} or a TREC run")
    p.add_argument("--qrels", required=True)
    p.add_argument("--run", required=True, help="the candidate run the recipe draws negatives from")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--rel", type=int, default=1)
    args = p.parse_args(argv)
    qrels = read_qrels(args.qrels)
    run = {q: c for q, c in read_run(args.run).items() if q in qrels}
    print(
        f"judged (grade >= {args.rel}) above a run top-{args.depth} negative, over {len(run)} judged queries"
    )
    print("| teacher | all pairs | judged inside the top | judged outside the top |")
    print("|---|---|---|---|")
    for path in args.teacher:
        res = agreement(read_teacher_file(path), qrels, run, args.depth, args.rel)
        if res["all"][1] == 0:
            raise SystemExit(f"error: {path}: no (judged, negative) pair has teacher scores for both")
        cells = [f"{a / n:.3f} ({a}/{n})" if n else "—" for a, n in res.values()]
        print(f"| {path} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
