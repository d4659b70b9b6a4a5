"""Where int8 loses a causal yes/no reranker's ranking: weights, activations, or the activation scale's granularity.

    RERANK_ALIGN_MODEL_CACHE=... python scripts/int8_llm_error.py [MODEL] [--claims 8] [--variants a,b,...]

MODEL defaults to the quickstart-llm model (outputs/quickstart_llm/smollm2-trained). The dev claims are the first
``--claims`` judged SciFact *train* claims (by id) outside the quickstart's labelled sample
(outputs/quickstart/bm25_train.run): neither the model nor its teacher saw them. Each claim's BM25 top-10 (bm25s) is
scored in float32 with shared-prefix reuse, as the evaluator scores, then with every decoder linear layer replaced by
a variant. Printed per variant: CPU seconds and speed-up over float32 (one thread), the Spearman correlation of the
scores with float32's over all pairs and its mean within a claim (the order a reranker is judged on), max |Δ|.

Variants. "Fake" ones round to int8 levels in float arithmetic, so they isolate an error source (their speed is not
int8's); symmetric int8, one weight scale per output channel (what the fast kernels use):
- ``w8``: int8 weights, float activations;
- ``a8-tensor`` / ``a8-token``: float weights, int8 activations with one scale per tensor / per token (row);
- ``w8a8-tensor`` / ``w8a8-token``: both;
- ``sq<alpha>-tensor`` / ``sq<alpha>-token``: both after SmoothQuant's per-input-channel migration
  s_j = max|X_j|^alpha / max|W_j|^(1-alpha) (Xiao et al. 2023, arXiv 2211.10438), calibrated on the first 2 claims;
- ``torch-int8``: torch.ao's dynamic int8 ``Linear`` (FBGEMM: per-tensor asymmetric activations, per-channel
  weights): the real kernel, so its speed is int8's; ``sq<alpha>-torch-int8``: the same after SmoothQuant.
A last line times ``torch._int_mm`` (the eager int8 product per-token scales would need) against the float32 product
at one decoder projection's shape.

Written here rather than taken from a library: the fake-quantised variants must share one scoring path and one set of
scales so that only the variable under study changes; torchao's int8 configs fold several of them together.
Results: docs/benchmarks.md (AVX2 section, (f)).
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from rerank_align.data import read_run
from rerank_align.data.beir import load_beir
from rerank_align.data.bm25 import bm25_run
from rerank_align.scoring import Reranker

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "outputs" / "quickstart_llm" / "smollm2-trained"
LABELLED = REPO / "outputs" / "quickstart" / "bm25_train.run"
SCIFACT = REPO / "data" / "scifact"
VARIANTS = "w8,a8-tensor,a8-token,w8a8-tensor,w8a8-token,sq0.5-tensor,sq0.5-token,torch-int8,sq0.5-torch-int8"


def int8_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 levels, one scale per output row (fake: returned in float)."""
    s = w.abs().amax(1, keepdim=True).clamp(min=1e-8) / 127
    return (w / s).round().clamp(-127, 127) * s


def int8_activation(x: torch.Tensor, per: str) -> torch.Tensor:
    """Symmetric int8 levels with one scale per tensor or per token (the last dimension is the channel)."""
    amax = x.abs().amax() if per == "tensor" else x.abs().amax(-1, keepdim=True)
    s = amax.clamp(min=1e-8) / 127
    return (x / s).round().clamp(-127, 127) * s


class FakeInt8(torch.nn.Module):
    """y = q_a(x / s) @ q_w(W diag(s))^T + b: SmoothQuant's migration (s = 1 without it), then fake int8."""

    def __init__(
        self, lin: torch.nn.Linear, act: str | None, weight: bool, smooth: torch.Tensor | None
    ) -> None:
        super().__init__()
        w = lin.weight.detach().clone()
        self.register_buffer("smooth", torch.ones(w.shape[1]) if smooth is None else smooth)
        w = w * self.smooth[None, :]
        self.register_buffer("w", int8_weight(w) if weight else w)
        self.bias = None if lin.bias is None else lin.bias.detach().clone()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / self.smooth
        if self.act is not None:
            x = int8_activation(x, self.act)
        return torch.nn.functional.linear(x, self.w, self.bias)


