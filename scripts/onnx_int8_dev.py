"""How ``onnx-int8`` quantises, chosen on held-out SciFact *train* queries (never test).

    python scripts/onnx_int8_dev.py [VARIANT ...]  # after scripts/quickstart_dev.py D2_q480_d10_s120_doc128
    python scripts/onnx_int8_dev.py "all int8" "down-proj fp32" split   # the recipe against the previous one

The dev-split model (trained without these 100 queries) reranks their BM25 top-20 in float32 (the ONNX graph) and
under each quantisation variant; printed per variant: the number of int8 linear layers, dev nDCG@10 and its change,
CPU seconds and the speed-up over float32, and the Spearman correlation of the scores with float32's. The variant is
chosen by the correlation: on 100 queries, quantisation noise moves nDCG@10 by more than the variants differ. The
first variants keep layer subsets in float32 (the previous recipe kept the down-projections); the last ones split
the largest input channels off in float32 (the recipe now: rerank_align.scoring.onnx_backend), with 1, 2 or 4
channels, and with or without the attention output projection.
Results: docs/benchmarks.md (a, AVX2).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ir_measures
import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from rerank_align.scoring import Reranker
from rerank_align.scoring.onnx_backend import _calibration_batch, _split_outlier_channels, exported

REPO = Path(__file__).resolve().parents[1]
DEV = REPO / "outputs" / "quickstart_dev"
NAME = "D2_q480_d10_s120_doc128"
CORPUS = REPO.parent / "shared" / "data" / "scifact" / "corpus.jsonl"
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def main() -> None:
    wanted = sys.argv[1:]  # substrings of the variant names to run; all when none
    torch.set_num_threads(1)
    rr = Reranker.from_pretrained(DEV / "runs" / NAME, autocast_dtype="float32")
    qrels: dict[str, dict[str, int]] = {}
    for i, line in enumerate(open(DEV / "dev" / "qrels" / "test.tsv")):
        if i:
            q, d, r = line.split("\t")
            qrels.setdefault(q, {})[d] = int(r)
    run: dict[str, list[tuple[int, str]]] = {}
    for line in open(DEV / "eval" / NAME / "runs" / "dev" / "bm25.run"):
        q, _, d, rank, *_ = line.split()
        run.setdefault(q, []).append((int(rank), d))
    corpus = {}
    for line in open(CORPUS):
        r = json.loads(line)
        corpus[r["_id"]] = {"title": r.get("title", ""), "text": r.get("text", "")}
    text = {json.loads(x)["_id"]: json.loads(x)["text"] for x in open(DEV / "dev" / "queries.jsonl")}
    keys = [(q, d) for q in run if q in qrels for _, d in sorted(run[q])[:20]]
    feats = rr.encoder.encode([text[q] for q, _ in keys], [corpus[d] for _, d in keys])
    src = exported(rr.model, rr.encoder) / "model.onnx"

    def score(path: Path) -> tuple[np.ndarray, float]:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]), reverse=True)
        s = np.empty(len(feats), np.float32)
        t = time.process_time()
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            batch = rr.encoder.collate([feats[j] for j in idx])
            s[idx] = sess.run(None, {k: batch[k].numpy() for k in INPUTS})[0][:, 0]
        return s, time.process_time() - t

    def ndcg(s: np.ndarray) -> dict[str, float]:
        r: dict[str, dict[str, float]] = {}
        for (q, d), x in zip(keys, s):
            r.setdefault(q, {})[d] = float(x)
        return {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.nDCG @ 10], qrels, r)}

    graph = onnx.load(str(src)).graph
    weights = {t.name for t in graph.initializer}
    linear = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]

    def down(n: str) -> bool:  # the feed-forward down-projection of a BERT layer
        return "/output/dense" in n and "attention" not in n

    def keep(pred) -> list[str]:
        return [n for n in linear if not pred(n)]

    variants = {
        "all int8": linear,
        "down-proj fp32": keep(down),
        "up-proj fp32": keep(lambda n: "intermediate" in n),
        "attn-out fp32": keep(lambda n: "attention/output" in n),
        "qkv fp32": keep(lambda n: any(x in n for x in ("query", "key", "value"))),
        "layers 0,5 fp32": keep(lambda n: "layer.0/" in n or "layer.5/" in n),
        "down-proj 0 fp32": keep(lambda n: down(n) and "layer.0/" in n),
        "down-proj 0,1 fp32": keep(lambda n: down(n) and ("layer.0/" in n or "layer.1/" in n)),
        "down-proj 4,5 fp32": keep(lambda n: down(n) and ("layer.4/" in n or "layer.5/" in n)),
        "down-proj 5 fp32": keep(lambda n: down(n) and "layer.5/" in n),
    }
    s0, t0 = score(src)
    p0 = ndcg(s0)
    qs = sorted(p0)
    print(
        f"{len(qs)} dev queries, {len(keys)} pairs; float32 nDCG@10 {np.mean([p0[q] for q in qs]):.4f}, {t0:.1f} CPU s"
    )
    cal = _calibration_batch(rr.encoder)
    cal_feed, cal_mask = {k: cal[k].numpy() for k in INPUTS}, cal["attention_mask"].numpy()

    def split(k: int) -> Path:
        model = onnx.load(str(src))
        _split_outlier_channels(model, cal_feed, cal_mask, k)
        dst = Path(tempfile.mkdtemp()) / "split.onnx"
        onnx.save(model, str(dst))
        return dst

    runs = [(name, src, nodes) for name, nodes in variants.items()]
    runs += [(f"split top-{k} channels", split(k), linear) for k in (1, 2, 4)]
    for name, source, nodes in runs:
        if wanted and not any(w in name for w in wanted):
            continue
        dst = Path(tempfile.mkdtemp()) / "model.onnx"
        quantize_dynamic(
            str(source),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=nodes,
        )
        s, t = score(dst)
        p = ndcg(s)
        rho = np.corrcoef(np.argsort(np.argsort(s)), np.argsort(np.argsort(s0)))[0, 1]
        print(
            f"{name:32s} int8 {len(nodes):2d}/{len(linear)}  nDCG@10 {np.mean([p[q] for q in qs]):.4f} "
            f"({np.mean([p[q] - p0[q] for q in qs]):+.4f})  {t:.1f} CPU s (x{t0 / t:.2f})  Spearman {rho:.4f}",
            flush=True,
        )
        shutil.rmtree(dst.parent)


if __name__ == "__main__":
    main()
