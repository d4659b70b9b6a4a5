"""Training a VLM yes/no reranker on group records whose queries and documents carry images (tiny Qwen2-VL):
the shipped Qwen2.5-VL SFT recipe, and the score trainer with gradient-cache chunks, each for 2 CPU steps; the saved
folder scores through reranker.json as the in-memory model did."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (230, 230, 20)}


@pytest.fixture(scope="module")
def image_groups(tmp_path_factory) -> Path:
    """8 group records: image or text queries, image / text / image+text documents."""
    from PIL import Image

    root = tmp_path_factory.mktemp("vlm_groups")
    for i, (name, rgb) in enumerate(COLORS.items()):
        Image.new("RGB", (28 + 14 * i, 40), rgb).save(root / f"{name}.png")
    names = list(COLORS)
    with open(root / "groups.jsonl", "w") as fh:
        for i in range(8):
            c = names[i % 4]
            img = str(root / f"{c}.png")
            # query images relative to the records file, document images absolute
            query = {"text": f"find {c}"} if i % 2 else {"text": "", "image": f"{c}.png"}
            pos = (
                {"id": f"p{i}", "text": "", "image": img}
                if i % 3
                else {"id": f"p{i}", "text": f"a {c} thing"}
            )
            # every negative has an image; the odd ones text as well (fused)
            negs = [
                {
                    "id": f"n{i}{j}",
                    "text": f"a {other} thing" if j % 2 else "",
                    "image": str(root / f"{other}.png"),
                }
                for j, other in enumerate(n for n in names if n != c)
            ]
            fh.write(json.dumps({"query": query, "positives": [pos], "negatives": negs}) + "\n")
    # a dev set in the MRB task layout (docs/mrb.md) for the in-training evaluation: image queries, image docs
    dev = root / "dev"
    (dev / "qrels").mkdir(parents=True)
    (dev / "mrb.json").write_text(json.dumps({"name": "dev", "type": "I→I"}))
    with open(dev / "queries.jsonl", "w") as fh:
        for c in names:
            fh.write(json.dumps({"_id": f"q_{c}", "image": f"../{c}.png"}) + "\n")
    with open(dev / "corpus.jsonl", "w") as fh:
        for c in names:
            fh.write(json.dumps({"_id": f"d_{c}", "image": f"../{c}.png"}) + "\n")
    with open(dev / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n" + "".join(f"q_{c}\td_{c}\t1\n" for c in names))
    with open(dev / "candidates.run", "w") as fh:
        for q in names:
            for r, d in enumerate(names[::-1], start=1):
                fh.write(f"q_{q} Q0 d_{d} {r} {10 - r} first\n")
    return root


def overrides(tiny_vlm: Path, root: Path, out: Path) -> list[str]:
    return [
        f"model.name_or_path={tiny_vlm}",
        "model.architecture=vlm",
        "model.dtype=float32",
        "model.max_query_length=8",
        "model.max_document_length=16",
        "model.max_length=128",
        f"data.train_file={root / 'groups.jsonl'}",
        "method.group_size=3",
        "eval.beir=null",
        "eval.run=null",
        "eval.every_n_steps=null",
        "eval.at_start=false",
        f"training.output_dir={out}",
        "training.max_steps=2",
        "training.per_device_train_batch_size=2",
        "training.gradient_accumulation_steps=1",
        "training.bf16=false",
        "training.logging_steps=1",
        "training.disable_tqdm=true",
    ]


def check_saved(out: Path, root: Path) -> None:
    from rerank_align.scoring import Reranker

    rr = Reranker.from_pretrained(out)
    assert rr.contract.vision is not None and rr.contract.architecture == "vlm"
    assert (out / "preprocessor_config.json").is_file()
    red = {"text": "", "image": str(root / "red.png")}
    s = rr.score(
        red, [{"text": "", "image": str(root / "red.png")}, {"text": "", "image": str(root / "blue.png")}]
    )
    assert len(s) == 2 and all(map(torch.isfinite, torch.tensor(s))) and s[0] != s[1]


def test_vlm_sft_yesno_recipe_trains_on_images(tiny_vlm, image_groups, tmp_path):
    from rerank_align import train
    from rerank_align.config import load_recipe

    path = REPO / "recipes" / "qwen2.5-vl-3b" / "sft_yesno" / "lora.yaml"
    recipe = load_recipe(path, overrides(tiny_vlm, image_groups, tmp_path / "out"))
    assert recipe.peft.enabled and recipe.method.name == "sft_yesno"
    summary = train.run(recipe)
    assert summary["steps"] == 2 and math.isfinite(summary["train_loss"])
    check_saved(tmp_path / "out", image_groups)
    contract = json.loads((tmp_path / "out" / "reranker.json").read_text())
    # the recipe's image cap is recorded
    assert contract["vision"]["max_pixels"] == recipe.model.image_max_pixels == 200704

    # merge the LoRA adapter (vision tower included): the parity gates run on generated image pairs as well
    from rerank_align.export.common import BUILTIN_PROBES
    from rerank_align.export.merge import merge

    report = merge(tmp_path / "out", tmp_path / "merged")
    checks = report.to_dict()["checks"]
    assert checks and all(c["ok"] for c in checks)
    assert all(c["n_pairs"] == len(BUILTIN_PROBES) + 4 for c in checks)
    check_saved(tmp_path / "merged", image_groups)

    # the model card's plain-transformers recipe (text-only pair) gives the reranker's score
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from rerank_align.export.card import encode_pair
    from rerank_align.scoring import Reranker

    merged = tmp_path / "merged"
    card = (merged / "README.md").read_text()
    assert "AutoModelForImageTextToText.from_pretrained" in card and "<|image_pad|>" in card
    c = json.loads((merged / "reranker.json").read_text())
    query, doc = "find red", {"title": "Red", "text": "a red thing"}
    ids = torch.tensor([encode_pair(AutoTokenizer.from_pretrained(merged), c, query, doc)])
    with torch.no_grad():
        z = AutoModelForImageTextToText.from_pretrained(merged).eval()(input_ids=ids).logits[0, -1]
    plain = (z[c["answer_token_ids"]["yes"]] - z[c["answer_token_ids"]["no"]]).item()
    assert abs(plain - Reranker.from_pretrained(merged).score(query, [doc])[0]) <= 1e-5


def test_record_images_resolve_relative_to_the_records_file(image_groups, tmp_path):
    from rerank_align.data import read_group_records
    from rerank_align.errors import InputError

    records = read_group_records(image_groups / "groups.jsonl")
    assert records[0]["query"]["image"] == str(image_groups / "red.png")
    bad = tmp_path / "bad.jsonl"
    good = {"query": "q", "positives": [{"text": "x"}], "negatives": []}
    missing = {"query": "q", "positives": [{"text": "", "image": "red.png"}], "negatives": []}
    bad.write_text(json.dumps(good) + "\n" + json.dumps(missing) + "\n")  # red.png is not next to bad.jsonl
    with pytest.raises(InputError, match="bad.jsonl:2.*'red.png' not found"):
        read_group_records(bad)


def test_image_settings_need_a_vlm(tiny_vlm, image_groups, tmp_path):
    from rerank_align.config import load_recipe
    from rerank_align.errors import RecipeError

    path = REPO / "recipes" / "qwen2.5-vl-3b" / "sft_yesno" / "lora.yaml"
    ov = overrides(tiny_vlm, image_groups, tmp_path / "out")
    with pytest.raises(RecipeError, match="image_max_pixels"):
        load_recipe(path, [*ov, "model.architecture=causal"])
    with pytest.raises(RecipeError, match="image_min_pixels"):
        load_recipe(path, [*ov, "model.image_min_pixels=300000"])
    with pytest.raises(RecipeError, match="on a VLM is not built"):
        load_recipe(
            path,
            [
                *ov,
                "model.kind=head",
                "method.name=score",
                "model.answer_yes=null",
                "model.answer_no=null",
                "model.formula=null",
            ],
        )


def test_vlm_score_trainer_with_chunks_trains_on_images(tiny_vlm, image_groups, tmp_path):
    """InfoNCE over groups of image/text pairs, scored in chunks of 2 pairs (the pixel patches follow their rows)."""
    from rerank_align import train
    from rerank_align.config import load_recipe

    path = REPO / "recipes" / "qwen3-0.6b" / "contrastive" / "full.yaml"
    ov = overrides(tiny_vlm, image_groups, tmp_path / "out") + [
        "model.template=plain",
        "data.teacher_files=[]",
        "method.chunk_size=2",
        f"eval.beir={image_groups / 'dev'}",  # an MRB task folder: in-training evaluation on image pairs
        "eval.at_start=true",
    ]
    recipe = load_recipe(path, ov)
    summary = train.run(recipe)
    assert 0 < summary["eval_at_start"]["nDCG@10"] <= 1 and 0 < summary["eval"]["eval_nDCG@10"] <= 1
    assert summary["steps"] == 2 and math.isfinite(summary["train_loss"])
    check_saved(tmp_path / "out", image_groups)


def test_plan_counts_image_tokens():
    """`rerank-align plan` adds the image tokens a VLM prompt can carry on top of max_length (never cut)."""
    from rerank_align.config import load_recipe
    from rerank_align.plan import image_tokens

    path = REPO / "recipes" / "qwen2.5-vl-3b" / "sft_yesno" / "lora.yaml"
    assert image_tokens(load_recipe(path)) == 2 * (
        200704 // 784 + 2
    )  # query and document image, 256 tokens each
    assert image_tokens(load_recipe(path, ["model.image_max_pixels=null"])) == 0
