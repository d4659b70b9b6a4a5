"""Does a distilled student fit its teacher where it was trained, and does that fit carry over to held-out queries?

    python scripts/student_teacher_fit.py RECIPE SUITE --systems NAME [NAME ...] --teacher-labels LABELS.jsonl \
        [--cache SCORE_CACHE.sqlite ...] [suite overrides key=value ...]

In sample: the recipe's training groups (rebuilt exactly as ``rerank-align train RECIPE`` builds them, with their
teacher scores) are scored by each system and compared with the teacher: the group KL(softmax(teacher) ‖
softmax(student)) that KL distillation minimises, the share of candidate pairs the student orders as the teacher
does, and the share of (judged positive, negative) pairs it orders positive first. Out of sample: Kendall's τ
between the student and ``--teacher-labels`` (``rerank-align label`` output for the suite's collection) over each
held-out query's reranked candidates. A student that fits its teacher in sample but not out of sample memorised the
training groups rather than learning the teacher's ranking function.

Systems are built as ``rerank-align eval SUITE`` builds them (same precision, fingerprint and prompt), so the
``--cache`` files of earlier evaluations answer the held-out pairs they already scored; everything else is scored.
Kendall's τ is scipy's (τ-b, ties handled); the rest is a few lines of numpy, written here because no library
computes agreement with a teacher over training groups.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def group_fit(groups: list[tuple[list[float], list[float]]]) -> dict[str, float]:
    """``groups``: (teacher scores, student scores) per training group, the judged positive first. Means over
    groups of the KL, and over pairs of the two agreement shares (a tie is not agreement)."""
    kls, same, pos_first = [], [], []
    for teacher, student in groups:
        t, s = np.asarray(teacher, float), np.asarray(student, float)
        pt, ps = softmax(t), softmax(s)
        kls.append(float((pt * (np.log(pt) - np.log(ps))).sum()))
        n = len(t)
        same += [np.sign(s[a] - s[b]) == np.sign(t[a] - t[b]) != 0 for a in range(n) for b in range(a + 1, n)]
        pos_first += [s[0] > s[b] for b in range(1, n)]
    return {
        "kl": float(np.mean(kls)),
        "pairs_as_teacher": float(np.mean(same)),
        "positive_first": float(np.mean(pos_first)),
        "groups": len(groups),
    }


def heldout_tau(lists: list[tuple[list[float], list[float]]]) -> float:
    """Mean over queries of Kendall's τ-b between teacher and student scores of the query's candidates."""
    from scipy.stats import kendalltau

    taus = [kendalltau(t, s).statistic for t, s in lists]
    return float(np.nanmean(taus))


def scored(scorer: object, caches: list, pairs: list[tuple[str, object, str, object]]) -> list[float]:
    """Scores of (qid, query, doc id, doc) pairs: from the caches where they hold the scorer's fingerprint, else
    scored now."""
    from rerank_align.evaluation.cache import doc_key, query_key

    keys = [(query_key(q, qt), doc_key(d, dt)) for q, qt, d, dt in pairs]
    found: dict = {}
    for c in caches:
        found.update(c.get_many(scorer.fingerprint, keys))
    todo = [i for i, k in enumerate(keys) if k not in found]
    if todo:
        vals = scorer.score_pairs([pairs[i][1] for i in todo], [pairs[i][3] for i in todo])
        found.update({keys[i]: float(v) for i, v in zip(todo, vals)})
    return [found[k] for k in keys]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe")
    p.add_argument("suite")
    p.add_argument("--systems", nargs="+", required=True)
    p.add_argument(
        "--teacher-labels", required=True, help="rerank-align label output for the suite's collection"
    )
    p.add_argument("--cache", nargs="*", default=[], help="score caches of earlier evaluations to read")
    p.add_argument("--out", help="write the figures as JSON here")
    p.add_argument("overrides", nargs="*", help="suite overrides key=value")
    a = p.parse_args(argv)
    # the list options swallow the overrides that follow them (``--cache a.sqlite key=value``); names and cache
    # paths have no "="
    a.overrides = [*a.overrides, *(x for x in (*a.systems, *a.cache) if "=" in x)]
    a.systems = [x for x in a.systems if "=" not in x]
    a.cache = [x for x in a.cache if "=" not in x]
    missing = [c for c in a.cache if not Path(c).is_file()]
    if missing:
        sys.exit(f"--cache {missing[0]}: no such file (a score cache written by rerank-align eval)")

    from rerank_align.config import load_recipe
    from rerank_align.evaluation.cache import ScoreCache
    from rerank_align.evaluation.config import load_suite
    from rerank_align.evaluation.runner import prepare_collection
    from rerank_align.evaluation.systems import build_scorer
    from rerank_align.train import load_training_records

    records = load_training_records(load_recipe(a.recipe))
    if not records or "scores" not in records[0]:
        sys.exit(
            f"{a.recipe}: its training records carry no teacher scores (data.teacher_files); nothing to compare"
        )
    suite = load_suite(a.suite, a.overrides)
    if len(suite.collections) != 1:
        sys.exit(f"{a.suite}: needs exactly one collection, the one --teacher-labels labels")
    prep = prepare_collection(suite.collections[0], suite)
    teacher: dict[str, dict[str, float]] = {}
    for line in Path(a.teacher_labels).read_text().splitlines():
        x = json.loads(line)
        teacher.setdefault(x["qid"], {})[x["doc_id"]] = float(x["score"])
    heads = {q: [d for d, _ in prep.run[q][: prep.depth]] for q in prep.qids if q in prep.run}
    unlabelled = sorted(q for q, ds in heads.items() if any(d not in teacher.get(q, {}) for d in ds))
    if unlabelled:
        sys.exit(
            f"{a.teacher_labels}: no teacher score for some top-{prep.depth} candidates of {unlabelled[0]!r}"
        )
    caches = [ScoreCache(Path(c)) for c in a.cache]
    out = {}
    for name in a.systems:
        spec = next((s for s in suite.systems if s.name == name), None)
        if spec is None:
            sys.exit(f"{a.suite}: no system {name!r}")
        scorer, _ = build_scorer(spec)

        train_pairs, groups = [], []
        for r in records:
            docs = [*r["positives"][:1], *r["negatives"]]
            train_pairs += [(r["qid"], r["query"], d["id"], d) for d in docs]
            groups.append([r["scores"][d["id"]] for d in docs])
        flat = scored(scorer, caches, train_pairs)
        fitted, i = [], 0
        for t in groups:
            fitted.append((t, flat[i : i + len(t)]))
            i += len(t)
        held = [(q, prep.queries[q], d, prep.corpus[d]) for q, ds in heads.items() for d in ds]
        flat = scored(scorer, caches, held)
        lists, i = [], 0
        for q, ds in heads.items():
            lists.append(([teacher[q][d] for d in ds], flat[i : i + len(ds)]))
            i += len(ds)
        out[name] = {**group_fit(fitted), "heldout_tau": heldout_tau(lists), "heldout_queries": len(lists)}
        print(name, json.dumps({k: round(v, 4) for k, v in out[name].items()}), flush=True)
    teacher_only = group_fit([(t, t) for t, _ in fitted])
    print("teacher itself:", f"positive first in {teacher_only['positive_first']:.4f} of training pairs")
    if a.out:
        Path(a.out).write_text(
            json.dumps({"systems": out, "teacher_positive_first": teacher_only["positive_first"]})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
