"""The yes/no VLM reranker (scoring/vision.py) under the one scoring contract, on a tiny Qwen2-VL built in code with
generated images: training-time scores == saved + reloaded scores, batch and padding invariance, text-only pairs on
the text path, chunked batches, the SFT forward, and an MRB evaluation over a task of every type."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rerank_align.errors import ContractError
from rerank_align.scoring import PairEncoder, Reranker, ScoringContract, build_contract, score_forward
from rerank_align.scoring.forward import answer_logits, apply_formula, backbone
from rerank_align.scoring.modeling import load_model, load_tokenizer, pair_encoder
from rerank_align.scoring.vision import MultimodalPairEncoder, slice_pairs

COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (230, 230, 20)}
TEMPLATE = "Query: {query}\nDocument: {document}\nRelevant:"
# float32 differences between one pair scored alone and in a padded batch (a few ulps on these tiny models)
NOISE = 1e-5


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    """PNG files of several sizes and aspect ratios: 1 to 4 image tokens each after the tiny processor's resize."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    sizes = {"red": (40, 30), "green": (56, 56), "blue": (60, 20), "yellow": (90, 70)}
    out = {}
    for name, rgb in COLORS.items():
        im = Image.new("RGB", sizes[name], rgb)
        im.putpixel((1, 1), (0, 0, 0))  # not a flat image: the patches differ inside one image too
        im.save(folder / f"{name}.png")
        out[name] = str(folder / f"{name}.png")
    return out


@pytest.fixture(scope="module")
def vlm(tiny_vlm):
    tok = load_tokenizer(str(tiny_vlm))
    contract = build_contract(
        tok,
        base_model=str(tiny_vlm),
        kind="yesno",
        architecture="vlm",
        template=TEMPLATE,
        max_query_length=8,
        max_document_length=16,
        max_length=64,
    )
    torch.manual_seed(0)
    model = load_model(str(tiny_vlm), contract).eval()
    return model, tok, contract


def pairs(images):
    """Every combination of modalities: image→image, text→image, image→text, fused on both sides, text→text."""
    queries = [
        {"text": "", "image": images["red"]},
        "find the red thing",
        {"text": "", "image": images["blue"]},
        {"text": "red or blue", "image": images["green"]},
        "plain text query",
        {"text": "", "image": images["yellow"]},
    ]
    docs = [
        {"id": "d1", "text": "", "image": images["red"]},
        {"id": "d2", "title": "", "text": "", "image": images["green"]},
        {"id": "d3", "title": "Sky", "text": "a blue thing far away " * 5},
        {"id": "d4", "title": "", "text": "a green leaf", "image": images["yellow"]},
        {"id": "d5", "title": "", "text": "some document"},
        {"id": "d6", "title": "", "text": "", "image": images["blue"]},
    ]
    return queries, docs


def training_scores(model, tok, contract, queries, docs, padding_side="right"):
    """What the score trainer does: the group collator's encoder, one batch, score_forward."""
    c = ScoringContract.from_dict({**contract.to_dict(), "padding_side": padding_side})
    enc = pair_encoder(tok, c)
    batch = enc.collate(enc.encode(queries, docs))
    with torch.no_grad():
        return score_forward(model, c, batch).scores


def test_contract_records_the_vision_section(vlm, tmp_path):
    model, tok, contract = vlm
    v = contract.vision
    assert v is not None and contract.architecture == "vlm"
    assert v.token_ids == {k: tok.convert_tokens_to_ids(getattr(v, k)) for k in v.token_ids}
    assert (v.min_pixels, v.max_pixels, v.patch_size, v.merge_size) == (28 * 28, 56 * 56, 14, 2)
    contract.save(tmp_path)
    again = ScoringContract.load(tmp_path)
    assert again == contract and again.sha256 == contract.sha256
    # a VLM contract without its vision section, or with it on a text model, is refused
    bad = contract.to_dict()
    del bad["vision"]
    with pytest.raises(ContractError, match="vision"):
        ScoringContract.from_dict(bad)
    with pytest.raises(ContractError, match="vision"):
        ScoringContract.from_dict({**contract.to_dict(), "architecture": "causal"})
    with pytest.raises(ContractError, match="head on a VLM is not built"):
        ScoringContract.from_dict(
            {
                **contract.to_dict(),
                "kind": "head",
                "formula": "head",
                "answer_tokens": {},
                "answer_token_ids": {},
            }
        )
    # a tokenizer whose image token has another id is caught at load time
    swapped = json.loads(contract.to_json())
    swapped["vision"]["token_ids"]["image_pad"] += 1
    with pytest.raises(ContractError, match="image_pad"):
        ScoringContract.from_dict(swapped).check_tokenizer(tok)


