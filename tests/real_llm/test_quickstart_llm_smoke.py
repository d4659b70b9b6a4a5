"""``scripts/quickstart_llm.py --smoke``: the whole LLM quickstart path (chat-template contract, teacher labels, LoRA
KL distillation of the yes/no margin, evaluation against BM25 and against the zero-shot model, fused systems) on a
tiny Llama built in code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_llm_smoke(tmp_path):
    out = tmp_path / "qs"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "scripts/quickstart_llm.py", "--smoke", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    contract = json.loads((out / "smollm2-trained" / "reranker.json").read_text())
    assert contract["template_name"] == "chat" and contract["kind"] == "yesno"
    assert contract["template"].endswith("<|im_start|>assistant\n")
    assert (out / "smollm2-trained" / "adapter_config.json").is_file()  # LoRA, not full fine-tuning
    recipe = yaml.safe_load((out / "smollm2-trained" / "recipe.yaml").read_text())
    # the shipped recipe's objective, from the teacher labels the run wrote
    assert recipe["method"]["loss"] == "kl"
    assert recipe["data"]["teacher_files"] == [str(out / "teacher.jsonl")]
    res = json.loads((out / "eval" / "results.json").read_text())
    assert res["baseline"] == "bm25"
    sig = res["collections"]["scifact"]["significance"]
    assert set(sig) == {
        "smollm2-zeroshot",
        "smollm2-zeroshot+bm25",
        "smollm2-trained",
        "smollm2-trained+bm25",
    }
    assert res["collections"]["scifact"]["n_queries"] == 4
    vs = json.loads((out / "eval_vs_zeroshot" / "results.json").read_text())
    assert (
        vs["baseline"] == "smollm2-zeroshot"
        and "smollm2-trained" in vs["collections"]["scifact"]["significance"]
    )
    assert "wall in the budget" in proc.stdout
