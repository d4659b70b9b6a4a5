"""MRB: converter from the published tables, task types, evaluation with generated images and per-type means."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest

from rerank_align.evaluation.config import parse_suite
from rerank_align.evaluation.mrb import (
    aggregate,
    convert_published,
    infer_type,
    load_mrb_task,
    normalize_type,
)
from rerank_align.evaluation.runner import run_suite

COLORS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (230, 230, 20)}


def png(color: str, size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), COLORS[color]).save(buf, format="PNG")
    return buf.getvalue()


def publish(src: Path, *, q_image: bool, d_image: bool, d_text: bool, n_q: int = 4, seed: int = 0) -> Path:
    """Write one test set in the published (GME/UMRB-style) parquet layout plus a first-stage run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    src.mkdir(parents=True)
    names = list(COLORS)
    docs = [(f"d{i}", names[i % 4]) for i in range(12)]
    corpus = [
        {
            "id": d,
            "modality": ("image," if d_image else "") + ("text" if d_text else ""),
            "text": f"a {c} thing" if d_text else "",
            "image": {"bytes": png(c), "path": f"{d}.png"} if d_image else None,
        }
        for d, c in docs
    ]
    queries = [
        {
            "id": f"q{i}",
            "text": "" if q_image else f"find {names[i % 4]}",
            "image": {"bytes": png(names[i % 4]), "path": f"q{i}.png"} if q_image else None,
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


class ColorScorer:
    """A fake multimodal scorer: does the doc's colour (from its image pixels or its text) match the query's?"""

    name, fingerprint = "color", "color-v1"

    @staticmethod
    def color(rec) -> str:
        from PIL import Image

        if rec.get("image"):
            px = Image.open(rec["image"]).convert("RGB").getpixel((0, 0))
            return min(COLORS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLORS[c], px)))
        return next((c for c in COLORS if c in (rec.get("text") or "")), "")

    def score_pairs(self, queries, docs):
        return np.array([float(self.color(q) == self.color(d)) for q, d in zip(queries, docs)])


@pytest.fixture
def tasks(tmp_path):
    out = {}
    for name, kw in {
        "t2i": dict(q_image=False, d_image=True, d_text=False),
        "i2t": dict(q_image=True, d_image=False, d_text=True),
        "i2i": dict(q_image=True, d_image=True, d_text=False),
        "fused": dict(q_image=False, d_image=True, d_text=True),
    }.items():
        src = publish(tmp_path / "pub" / name, **kw)
        out[name] = convert_published(src, tmp_path / "mrb" / name, run=src / "run.trec", name=name)
    return out


def test_converter_and_types(tasks):
    assert {n: load_mrb_task(p).type for n, p in tasks.items()} == {
        "t2i": "T→I",
        "i2t": "I→T",
        "i2i": "I→I",
        "fused": "fused",
    }
    t = load_mrb_task(tasks["t2i"])
    assert Path(t.corpus["d0"]["image"]).is_file() and t.queries["q0"]["image"] is None
    assert json.loads((tasks["t2i"] / "mrb.json").read_text())["type"] == "T→I"
    assert normalize_type("t2i") == "T→I" and normalize_type("fused") == "fused"
    assert infer_type({"q": {"text": "x"}}, {"d": {"text": "y"}}) == "T→T"


def test_evaluate_and_aggregate(tasks):
    raw = {
        "name": "mrb-mini",
        "depth": 8,
        "metrics": ["nDCG@10", "RR@10"],
        "collections": [{"name": n, "path": str(p)} for n, p in tasks.items()],
        "systems": [{"name": "gme", "type": "first_stage"}, {"name": "color", "type": "lexical"}],
        "significance": {"permutations": 200, "bootstrap": 100},
    }
    res = run_suite(parse_suite(raw), scorers={"color": ColorScorer()}, write=False, show_progress=False)
    agg = res["mrb"]
    color = agg["systems"]["color"]
    # the colour scorer puts every retrieved relevant document first: RR@10 = 1 wherever one was retrieved
    for name in tasks:
        c = res["collections"][name]
        assert c["metrics"]["color"]["nDCG@10"] >= c["metrics"]["gme"]["nDCG@10"]
    per_task = {n: res["collections"][n]["metrics"]["color"]["nDCG@10"] for n in tasks}
    assert color["per_type"]["T→I"] == pytest.approx(per_task["t2i"])
    assert color["overall"] == pytest.approx(sum(per_task.values()) / 4)
    assert color["overall_types"] == pytest.approx(sum(per_task.values()) / 4)  # one task per type here


def test_aggregate_by_hand():
    cols = {
        "a": {"mrb_type": "T→T", "metrics": {"s": {"m": 0.2}}},
        "b": {"mrb_type": "T→T", "metrics": {"s": {"m": 0.4}}},
        "c": {"mrb_type": "fused", "metrics": {"s": {"m": 0.9}}},
        "beir": {"mrb_type": None, "metrics": {"s": {"m": 0.0}}},
    }
    s = aggregate(cols, "m")["systems"]["s"]
    assert s["per_type"] == pytest.approx({"T→T": 0.3, "fused": 0.9})
    assert s["overall"] == pytest.approx(0.5)  # mean over the 3 tasks
    assert s["overall_types"] == pytest.approx(0.6)  # mean over the 2 types
