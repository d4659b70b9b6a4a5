"""Checkpoints that are either complete or ignored, and resuming from the last complete one.

The transformers ``Trainer`` writes a checkpoint folder file by file (weights, ``reranker.json``, optimizer,
scheduler, RNG states, ``trainer_state.json``). A process killed in the middle leaves a folder that looks like a
checkpoint but is not one. Policy (docs/reliability.md):

- After the Trainer has written every file of ``checkpoint-N`` (its ``on_save`` event), :class:`CommitCheckpoints`
  writes ``checkpoint-N/checkpoint_complete.json`` atomically (temporary file, fsync, rename). Its presence is
  the commit: a folder without it is an interrupted save.
- ``training.resume_from_checkpoint: true`` (or ``latest``) resumes from the newest *complete* checkpoint in
  ``output_dir`` (an interrupted newer one is skipped and reported); an explicit path must be complete, else one
  line names the key and the newest usable checkpoint.
- ``Reranker.from_pretrained`` needs ``reranker.json``, which the trainer writes right after the weights, so a
  folder whose weights were cut short is never served.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rerank_align.errors import RerankAlignError
from rerank_align.io import write_json

log = logging.getLogger(__name__)

COMMIT_FILE = "checkpoint_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
LATEST = ("true", "latest", "last")


def is_complete(checkpoint: str | os.PathLike) -> bool:
    return (Path(checkpoint) / COMMIT_FILE).is_file()


def checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-N`` folders of ``output_dir``, oldest first (complete or not)."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_complete(output_dir: str | os.PathLike) -> Path | None:
    done = [p for p in checkpoints(output_dir) if is_complete(p)]
    return done[-1] if done else None


def resolve_resume(value: Any, output_dir: str | os.PathLike) -> str | None:
    """``training.resume_from_checkpoint`` → the checkpoint folder to resume from (``None``: start fresh)."""
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("", "false", "no")):
        return None
    where = "training.resume_from_checkpoint"
    if value is True or (isinstance(value, str) and value.lower() in LATEST):
        latest = latest_complete(output_dir)
        if latest is None:
            raise RerankAlignError(
                f"no complete checkpoint in {output_dir}",
                where=where,
                hint="train without resume_from_checkpoint, or point it at a checkpoint folder",
            )
        all_ckpts = checkpoints(output_dir)
        skipped = [p.name for p in all_ckpts[all_ckpts.index(latest) + 1 :]]
        if skipped:
            log.warning("skipping interrupted checkpoint(s) %s; resuming from %s", ", ".join(skipped), latest)
        return str(latest)
    path = Path(str(value))
    if not path.is_dir():
        raise RerankAlignError(
            f"checkpoint {str(path)!r} not found", where=where, hint="a checkpoint-N folder"
        )
    if not is_complete(path):
        latest = latest_complete(path.parent)
        raise RerankAlignError(
            f"{path} is incomplete (no {COMMIT_FILE}: the run was interrupted while saving it)",
            where=where,
            hint=f"resume from {latest}" if latest else "no complete checkpoint next to it; start fresh",
        )
    return str(path)


class CommitCheckpoints(TrainerCallback):
    """Writes the commit file once the Trainer has saved every part of a checkpoint (main process only)."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not args.should_save:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            write_json(folder / COMMIT_FILE, {"global_step": state.global_step})