def test_vision_overrides_are_checked(vlm, tiny_vlm):
    model, tok, contract = vlm
    c = build_contract(
        tok, base_model=str(tiny_vlm), kind="yesno", architecture="vlm", vision={"max_pixels": 784}
    )
    assert c.vision.max_pixels == 784 and c.vision.min_pixels == contract.vision.min_pixels
    with pytest.raises(ContractError, match="unknown vision settings"):
        build_contract(
            tok, base_model=str(tiny_vlm), kind="yesno", architecture="vlm", vision={"max_pixel": 784}
        )


def test_text_contracts_have_no_vision_key(tiny_causal):
    tok = load_tokenizer(str(tiny_causal))
    c = build_contract(tok, base_model="x", kind="yesno", architecture="causal", template="plain")
    assert "vision" not in c.to_dict()


def test_image_blocks_follow_the_grid(vlm, images):
    model, tok, contract = vlm
    enc = pair_encoder(tok, contract)
    assert isinstance(enc, MultimodalPairEncoder)
    pad = contract.vision.token_ids["image_pad"]
    # 40×30 → 28×28 (2×2 patches → 1 token); 56×56 → 4×4 patches → 4 tokens; 90×70 → capped at 56² pixels
    counts = {
        n: enc.encode(["q"], [{"text": "", "image": p}])[0]["input_ids"].count(pad) for n, p in images.items()
    }
    assert counts["red"] == 1 and counts["green"] == 4 and 1 <= counts["yellow"] <= 4
    feats = enc.encode(*pairs(images))
    batch = enc.collate(feats)
    grids = batch["image_grid_thw"]
    assert int((batch["input_ids"] == pad).sum()) == int((grids.prod(-1) // 4).sum())
    assert batch["pixel_values"].shape[0] == int(grids.prod(-1).sum())
    # the query's image comes first, as in the prompt
    assert feats[3]["image_files"] == [images["green"], images["yellow"]]
    # image_position: the block goes before (default) or after the field's text, never elsewhere
    doc = {"text": "a green leaf", "image": images["red"]}
    text_ids = tok.encode("a green leaf", add_special_tokens=False)
    block = enc.image_block(images["red"])
    before = enc.encode(["q"], [doc])[0]["input_ids"]
    after_contract = ScoringContract.from_dict(
        {**contract.to_dict(), "vision": {**contract.to_dict()["vision"], "image_position": "after"}}
    )
    after = pair_encoder(tok, after_contract).encode(["q"], [doc])[0]["input_ids"]
    assert _find(before, block + text_ids) and _find(after, text_ids + block) and len(before) == len(after)
    assert not _find(before, text_ids + block)


def _find(seq: list[int], sub: list[int]) -> bool:
    return any(seq[i : i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def test_train_scores_equal_saved_reranker_scores(vlm, images, tmp_path):
    model, tok, contract = vlm
    queries, docs = pairs(images)
    train = training_scores(model, tok, contract, queries, docs)
    left = training_scores(model, tok, contract, queries, docs, padding_side="left")
    torch.testing.assert_close(train, left, atol=1e-6, rtol=0)
    Reranker(model, tok, contract).save_pretrained(tmp_path / "saved")
    saved = tmp_path / "saved"
    assert json.loads((saved / "reranker.json").read_text())["vision"]["image_pad"] == "<|image_pad|>"
    for batch_size in (1, 2, 6):
        rr = Reranker.from_pretrained(saved, batch_size=batch_size)
        served = torch.tensor(rr.score_pairs(queries, docs))
        assert torch.max(torch.abs(served - train)).item() <= 1e-6, batch_size
    # one pair alone scores as inside any batch
    alone = torch.tensor([rr.score_pairs([q], [d])[0] for q, d in zip(queries, docs)])
    assert torch.max(torch.abs(alone - train)).item() <= 1e-6


def test_images_reach_the_model(vlm, images):
    model, tok, contract = vlm
    rr = Reranker(model, tok, contract)
    q = {"text": "which colour", "image": images["red"]}
    s = rr.score_pairs([q] * 3, [{"text": "x", "image": images[c]} for c in ("red", "green", "blue")])
    assert len({round(float(x), 6) for x in s}) == 3
    no_image = rr.score_pairs([{"text": "which colour"}], [{"text": "x", "image": images["red"]}])[0]
    assert abs(no_image - s[0]) > 1e-6


def test_text_only_pair_takes_the_text_path(vlm, images):
    """Same ids as the text encoder, and the same score as a plain 1-D-position forward with no vision input."""
    model, tok, contract = vlm
    queries, docs = pairs(images)
    text_contract = ScoringContract.from_dict(
        {**contract.to_dict(), "architecture": "causal", "vision": None}
    )
    q, d = queries[4], docs[4]
    assert (
        pair_encoder(tok, contract).encode([q], [d])[0]["input_ids"]
        == PairEncoder(tok, text_contract).encode([q], [d])[0]["input_ids"]
    )
    batch = PairEncoder(tok, text_contract).collate(
        PairEncoder(tok, text_contract).encode([q, queries[1]], [d, docs[2]])
    )
    mask = batch["attention_mask"]
    with torch.no_grad():
        out = backbone(model)(
            input_ids=batch["input_ids"], attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)
        )
        last = mask.sum(-1) - 1
        h = out.last_hidden_state[torch.arange(2), last]
        plain = apply_formula(contract.formula, *answer_logits(model, contract, h))
    # the same two pairs inside a batch with image pairs
    mixed = training_scores(model, tok, contract, [*queries, queries[1]], [*docs, docs[2]])
    torch.testing.assert_close(mixed[[4, 6]], plain, atol=1e-6, rtol=0)


def test_chunks_carry_their_own_images(vlm, images):
    """The gradient-cache trainer scores row chunks: each chunk gets exactly its rows' pixel patches."""
    model, tok, contract = vlm
    enc = pair_encoder(tok, contract)
    batch = enc.collate(enc.encode(*pairs(images)))
    with torch.no_grad():
        full = score_forward(model, contract, batch).scores
        parts = [
            score_forward(model, contract, slice_pairs(batch, slice(i, i + 2), contract)).scores
            for i in (0, 2, 4)
        ]
    torch.testing.assert_close(torch.cat(parts), full, atol=1e-6, rtol=0)


def test_sft_forward_matches_the_score_path(vlm, images):
    """The SFT trainer's model forward (images, M-RoPE from the model) puts the same yes/no logits at the answer
    position as score_forward."""
    from rerank_align.training.sft_yesno_trainer import VisionSFTCollator, sft_examples

    model, tok, contract = vlm
    queries, docs = pairs(images)
    records = [
        {"query": q, "positives": [d], "negatives": [docs[(i + 1) % 6]]}
        for i, (q, d) in enumerate(zip(queries, docs))
    ]
    enc = pair_encoder(tok, contract)
    examples = sft_examples(records, enc, group_size=2, seed=0)
    assert all("image_files" in e for e in examples)
    batch = VisionSFTCollator(enc)(examples)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    answer_pos = (batch["labels"] != -100).int().argmax(-1) - 1
    z = logits[torch.arange(len(examples)), answer_pos]
    yes, no = contract.answer_token_ids["yes"], contract.answer_token_ids["no"]
    pair_q = [r["query"] for r in records for _ in range(2)]
    pair_d = [d for r in records for d in (r["positives"][0], r["negatives"][0])]
    out = training_scores(model, tok, contract, pair_q, pair_d)
    torch.testing.assert_close(z[:, yes] - z[:, no], out, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------ MRB evaluation


def publish(src, *, q_image: bool, d_image: bool, d_text: bool, n_q: int = 3, seed: int = 0):
    """One test set in the published (GME/UMRB-style) parquet layout plus a first-stage TREC run."""
    import io
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    def png(color: str, size: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (size, size), COLORS[color]).save(buf, format="PNG")
        return buf.getvalue()

    rng = random.Random(seed)
    src.mkdir(parents=True)
    names = list(COLORS)
    docs = [(f"d{i}", names[i % 4]) for i in range(10)]
    corpus = [
        {
            "id": d,
            "modality": ("image," if d_image else "") + ("text" if d_text else ""),
            "text": f"a {c} thing number {i}" if d_text else "",
            "image": {"bytes": png(c, 20 + 4 * i), "path": f"{d}.png"} if d_image else None,
        }
        for i, (d, c) in enumerate(docs)
    ]
    queries = [
        {
            "id": f"q{i}",
            "text": "" if q_image else f"find {names[i % 4]}",
            "image": {"bytes": png(names[i % 4], 30), "path": f"q{i}.png"} if q_image else None,
        }
        for i in range(n_q)
    ]
    qrels = [
        {"query-id": f"q{i}", "Q0": "0", "corpus-id": d, "score": 1}
        for i in range(n_q)
        for d, c in docs
        if c == names[i % 4]
    ]
    for stem, rows in (("query", queries), ("corpus", corpus), ("qrels", qrels)):
        pq.write_table(pa.Table.from_pylist(rows), src / f"{stem}-00000-of-00001.parquet")
    with open(src / "run.trec", "w") as fh:
        for i in range(n_q):
            ids = [d for d, _ in docs]
            rng.shuffle(ids)
            for r, d in enumerate(ids[:8], start=1):
                fh.write(f"q{i} Q0 {d} {r} {10 - r} gme\n")
    return src


def test_mrb_evaluation_of_the_vlm_reranker(vlm, tiny_vlm, tmp_path):
    """A generated task of each MRB type, converted from the published layout, evaluated with the saved VLM
    reranker and the untrained base as suite systems: per-type and overall aggregates, and the reranker's run
    is exactly the order of its own scores."""
    from rerank_align.cli import main as cli_main
    from rerank_align.data.beir import read_run
    from rerank_align.evaluation.config import parse_suite
    from rerank_align.evaluation.mrb import TASK_TYPES, convert_published, load_mrb_task
    from rerank_align.evaluation.runner import run_suite

    model, tok, contract = vlm
    Reranker(model, tok, contract).save_pretrained(tmp_path / "vlm")
    kinds = {
        "t2t": dict(q_image=False, d_image=False, d_text=True),
        "t2i": dict(q_image=False, d_image=True, d_text=False),
        "i2t": dict(q_image=True, d_image=False, d_text=True),
        "i2i": dict(q_image=True, d_image=True, d_text=False),
        "fused": dict(q_image=False, d_image=True, d_text=True),
    }
    tasks = {}
    for name, kw in kinds.items():
        src = publish(tmp_path / "pub" / name, n_q=3, **kw)
        dst = tmp_path / "mrb" / name
        if name == "t2t":  # one through the command line
            args = ["mrb-convert", str(src), str(dst), "--run", str(src / "run.trec"), "--name", name]
            assert cli_main(args) == 0
            tasks[name] = dst
        else:
            tasks[name] = convert_published(src, dst, run=src / "run.trec", name=name)
    raw = {
        "name": "mrb-tiny",
        "depth": 8,
        "metrics": ["nDCG@10"],
        "collections": [{"name": n, "path": str(p)} for n, p in tasks.items()],
        "systems": [
            {"name": "first", "type": "first_stage"},
            {"name": "vlm", "type": "reranker", "path": str(tmp_path / "vlm")},
            {
                "name": "base",
                "type": "base",
                "path": str(tiny_vlm),
                "contract": {"template": TEMPLATE, "vision": {"max_pixels": 28 * 28}},
            },
        ],
        "significance": {"permutations": 200, "bootstrap": 100},
    }
    res = run_suite(parse_suite(raw), out=tmp_path / "out", show_progress=False)
    agg = res["mrb"]["systems"]
    assert set(agg) == {"first", "vlm", "base"}
    for system in agg.values():
        assert set(system["per_type"]) == set(TASK_TYPES)
    per_task = {n: res["collections"][n]["metrics"]["vlm"]["nDCG@10"] for n in tasks}
    assert agg["vlm"]["overall"] == pytest.approx(np.mean(list(per_task.values())))
    assert agg["vlm"]["per_type"]["I→I"] == pytest.approx(per_task["i2i"])
    assert res["systems"]["base"]["contract"]["vision"]["max_pixels"] == 28 * 28  # the suite's override
    # the evaluator's run for the image task is the reranker's own order (images included)
    task = load_mrb_task(tasks["i2i"])
    run = read_run(tmp_path / "out" / "runs" / "i2i" / "vlm.run")
    first = read_run(tasks["i2i"] / "candidates.run", depth=8)
    rr = Reranker.from_pretrained(tmp_path / "vlm")
    for qid, cands in first.items():
        ids = [d for d, _ in cands]
        scores = rr.score_pairs([task.queries[qid]] * len(ids), [task.corpus[d] for d in ids])
        # The evaluator scored these pairs in its own batches; padding to another length changes the last bits of
        # a score (by how much depends on the CPU's kernels), and the tiny model gives some documents the same
        # score, so two documents whose scores agree to that noise may come out either way. Any other swap fails.
        # (The run file's scores are rank-based: only its order is the reranker's.)
        by_id = dict(zip(ids, scores))
        got = [d for d, _ in run[qid]][: len(ids)]
        assert sorted(got) == sorted(ids)
        ordered = [float(by_id[d]) for d in got]
        assert all(a >= b - NOISE for a, b in zip(ordered, ordered[1:])), (qid, got, by_id)
