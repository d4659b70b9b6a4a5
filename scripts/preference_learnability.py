"""Preference methods from a strong listwise start: held-out nDCG@10 start → end with paired tests.

    OMP_NUM_THREADS=1 python scripts/preference_learnability.py --workdir /tmp/pref

1. The start is the 6,000-step fullrank model of docs/learnability.md (``learnability("fullrank", ...)``: the tiny
   untied Qwen3, 3,000 generated lists of 10; held-out 0.996 on an AVX512 CPU, 0.918 on an AVX2 one), trained once
   into ``<workdir>/start`` (~36–44 CPU minutes) and reused afterwards; ``--start-model`` / ``--start-task`` take an existing one instead.
2. Two fresh held-out sets (``--heldout`` queries each, never trained on): lists of 10 (one window) and lists of 20
   ranked with sliding windows of 10, stride 5 (where the start has head-room: 0.75–0.94 depending on the CPU it
   was trained on; docs/preference.md).
3. Each method trains from the start through the real entry point (recipe → ``rerank_align.train.run`` → saved
   folder → ``Reranker.from_pretrained``) on ``--train-lists`` lists of the start's training task:
   DPO (sigmoid; chosen = graded order, rejected = the farthest of 4 samples of the start), IRPO (the start's
   greedy lists, items = identifiers, released averaging over all items), PL-DPO (graded order, first-stage order
   and 4 samples ranked by nDCG), ADPA (NLL on the graded order, the teacher's advantage on one sample of the
   start: ``preference_source: student``; teacher = the DPO result, reference teacher = the start) and DCKD
   (graded order vs first-stage order, KL to the same teacher with the remaining-mass bin).
4. For the start, the teacher and every end: per-query nDCG@10 on both held-out sets, the share of answers (windows)
   that needed repair, and for every end a paired t-test and a Wilcoxon signed-rank test against the start (scipy)
   on the same queries.

Prints a markdown table and writes ``<workdir>/results.json`` (per-query values included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# the test harness (rerank_align_testing) lives at the repository root, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

METHODS = ["dpo", "irpo", "pl_dpo", "adpa", "dckd"]


def evaluate(reranker: Any, folder: Path, depth: int) -> dict[str, Any]:
    """Per-query nDCG@10 of ``reranker`` on the test split of ``folder`` and its answer repair rate."""
    from rerank_align.data import load_beir, read_run
    from rerank_align.evaluation.metrics import evaluate as ir_evaluate
    from rerank_align.evaluation.metrics import final_order

    col = load_beir(folder, split="test")
    run = read_run(folder / "first_stage.run")
    qids = sorted(q for q in col.qrels if q in run)
    cands = {q: [(d, s) for d, s in run[q] if d in col.corpus][:depth] for q in qids}
    lists = [[col.corpus[d] for d, _ in cands[q]] for q in qids]
    results = reranker.rank_lists([col.queries[q] for q in qids], lists)
    ranking = {}
    for q, res in zip(qids, results):
        n = len(cands[q])
        scores = [0.0] * n
        for pos, i in enumerate(res.order):
            scores[i] = float(n - pos)
        ranking[q] = final_order(cands[q], scores, depth)
    per_query = ir_evaluate(ranking, {q: col.qrels[q] for q in qids}, ["nDCG@10"])["nDCG@10"]
    outputs = sum(r.outputs for r in results)
    return {
        "ndcg": sum(per_query.values()) / len(per_query),
        "per_query": per_query,
        "repair_rate": sum(r.repaired for r in results) / max(outputs, 1),
        "answers": outputs,
    }


def paired(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    """Paired t-test and Wilcoxon signed-rank test of end − start over the same queries."""
    from scipy import stats

    qids = sorted(start)
    if sorted(end) != qids:
        raise ValueError("start and end were evaluated on different queries")
    a = [start[q] for q in qids]
    b = [end[q] for q in qids]
    diff = [y - x for x, y in zip(a, b)]
    out = {"n": len(qids), "mean_diff": sum(diff) / len(diff)}
    out["p_ttest"] = float(stats.ttest_rel(b, a).pvalue) if any(diff) else 1.0
    out["p_wilcoxon"] = float(stats.wilcoxon(b, a).pvalue) if any(diff) else 1.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/preference_learnability")
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument(
        "--start-model", help="an existing listwise start folder (default: train the 6,000-step one)"
    )
    ap.add_argument("--start-task", help="the BEIR folder the start was trained on (with --start-model)")
    ap.add_argument("--start-epochs", type=float, help="epochs of the start (default: learnability()'s, 32)")
    ap.add_argument("--heldout", type=int, default=200, help="held-out queries per evaluation set")
    ap.add_argument("--train-lists", type=int, default=400, help="training lists of each preference method")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--teacher", help="ADPA/DCKD teacher folder (default: this run's DPO result)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--heldout-seed",
        type=int,
        default=None,
        help="seed of the two held-out sets (default: --seed + 100): a fresh pair to confirm a setting chosen on the "
        "default pair",
    )
    ap.add_argument(
        "--loss-args",
        type=json.loads,
        default=None,
        help="JSON merged into method.loss_args of every method run, e.g. '{\"lambda_adpa\": 0.1}'",
    )
    a = ap.parse_args()

    from rerank_align.config.load import parse_recipe
    from rerank_align.scoring import Reranker
    from rerank_align.train import run
    from rerank_align_testing.listwise_learnability import SHORT_PROMPT, learnability
    from rerank_align_testing.synthetic import make_task, write_beir

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"settings": vars(a)}

    if a.start_model:
        start, task = Path(a.start_model), Path(a.start_task or "")
        if not (task / "corpus.jsonl").exists():
            raise SystemExit(
                f"--start-task {task}: no BEIR folder there (corpus.jsonl); give the start's task"
            )
    else:
        sdir = work / "start"
        start, task = sdir / "out-fullrank-10", sdir / f"task-3000-50-10-s{a.seed}"
        if not (start / "reranker.json").exists():
            kw = {} if a.start_epochs is None else {"epochs": a.start_epochs}
            results["start_training"] = learnability("fullrank", sdir, seed=a.seed, **kw)
            print("start:", json.dumps(results["start_training"]), flush=True)

    heldout = {}
    hseed = a.seed + 100 if a.heldout_seed is None else a.heldout_seed
    for n in (10, 20):
        folder = work / f"heldout-{a.heldout}x{n}-s{hseed + n}"
        if not (folder / "corpus.jsonl").exists():
            write_beir(make_task(0, a.heldout, n, seed=hseed + n), folder)
        heldout[n] = folder

    def measure(folder: Path) -> dict[str, Any]:
        r = Reranker.from_pretrained(folder, device="cpu")
        return {f"lists{n}": evaluate(r, f, n) for n, f in heldout.items()}

    evals: dict[str, dict[str, Any]] = {"start": measure(start)}
    print("start:", {k: round(v["ndcg"], 4) for k, v in evals["start"].items()}, flush=True)

    model = {
        "name_or_path": str(start),
        "kind": "listwise",
        "max_length": 1024,
        "max_document_length": 48,
        "list_prompt_template": SHORT_PROMPT,
    }
    data = {
        "beir": str(task),
        "split": "train",
        "run": str(task / "first_stage.run"),
        "depth": 10,
        "max_train_samples": a.train_lists,
    }
    teacher = a.teacher or str(work / "out-dpo")
    settings: dict[str, dict[str, Any]] = {
        "dpo": {"name": "dpo", "preference_source": "samples", "num_samples": 4},
        "irpo": {"name": "irpo"},
        "pl_dpo": {"name": "pl_dpo", "num_samples": 4},
        "adpa": {
            "name": "adpa",
            "preference_source": "student",
            "teacher_model": teacher,
            "teacher_ref_model": str(start),
            "teacher_topk": 20,
        },
        "dckd": {"name": "dckd", "preference_source": "qrels", "teacher_model": teacher, "teacher_topk": 20},
    }
    # the distillation methods need their teacher: the DPO row trains first
    order = sorted(a.methods, key=lambda m: (m != "dpo", METHODS.index(m)))
    if a.teacher is None and any(m in ("adpa", "dckd") for m in order) and "dpo" not in order:
        if not (work / "out-dpo" / "reranker.json").exists():
            raise SystemExit(
                "adpa/dckd distil this run's DPO result: include dpo in --methods or give --teacher"
            )
    rows = []
    for m in order:
        out = work / f"out-{m}"
        recipe = {
            "model": model,
            "data": data,
            "method": {
                **settings[m],
                **({"loss_args": a.loss_args} if a.loss_args else {}),
                "listwise_strategy": "sliding",
                "listwise_window": 10,
                "listwise_stride": 5,
                "listwise_decoding": "generate",
            },
            "training": {
                "output_dir": str(out),
                "num_train_epochs": a.epochs,
                "learning_rate": a.lr,
                "beta": a.beta,
                "per_device_train_batch_size": a.batch_size,
                "lr_scheduler_type": "constant",
                "logging_steps": 25,
                "disable_tqdm": True,
            },
            "seed": a.seed,
        }
        c0 = time.process_time()
        summary = run(parse_recipe(recipe))
        cpu = time.process_time() - c0
        evals[m] = measure(out)
        row: dict[str, Any] = {"method": m, "cpu_s": round(cpu, 1), "steps": summary["steps"]}
        for key in evals["start"]:
            s, e = evals["start"][key], evals[m][key]
            row[key] = {
                "start": round(s["ndcg"], 4),
                "end": round(e["ndcg"], 4),
                **paired(s["per_query"], e["per_query"]),
                "repair_start": round(s["repair_rate"], 3),
                "repair_end": round(e["repair_rate"], 3),
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if any(m in ("adpa", "dckd") for m in order):
        evals["teacher"] = (
            evals["dpo"] if teacher == str(work / "out-dpo") and "dpo" in evals else measure(Path(teacher))
        )
        results["teacher"] = {k: round(v["ndcg"], 4) for k, v in evals["teacher"].items()}

    results["rows"] = rows
    results["per_query"] = {name: {k: v["per_query"] for k, v in ev.items()} for name, ev in evals.items()}
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(
        "\n| method | lists of 10: start → end (Δ) | p (t / Wilcoxon) | lists of 20, windows: start → end (Δ) "
        "| p (t / Wilcoxon) | repaired answers start → end (10 / 20) | CPU s |\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        x, y = r["lists10"], r["lists20"]
        print(
            f"| {r['method']} | {x['start']:.4f} → {x['end']:.4f} ({x['mean_diff']:+.4f}) "
            f"| {x['p_ttest']:.3g} / {x['p_wilcoxon']:.3g} "
            f"| {y['start']:.4f} → {y['end']:.4f} ({y['mean_diff']:+.4f}) | {y['p_ttest']:.3g} / {y['p_wilcoxon']:.3g} "
            f"| {x['repair_start']:.3f} → {x['repair_end']:.3f} / {y['repair_start']:.3f} → {y['repair_end']:.3f} "
            f"| {r['cpu_s']} |"
        )
    if "teacher" in results:
        print(f"\nADPA/DCKD teacher ({teacher}): {results['teacher']}")
    print(f"held-out queries per set: {a.heldout}; results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
