"""Provenance shared by results JSON, model cards and manifests: git commit, library versions, file hashes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# import name → distribution name on PyPI (when they differ)
LIBRARIES = {
    "rerank_align": "rerank-align",
    "torch": "torch",
    "transformers": "transformers",
    "trl": "trl",
    "peft": "peft",
    "accelerate": "accelerate",
    "bitsandbytes": "bitsandbytes",
    "sentence_transformers": "sentence-transformers",
    "huggingface_hub": "huggingface_hub",
    "safetensors": "safetensors",
    "ir_measures": "ir_measures",
    "pytrec_eval": "pytrec-eval-terrier",
    "numpy": "numpy",
    "scipy": "scipy",
    "bm25s": "bm25s",
}


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for lib, dist in LIBRARIES.items():
        try:
            out[lib] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[lib] = None
    return out


def git_info(start: Path | None = None) -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout holding this package (both None outside git)."""
    cwd = str(start or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return {"commit": commit or None, "dirty": bool(dirty) if commit else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    """A file's sha256, or for a folder the sha256 over its files' relative names and hashes."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(x for x in p.rglob("*") if x.is_file()):
        h.update(f"{f.relative_to(p)}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()
