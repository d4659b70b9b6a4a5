"""Listwise figures for the closing note: generated tokens/s, FIRST candidates/s (tiny model), repair counts on
deliberately corrupted outputs, and the evaluator on a real collection.

    python scripts/listwise_benchmark.py --workdir /tmp/lwbench --collection ../shared/data/medline \
        --depth 20 --queries 10 [--model outputs/<trained listwise folder>]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

# the test harness (rerank_align_testing) lives at the repository root, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def corrupted_outputs(n: int, seed: int = 0) -> dict[str, str]:
    from rerank_align.scoring.listwise_format import answer_text

    rng = random.Random(seed)
    perm = list(range(n))
    rng.shuffle(perm)
    clean = answer_text(perm, "[{i}]", " > ")
    return {
        "clean": clean,
        "missing 5 ids": answer_text(perm[:-5], "[{i}]", " > "),
        "duplicates": answer_text(perm[:10] + perm[:5] + perm[10:], "[{i}]", " > "),
        "unknown ids": answer_text(perm, "[{i}]", " > ") + " > [99] > [0] > [21]",
        "cut mid-identifier": clean[: len(clean) // 2] + "[1",
        "prose": "The most relevant passage is the third one.",
        "bare numbers": ", ".join(str(p + 1) for p in perm),
        "empty": "",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/lwbench")
    ap.add_argument("--collection", default=str(Path(__file__).resolve().parents[2] / "shared/data/medline"))
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument(
        "--model", default=None, help="a trained listwise folder; default: a tiny untrained model"
    )
    a = ap.parse_args()
    from rerank_align.scoring import Reranker
    from rerank_align.scoring.listwise_format import parse_permutation
    from rerank_align_testing.synthetic import make_task
    from rerank_align_testing.tiny import build_tiny_causal

    work = Path(a.workdir)
    model = a.model or str(build_tiny_causal(work / "tiny"))
    out: dict = {}

    # 1. throughput on synthetic lists of 20 candidates
    task = make_task(0, 8, 20, seed=1)
    qs = list(task["run"])
    lists = [[task["corpus"][d] for d, _ in task["run"][q]] for q in qs]
    queries = [task["queries"][q] for q in qs]

    def rr(**lf):
        return (
            Reranker.from_base(
                model, kind="listwise", device="cpu", batch_size=8, max_length=1024, list_format=lf
            )
            if a.model is None
            else Reranker.from_pretrained(model, device="cpu")
        )

    gen = rr(strategy="full", decoding="generate")
    t0 = time.perf_counter()
    res = gen.rank_lists(queries, lists, strategy="full", decoding="generate")
    wall = time.perf_counter() - t0
    s = gen.listwise.stats
    out["generate"] = {
        "lists": len(lists),
        "generated_tokens": s["generated_tokens"],
        "tokens_per_s_in_generate": round(s["generated_tokens"] / s["generate_seconds"], 1),
        "lists_per_s": round(len(lists) / wall, 2),
        "repaired_outputs": sum(r.repaired for r in res),
    }
    first = rr(strategy="full", decoding="first")
    t0 = time.perf_counter()
    first.rank_lists(queries, lists, strategy="full", decoding="first")
    wall = time.perf_counter() - t0
    s = first.listwise.stats
    out["first"] = {
        "candidates": s["first_candidates"],
        "candidates_per_s_forward": round(s["first_candidates"] / s["first_seconds"], 1),
        "candidates_per_s_wall": round(s["first_candidates"] / wall, 1),
    }

    # 2. repairs on corrupted outputs (n = 20)
    rep = {}
    for name, text in corrupted_outputs(20).items():
        p = parse_permutation(text, 20)
        assert sorted(p.permutation) == list(range(20))
        rep[name] = {"repaired": p.repaired, "dropped": p.dropped, "appended": p.appended}
    out["repairs"] = rep
    out["repaired_of_corrupted"] = (
        f"{sum(v['repaired'] for k, v in rep.items() if k != 'clean')}/{len(rep) - 1}"
    )

    # 3. the evaluator on a real collection
    from rerank_align.evaluation.config import parse_suite
    from rerank_align.evaluation.runner import run_suite

    col = Path(a.collection).resolve()
    if a.model is None:
        lw = {"kind": "listwise", "max_length": 1024, "max_document_length": 64}  # tiny model: 1024 positions
        systems = [
            {"name": "bm25", "type": "first_stage"},
            {
                "name": "tiny-first-sliding",
                "type": "base",
                "path": model,
                "contract": {**lw, "list_format": {"decoding": "first", "window": 10, "stride": 5}},
            },
            {
                "name": "tiny-generate-full",
                "type": "base",
                "path": model,
                "contract": {**lw, "list_format": {"decoding": "generate", "strategy": "full"}},
            },
        ]
    else:
        systems = [
            {"name": "bm25", "type": "first_stage"},
            {"name": "listwise", "type": "reranker", "path": model},
        ]
    suite = parse_suite(
        {
            "name": "listwise-real",
            "depth": a.depth,
            "metrics": ["nDCG@10", "RR@10"],
            "collections": [{"name": col.name, "path": str(col), "run": "bm25_top100.run", "rel": 1}],
            "systems": systems,
            "baseline": "bm25",
            "significance": {"permutations": 1000, "bootstrap": 200},
        },
        path=str(work / "suite.yaml"),
    )
    t0 = time.perf_counter()
    res = run_suite(suite, limit_queries=a.queries, show_progress=False, out=work / "eval", use_cache=False)
    c = res["collections"][col.name]
    out["evaluator"] = {
        "collection": col.name,
        "queries": c["n_queries"],
        "depth": a.depth,
        "metrics": c["metrics"],
        "timing": res["timing"]["per_system"],
        "seconds": round(time.perf_counter() - t0, 1),
        "report": str(work / "eval" / "report.md"),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
