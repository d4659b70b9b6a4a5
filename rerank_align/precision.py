"""One precision policy for scoring, labelling, training and benchmarks: ``auto`` by default everywhere.

``auto`` resolves to ``bfloat16`` only where the hardware runs it natively — a CUDA device that supports bf16, or a
CPU with AVX512-BF16 or AMX tiles — and to ``float32`` everywhere else. On a CPU without those units oneDNN emulates
bf16: a MiniLM forward of 32 pairs × 128 tokens then takes 8.8× longer under bf16 autocast than in float32 (AMD
EPYC, AVX2 only), so bf16 there is never the fast choice. ``float16`` is never chosen by ``auto`` (it needs a loss
scaler to train and loses range); it stays available explicitly, as do ``bfloat16`` and ``float32``.

The capability probe can be forced with ``RERANK_ALIGN_NATIVE_BF16=0|1``: tests simulate both machines with it,
and it measures the float32 path on a machine that has bf16 units. Each resolution is logged once per process
and is written into the results JSON of the command that used it (train_summary.json, eval results, bench).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from rerank_align.errors import RerankAlignError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
ENV_OVERRIDE = "RERANK_ALIGN_NATIVE_BF16"

_logged: set[tuple[str, str, str]] = set()


def device_type(device: Any) -> str:
    """``"cuda"`` for ``cuda:1``, ``"cpu"`` for ``cpu`` (also accepts a ``torch.device``)."""
    return str(device).split(":")[0]


def native_bf16(device: Any = "cpu") -> bool:
    """Whether ``device`` runs bf16 matrix products natively (not emulated)."""
    forced = os.environ.get(ENV_OVERRIDE)
    if forced is not None and forced.strip() != "":
        if forced.strip() not in ("0", "1"):
            raise RerankAlignError(
                f"{ENV_OVERRIDE}={forced!r} is not 0 or 1",
                where=ENV_OVERRIDE,
                hint="unset it to probe the hardware",
            )
        return forced.strip() == "1"
    import torch

    kind = device_type(device)
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind == "cpu":
        cpu = torch.cpu
        return any(
            bool(getattr(cpu, name, lambda: False)())
            for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        )
    return False


def resolve(precision: str | bool | None, device: Any = "cpu") -> str:
    """The concrete precision (``float32`` / ``bfloat16`` / ``float16``) for a requested one.

    ``None`` and ``"auto"`` follow the hardware; ``True`` / ``False`` are the recipe booleans of ``training.bf16``
    (kept for compatibility: ``True`` means bfloat16, ``False`` float32)."""
    if precision is None or precision == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    if precision is True:
        return "bfloat16"
    if precision is False:
        return "float32"
    if precision not in PRECISIONS:
        raise RerankAlignError(f"unknown precision {precision!r}", hint="auto, float32, bfloat16 or float16")
    return str(precision)


def autocast_dtype(resolved: str) -> Any:
    """The ``torch.autocast`` dtype for a resolved precision; ``None`` for float32 (no autocast)."""
    import torch

    return None if resolved == "float32" else getattr(torch, resolved)


def autocast(resolved: str, device: Any = "cpu") -> Any:
    """``torch.autocast`` in ``resolved`` precision on ``device``'s type; a no-op context for float32."""
    import torch

    dtype = autocast_dtype(resolved)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=dtype)


def describe(device: Any = "cpu") -> dict[str, Any]:
    """What the probe saw, for results JSON: the device, whether bf16 is native, and whether it was forced."""
    import torch

    info: dict[str, Any] = {"device": str(device), "native_bf16": native_bf16(device)}
    if os.environ.get(ENV_OVERRIDE, "").strip():
        info["forced_by"] = f"{ENV_OVERRIDE}={os.environ[ENV_OVERRIDE].strip()}"
    if device_type(device) == "cpu":
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return info


def log_resolution(what: str, requested: Any, resolved: str, device: Any = "cpu") -> None:
    """Log ``what`` ran in ``resolved`` precision, once per process for each (what, requested, resolved)."""
    key = (what, str(requested), resolved)
    if key in _logged:
        return
    _logged.add(key)
    if requested in (None, "auto"):
        why = "auto: native bf16" if resolved == "bfloat16" else "auto: no native bf16"
    else:
        why = f"asked for {requested}"
    print(f"[rerank-align] {what}: precision {resolved} on {device} ({why})", file=sys.stderr, flush=True)
