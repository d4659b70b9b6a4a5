"""``rerank-align push <dir> --repo-id owner/name [--public] [--revision B] [--message M] [--dry-run]``.

``huggingface_hub``'s ``create_repo`` (exist_ok; **private** unless ``--public``) then one ``create_commit`` with
exactly the files listed by ``--dry-run``. The token comes from the usual places (``HF_TOKEN``, then the token file
written by ``hf auth login``) through ``huggingface_hub.get_token()``; it is passed to the client and never printed,
logged or written. ``--endpoint`` (or ``HF_ENDPOINT``) selects the hub. ``--dry-run`` lists what would be uploaded
(and what is left out, with the reason) and contacts nothing.

Only folders written by ``rerank_align`` (with ``reranker.json`` and a ``README.md`` card) are pushed, and only the
final model: training state (``checkpoint-*`` folders, optimizer / scheduler / scaler / RNG states,
``trainer_state.json``, ``training_args.bin``, DeepSpeed ``global_step*`` shards, TensorBoard ``runs/``) and pickle
files (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``, ``*.pickle``, ``*.ckpt``: loading them runs code) are left out
unless ``--include-training-state``; hidden files (``.*``) and ``__pycache__`` never go.
"""

from __future__ import annotations

import argparse
import os
import sys
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from rerank_align.errors import RerankAlignError

TRAINING_DIRS = ("checkpoint-*", "global_step*", "runs")
TRAINING_FILES = (
    "optimizer.*",
    "scheduler.*",
    "scaler.*",
    "rng_state*",
    "trainer_state.json",
    "training_args.bin",
    "latest",
    "zero_to_fp32.py",
)
PICKLES = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def left_out_reason(rel: Path, include_training_state: bool = False) -> str | None:
    """Why ``rel`` (a path inside the folder) is not uploaded, or None when it is."""
    if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
        return "hidden"
    if include_training_state:
        return None
    folder = next((p for p in rel.parts[:-1] if any(fnmatch(p, pat) for pat in TRAINING_DIRS)), None)
    if folder is not None:
        return f"training state: {folder}/"
    if any(fnmatch(rel.name, pat) for pat in TRAINING_FILES):
        return "training state"
    if any(fnmatch(rel.name, pat) for pat in PICKLES):
        return "pickle (loading it runs code)"
    return None


def files_to_upload(directory: Path, include_training_state: bool = False) -> list[tuple[str, int]]:
    return [(rel, size) for rel, size, why in scan(directory, include_training_state) if why is None]


def scan(directory: Path, include_training_state: bool = False) -> list[tuple[str, int, str | None]]:
    """Every file of ``directory``: (relative path, size, reason it is left out or None)."""
    out = []
    for f in sorted(directory.rglob("*")):
        if f.is_file():
            rel = f.relative_to(directory)
            out.append((rel.as_posix(), f.stat().st_size, left_out_reason(rel, include_training_state)))
    return out


def check_folder(directory: Path) -> None:
    if not directory.is_dir():
        raise RerankAlignError("no such folder", where=str(directory))
    if directory.name.endswith(".partial") or directory.name.startswith("."):
        raise RerankAlignError("this is an unfinished temporary folder", where=str(directory))
    if not (directory / "reranker.json").is_file():
        raise RerankAlignError(
            "no reranker.json: not a folder written by rerank_align",
            where=str(directory),
            hint="push merged / exported model folders (their card and contract travel with them)",
        )
    if not (directory / "README.md").is_file():
        raise RerankAlignError(
            "no README.md model card",
            where=str(directory),
            hint="write one: python -m rerank_align.export.card DIR",
        )


def push(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    message: str | None = None,
    endpoint: str | None = None,
    dry_run: bool = False,
    include_training_state: bool = False,
) -> dict[str, Any]:
    """Upload the final model of ``directory`` (see the module docstring); ``private`` None means private."""
    directory = Path(directory)
    check_folder(directory)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise RerankAlignError(f"bad --repo-id {repo_id!r}", hint="owner/name")
    private = True if private is None else private
    listing = scan(directory, include_training_state)
    files = [(rel, size) for rel, size, why in listing if why is None]
    if not any(rel.endswith(".safetensors") for rel, _ in files):
        raise RerankAlignError(
            "no safetensors weights to upload",
            where=str(directory),
            hint="save the model with safe_serialization (pickled weights are left out)",
        )
    message = message or f"Upload {directory.name} with rerank_align"
    plan = {
        "repo_id": repo_id,
        "revision": revision or "main",
        "private": private,
        "files": files,
        "left_out": [(rel, why) for rel, _, why in listing if why is not None and why != "hidden"],
    }
    if dry_run:
        return plan
    from huggingface_hub import HfApi, constants, get_token

    if constants.is_offline_mode():
        raise RerankAlignError(
            "offline mode is enabled (HF_HUB_OFFLINE=1)",
            hint="unset HF_HUB_OFFLINE to push, or use --dry-run",
        )
    token = get_token()
    if not token:
        raise RerankAlignError(
            "no Hugging Face token", hint="set HF_TOKEN or run `hf auth login` (the token is never printed)"
        )
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        from huggingface_hub import CommitOperationAdd

        info = api.create_commit(
            repo_id=repo_id,
            operations=[
                CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(directory / rel)) for rel, _ in files
            ],
            commit_message=message,
            revision=revision,
            repo_type="model",
        )
    except Exception as e:  # noqa: BLE001 - one line for the user, never the token
        text = " ".join(str(e).replace(token, "***").split())
        raise RerankAlignError(f"push failed: {type(e).__name__}: {text[:300]}") from None
    plan["url"] = str(url)
    plan["commit"] = getattr(info, "oid", None)
    plan["commit_url"] = getattr(info, "commit_url", None)
    return plan


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="rerank-align push", description="Push a model folder to the Hugging Face hub."
    )
    p.add_argument("directory")
    p.add_argument("--repo-id", required=True, help="owner/name")
    vis = p.add_mutually_exclusive_group()
    vis.add_argument("--private", action="store_true", help="a private repository (the default)")
    vis.add_argument("--public", action="store_true", help="a public repository")
    p.add_argument(
        "--include-training-state",
        action="store_true",
        help="also upload checkpoint-* folders, optimizer/scheduler/RNG states, training_args.bin and pickles",
    )
    p.add_argument("--revision", help="branch to push to (created if missing); default main")
    p.add_argument("--message", help="commit message")
    p.add_argument("--endpoint", help="hub URL (default: HF_ENDPOINT or huggingface.co)")
    p.add_argument(
        "--dry-run", action="store_true", help="list the files that would be uploaded; contact nothing"
    )
    args = p.parse_args(argv)
    plan = push(
        args.directory,
        args.repo_id,
        private=not args.public,
        revision=args.revision,
        message=args.message,
        endpoint=args.endpoint,
        dry_run=args.dry_run,
        include_training_state=args.include_training_state,
    )
    head = "would upload" if args.dry_run else "uploaded"
    vis = "private" if plan["private"] else "public"
    print(f"{head} {len(plan['files'])} files to {plan['repo_id']}@{plan['revision']} ({vis}):")
    for name, size in plan["files"]:
        print(f"  {name}  {size} bytes")
    if plan["left_out"]:
        print(f"left out {len(plan['left_out'])} files (--include-training-state to upload them):")
        for name, why in plan["left_out"]:
            print(f"  {name}  ({why})")
    if not args.dry_run:
        print(f"commit {plan.get('commit')}: {plan.get('commit_url') or plan.get('url')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