class TorchInt8(torch.nn.Module):
    """torch.ao's dynamic int8 Linear, after an optional SmoothQuant migration folded into its weights."""

    def __init__(self, lin: torch.nn.Linear, smooth: torch.Tensor | None) -> None:
        super().__init__()
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        f = torch.nn.Linear(lin.in_features, lin.out_features, bias=lin.bias is not None)
        self.register_buffer("smooth", torch.ones(lin.in_features) if smooth is None else smooth)
        f.weight.data = lin.weight.detach() * self.smooth[None, :]
        if lin.bias is not None:
            f.bias.data = lin.bias.detach().clone()
        with warnings.catch_warnings():  # torch.ao's deprecation notices
            warnings.simplefilter("ignore")
            seq = quantize_dynamic(
                torch.nn.Sequential(f), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
            )
        self.q = seq[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(x / self.smooth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=str(MODEL))
    ap.add_argument("--claims", type=int, default=8)
    ap.add_argument("--variants", default=VARIANTS)
    a = ap.parse_args()
    torch.set_num_threads(1)
    col = load_beir(SCIFACT, split="train")
    seen = set(read_run(LABELLED)) if LABELLED.is_file() else set()
    qids = sorted((q for q in col.qrels if q in col.queries and q not in seen), key=int)[: a.claims]
    run = bm25_run(col, qids, k=10)
    keys = [(q, d) for q in qids for d, _ in run[q][:10]]
    qs, ds = [col.queries[q] for q, _ in keys], [col.corpus[d] for _, d in keys]
    bounds = np.cumsum([0] + [len(run[q][:10]) for q in qids])
    rr = Reranker.from_pretrained(a.model, device="cpu", batch_size=8, autocast_dtype="float32")
    rr.reuse_prefix = True
    t = time.process_time()
    ref = np.asarray(rr.score_pairs(qs, ds))
    t_ref = time.process_time() - t
    spread = np.mean([ref[i:j].std() for i, j in zip(bounds[:-1], bounds[1:])])
    print(
        f"{len(qids)} claims, {len(keys)} pairs; float32 {t_ref:.1f} CPU s; within-claim score std {spread:.3f}"
    )

    base = rr.model.merge_and_unload() if hasattr(rr.model, "merge_and_unload") else rr.model
    base = base.float().eval()
    linears = {n: m for n, m in base.named_modules() if type(m) is torch.nn.Linear and ".layers." in n}
    amax: dict[str, torch.Tensor] = {}

    def record(name: str, x: torch.Tensor) -> None:
        m = x.detach().abs().reshape(-1, x.shape[-1]).amax(0)
        amax[name] = torch.maximum(amax[name], m) if name in amax else m

    hooks = [m.register_forward_pre_hook(lambda _m, i, n=n: record(n, i[0])) for n, m in linears.items()]
    rr.model = base
    rr.score_pairs(qs[: bounds[2]], ds[: bounds[2]])  # calibration: the first 2 claims
    for h in hooks:
        h.remove()

    def smooth(name: str, alpha: float) -> torch.Tensor:
        w = linears[name].weight.detach().abs().amax(0).clamp(min=1e-5)
        return (amax[name].clamp(min=1e-5) ** alpha / w ** (1 - alpha)).clamp(min=1e-5)

    def replacement(v: str, name: str) -> torch.nn.Module:
        lin = linears[name]
        if v == "w8":
            return FakeInt8(lin, None, True, None)
        if v.startswith("a8-") or v.startswith("w8a8-"):
            return FakeInt8(lin, v.split("-")[1], v.startswith("w8a8"), None)
        if v == "torch-int8":
            return TorchInt8(lin, None)
        if v.startswith("sq"):
            alpha, rest = v[2:].split("-", 1)
            s = smooth(name, float(alpha))
            return TorchInt8(lin, s) if rest == "torch-int8" else FakeInt8(lin, rest, True, s)
        raise SystemExit(f"unknown variant {v!r} (choose from {VARIANTS})")

    for v in a.variants.split(","):
        m = copy.deepcopy(base)
        modules = dict(m.named_modules())
        for name in linears:
            parent, attr = name.rsplit(".", 1)
            setattr(modules[parent], attr, replacement(v, name))
        rr.model = m
        t = time.process_time()
        s = np.asarray(rr.score_pairs(qs, ds))
        dt = time.process_time() - t
        per = np.mean([spearmanr(s[i:j], ref[i:j]).statistic for i, j in zip(bounds[:-1], bounds[1:])])
        print(
            f"{v:>18}: {dt:6.1f} CPU s (x{t_ref / dt:.2f}) Spearman all {spearmanr(s, ref).statistic:.4f} "
            f"within claims {per:.4f} max|d| {np.abs(s - ref).max():.3f}",
            flush=True,
        )

    # the eager int8 product per-token scales would run on, at an MLP projection's shape (tokens x 576 -> 1536)
    x8 = torch.randint(-127, 127, (1280, 576), dtype=torch.int8)
    w8 = torch.randint(-127, 127, (576, 1536), dtype=torch.int8)
    xf, wf = x8.float(), w8.float()
    timings = {}
    for label, fn in (("float32 mm", lambda: xf @ wf), ("torch._int_mm", lambda: torch._int_mm(x8, w8))):
        fn()
        t = time.perf_counter()
        for _ in range(5):
            fn()
        timings[label] = (time.perf_counter() - t) / 5
    print(
        f"1280x576x1536 product, one thread: float32 {timings['float32 mm'] * 1e3:.1f} ms, "
        f"torch._int_mm {timings['torch._int_mm'] * 1e3:.1f} ms "
        f"({timings['torch._int_mm'] / timings['float32 mm']:.1f}x the float32 time)"
    )


if __name__ == "__main__":
    main()
