"""``rerank-align push <dir> --repo-id owner/name [--private] [--revision B] [--message M] [--dry-run]``.

``huggingface_hub``'s ``create_repo`` (exist_ok) then ``upload_folder``. The token comes from the usual places
(``HF_TOKEN``, then the token file written by ``hf auth login``) through ``huggingface_hub.get_token()``; it is
passed to the client and never printed, logged or written. ``--endpoint`` (or ``HF_ENDPOINT``) selects the hub.
``--dry-run`` lists what would be uploaded and contacts nothing.

Only folders written by ``rerank_align`` (with ``reranker.json`` and a ``README.md`` card) are pushed; hidden files
(``.*``, e.g. a leftover partial folder's marker) are never uploaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rerank_align.errors import RerankAlignError

IGNORE = [".*", "**/.*", "__pycache__/**", "**/__pycache__/**"]


def files_to_upload(directory: Path) -> list[tuple[str, int]]:
    out = []
    for f in sorted(directory.rglob("*")):
        rel = f.relative_to(directory)
        if not f.is_file() or any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        out.append((rel.as_posix(), f.stat().st_size))
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
    private: bool = False,
    revision: str | None = None,
    message: str | None = None,
    endpoint: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    directory = Path(directory)
    check_folder(directory)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise RerankAlignError(f"bad --repo-id {repo_id!r}", hint="owner/name")
    files = files_to_upload(directory)
    message = message or f"Upload {directory.name} with rerank_align"
    plan = {"repo_id": repo_id, "revision": revision or "main", "private": private, "files": files}
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
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(directory),
            revision=revision,
            commit_message=message,
            ignore_patterns=IGNORE,
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
    p.add_argument("--private", action="store_true")
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
        private=args.private,
        revision=args.revision,
        message=args.message,
        endpoint=args.endpoint,
        dry_run=args.dry_run,
    )
    head = "would upload" if args.dry_run else "uploaded"
    vis = "private" if plan["private"] else "public"
    print(f"{head} {len(plan['files'])} files to {plan['repo_id']}@{plan['revision']} ({vis}):")
    for name, size in plan["files"]:
        print(f"  {name}  {size} bytes")
    if not args.dry_run:
        print(f"commit {plan.get('commit')}: {plan.get('commit_url') or plan.get('url')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
