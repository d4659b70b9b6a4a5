"""How the LLM quickstart's settings are to be chosen: train SmolLM2 on SciFact train minus 50 held-out train claims,
evaluate on those 50 (never on the test claims): zero-shot, trained, and both fused with BM25 at several weights.

    .venv/bin/python scripts/quickstart_llm_dev.py NAME [recipe overrides ...]
    .venv/bin/python scripts/quickstart_llm_dev.py lr2e-4
    .venv/bin/python scripts/quickstart_llm_dev.py lr5e-4 training.learning_rate=5.0e-4
    .venv/bin/python scripts/quickstart_llm_dev.py bce method.name=score method.loss=bce
    .venv/bin/python scripts/quickstart_llm_dev.py infonce method.name=score method.loss=infonce

Each call costs about as much as ``make quickstart-llm`` (training ~10 min, 50 claims x 10 candidates per SmolLM2
system; the zero-shot scores are cached across calls). Writes ``outputs/quickstart_llm_dev/{dev,train}/`` (BEIR
folders: the split), the model under ``outputs/quickstart_llm_dev/runs/NAME``, the evaluation under
``outputs/quickstart_llm_dev/eval/NAME``, and appends a line to ``outputs/quickstart_llm_dev/results.jsonl``. The
chosen settings go into the quickstart-llm recipe (recipes/smollm2-135m/kl/lora.yaml) and the fusion weights into
eval/suites/quickstart_llm_scifact.yaml, with the dev figures in docs/real_llm.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs" / "quickstart_llm_dev"
RECIPE = "recipes/smollm2-135m/sft_yesno/lora.yaml"
N_DEV = 50
DEPTH = 10
WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def split() -> tuple[Path, Path]:
    """The quickstart's dev split (scripts/quickstart_dev.py) with ``N_DEV`` held-out claims, under ``OUT``."""
    sys.path.insert(0, str(REPO / "scripts"))
    from quickstart_dev import split as dev_split

    return dev_split(OUT, N_DEV)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print(__doc__)
        return 2
    name, overrides = sys.argv[1], sys.argv[2:]
    # "zeroshot": BM25 and zero-shot SmolLM2 only (no training); fills the score cache the trained runs reuse
    zeroshot_only = name == "zeroshot"
    os.chdir(REPO)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rerank_align.config import load_recipe
    from rerank_align.evaluation.cli import main as eval_main
    from rerank_align.models.packaged import prepare
    from rerank_align.train import main as train_main

    prepare("smollm2-135m-instruct")
    train_dir, dev_dir = split()
    model = OUT / "runs" / name
    t0 = time.time()
    if not zeroshot_only and not (model / "reranker.json").exists():
        rc = train_main([RECIPE, f"data.beir={train_dir}", f"training.output_dir={model}", *overrides])
        if rc:
            return rc
    train_s = time.time() - t0
    m = load_recipe(REPO / RECIPE, [f"data.beir={train_dir}", *overrides]).model
    contract = {
        "kind": "yesno",
        "template": m.template,
        "instruction": m.instruction,
        "max_query_length": m.max_query_length,
        "max_document_length": m.max_document_length,
        "max_length": m.max_length,
    }
    zero = {"type": "base", "path": m.name_or_path, "contract": contract, "reuse_prefix": True}
    trained = {"type": "reranker", "path": str(model), "reuse_prefix": True}
    suite = {
        "name": f"quickstart_llm_dev_{name}",
        "depth": DEPTH,
        "metrics": ["nDCG@10"],
        "cache": str(OUT / "score_cache.sqlite"),
        # no run: the runner retrieves the BM25 top-DEPTH with bm25s, as the test run was made
        "collections": [{"name": "dev", "path": str(dev_dir)}],
        "systems": [
            {"name": "bm25", "type": "first_stage"},
            {"name": "zeroshot", **zero},
            *([] if zeroshot_only else [{"name": "sft", **trained}]),
            *({"name": f"zeroshot+bm25@{w}", **zero, "fuse_first_stage": w} for w in WEIGHTS),
            *(
                []
                if zeroshot_only
                else ({"name": f"sft+bm25@{w}", **trained, "fuse_first_stage": w} for w in WEIGHTS)
            ),
        ],
        "baseline": "bm25",
    }
    suite_path = OUT / "eval" / f"{name}.yaml"
    suite_path.parent.mkdir(parents=True, exist_ok=True)
    suite_path.write_text(yaml.safe_dump(suite, sort_keys=False))
    rc = eval_main([str(suite_path), "--out", str(OUT / "eval" / name), "--quiet", "--no-progress"])
    if rc:
        return rc
    if not zeroshot_only:
        # the same (cached) scores, paired against zero-shot SmolLM2: the start of the trained model
        rc = eval_main(
            [str(suite_path), "--out", str(OUT / "eval" / f"{name}_vs_zeroshot"), "--quiet", "--no-progress"]
            + ["baseline=zeroshot"]
        )
        if rc:
            return rc
    res = json.loads((OUT / "eval" / name / "results.json").read_text())
    metrics = {s: round(v["nDCG@10"], 4) for s, v in res["collections"]["dev"]["metrics"].items()}
    line = {"name": name, "overrides": overrides, "train_s": round(train_s, 1), "dev_nDCG@10": metrics}
    for base, folder in (("bm25", name), ("zeroshot", f"{name}_vs_zeroshot")):
        if (OUT / "eval" / folder / "results.json").is_file():
            sig = json.loads((OUT / "eval" / folder / "results.json").read_text())["collections"]["dev"]
            line[f"vs_{base}"] = {
                s: {
                    k: round(v["nDCG@10"][k], 4)
                    for k in ("delta", "p_t", "p_t_holm", "wins", "ties", "losses")
                }
                for s, v in sig["significance"].items()
            }
    print(json.dumps(line))
    with open(OUT / "results.jsonl", "a") as fh:
        fh.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
