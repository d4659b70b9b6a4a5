"""A prepared model is named like any other: the SmolLM2 recipe trains, scores, merges and exports with
``model.name_or_path: smollm2-135m-instruct`` resolved from the cache. The cache here holds a tiny Llama with a
ChatML template under that name (the real one: tests/real_llm/test_smollm2_slow.py)."""

from __future__ import annotations

import json


def test_recipe_trains_merges_and_exports_by_name(named_cache, tmp_path):
    from rerank_align.cli import main
    from rerank_align.scoring import Reranker

    out = tmp_path / "sft"
    rc = main(
        [
            "train", "recipes/smollm2-135m/sft_yesno/lora.yaml",
            f"training.output_dir={out}", "data.max_train_samples=2", "training.max_steps=1", "data.depth=5",
            "method.group_size=2", "data.num_negatives=1", "training.per_device_train_batch_size=2",
        ]
    )  # fmt: skip
    assert rc == 0
    contract = json.loads((out / "reranker.json").read_text())
    assert contract["base_model"] == "smollm2-135m-instruct" and contract["template_name"] == "chat"
    rr = Reranker.from_pretrained(out)
    assert len(rr.score("a claim", ["a document", "another"])) == 2
    assert main(["merge", str(out), "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    assert (
        main(["export", str(tmp_path / "merged"), "--to", "seq-cls", "--out", str(tmp_path / "seqcls")]) == 0
    )
