"""Atomic file and folder writes, and the checks every ``--out`` goes through before any work starts.

A crash leaves the previous good state, never a half-written file or folder; a target that the tool did not
create is never replaced unless the user asks for it (``--overwrite``); outputs get the permissions the user's
umask gives (``tempfile`` creates 0600 files and 0700 folders, which a serving process under another user, or a
shared team folder, could not read).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rerank_align.errors import RerankAlignError

_UMASK_LOCK = threading.Lock()


def user_cache(env: str, name: str) -> Path:
    """``$env`` when set, else ``$XDG_CACHE_HOME/rerank_align/<name>`` (``~/.cache/rerank_align/<name>``)."""
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "rerank_align" / name


def current_umask() -> int:
    """The process umask (``os.umask`` can only be read by setting it, so set it back at once, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _honour_umask(path: Path, *, folder: bool, like: Path | None = None) -> None:
    """Give a fresh temporary file/folder the mode a plain ``open``/``mkdir`` would have given it.

    A file that replaces an existing one keeps that file's mode (a deliberately private file stays private)."""
    if like is not None and like.exists() and like.is_dir() == folder:
        mode = like.stat().st_mode & 0o7777
    else:
        mode = (0o777 if folder else 0o666) & ~current_umask()
    os.chmod(path, mode)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Write to a temporary file in the same folder, fsync, then ``os.replace`` onto ``path``."""
    path = Path(path)
    if path.is_dir():
        raise RerankAlignError(
            "is a folder, expected a file path", where=str(path), hint="give a file name inside it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _honour_umask(Path(tmp), folder=False, like=path)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a full disk names no file by itself
            e.filename = str(path)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, sort_keys=False)
        fh.write("\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically; returns the count. Nothing appears at ``path`` until all are written."""
    n = 0
    with atomic_write(path) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Remove ``.{name}.<pid>.*.partial`` / ``.old`` siblings of ``path`` left by a killed process (SIGKILL and
    power loss run no cleanup). Only folders this module names, and only when their process is gone. A ``.old``
    folder whose target is missing (the process died between the two renames of a swap) is renamed back."""
    path = Path(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}."
    for p in path.parent.iterdir():
        if not (p.name.startswith(prefix) and p.name.endswith((".partial", ".old")) and p.is_dir()):
            continue
        pid = p.name[len(prefix) :].split(".", 1)[0]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if p.name.endswith(".old") and not path.exists():
            # killed between "target → .old" and ".partial → target": the .old folder is the only copy
            os.replace(p, path)
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path`` (the old one is removed only then).

    The temporary folder carries the process id in its name, so a later call removes it if the process was
    killed before it could clean up (:func:`clean_stale_partials`)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RerankAlignError(
            "exists and is a file, not a folder", where=str(path), hint="remove it or choose another folder"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent))
    try:
        _honour_umask(tmp, folder=True)
        yield tmp
        if path.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".old", dir=path.parent)
            )
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- checks on an output path, before any work -------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_dir(folder: Path, *, where: str) -> None:
    """``folder`` (or the nearest existing folder above it) is a folder this process can create files in."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise RerankAlignError(
            f"{base} is a file, so {folder} cannot be created", where=where, hint="choose another path"
        )
    probe = None
    try:
        fd, probe = tempfile.mkstemp(prefix=".rerank_align_write_test.", dir=base)
        os.close(fd)
    except OSError as e:
        reason = "read-only file system" if e.errno == errno.EROFS else e.strerror or type(e).__name__
        raise RerankAlignError(
            f"cannot write in {base} ({reason})",
            where=where,
            hint="choose a writable output folder or fix its permissions",
        ) from None
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output(
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    kind: str = "dir",
    sources: Iterable[str | os.PathLike] = (),
    ours: Iterable[str] = (),
    replace: bool = True,
    where: str = "--out",
) -> Path:
    """Refuse an output path whose content the tool would destroy; run before any expensive step.

    - ``kind="dir"``: an existing file there is refused; an existing non-empty folder is refused unless
      ``overwrite`` or it holds one of the ``ours`` marker files (a previous output of the same command, which a
      rerun may update: eval results, training checkpoints). ``kind="file"``: an existing file is refused unless
      ``overwrite``; a folder is refused.
    - A target that contains (or is) one of the ``sources`` is refused even with ``overwrite``: replacing it
      would delete the input (``merge outputs/run --out outputs``). Without ``replace`` (files are written into
      the folder, as training does) only the input folder itself is refused.
    - The place must be writable (checked by creating and removing a probe file); with ``replace`` (the folder is
      written as a temporary sibling and renamed over the target) its parent must be writable too.
    Returns the output path, resolved.
    """
    path = Path(out).expanduser()
    resolved = path.resolve()
    for src in sources:
        s = Path(src).expanduser()
        # a replaced folder loses everything inside it; one written into loses the files it shares with the input
        if not s.exists():
            continue
        if kind == "file" and s.resolve() == resolved:
            raise RerankAlignError(
                f"{path} is also an input; writing there would replace it",
                where=where,
                hint="choose another file",
            )
        if kind != "file" and (_within(s.resolve(), resolved) if replace else s.resolve() == resolved):
            raise RerankAlignError(
                f"{path} is or contains the input {src}; writing there would replace the input",
                where=where,
                hint="choose an output folder outside the input",
            )
    if kind == "file":
        if path.is_dir():
            raise RerankAlignError(
                "is a folder, expected a file path", where=f"{where} {path}", hint="give a file name"
            )
        if path.exists() and not overwrite:
            raise RerankAlignError(
                "file already exists",
                where=f"{where} {path}",
                hint="pass --overwrite to replace it, or choose another file",
            )
        check_writable_dir(path.parent, where=f"{where} {path}")
        return resolved
    if path.exists() and not path.is_dir():
        raise RerankAlignError(
            "exists and is a file, not a folder",
            where=f"{where} {path}",
            hint="remove it or choose another folder",
        )
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if names and not overwrite and not any(fnmatch.fnmatch(n, pat) for n in names for pat in ours):
            entries = f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}"
            raise RerankAlignError(
                f"folder already exists and is not empty ({entries})",
                where=f"{where} {path}",
                hint="pass --overwrite to replace it, or choose a new folder",
            )
    check_writable_dir(path, where=f"{where} {path}")  # or, when it does not exist yet, where it will be made
    if replace:  # the new folder is made beside it and renamed over it
        check_writable_dir(path.parent, where=f"{where} {path}")
    return resolved


def check_safetensors(folder: str | os.PathLike) -> None:
    """Every ``*.safetensors`` file in ``folder`` is complete: an 8-byte header length, a JSON header, and exactly
    the bytes its tensors' offsets need. Reads only the headers, so a truncated or corrupt download fails in one
    line before any model loads instead of deep inside the loader."""
    for f in sorted(Path(folder).glob("*.safetensors")):
        size = f.stat().st_size
        problem = None
        with open(f, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                problem = f"{size} bytes, too short for a safetensors file"
            else:
                (n,) = struct.unpack("<Q", head)
                if n > size - 8 or n > 100_000_000:
                    problem = f"header length {n} exceeds the file size {size}"
                else:
                    try:
                        header = json.loads(fh.read(n))
                        end = max(
                            (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
                            default=0,
                        )
                    except (ValueError, KeyError, TypeError, IndexError):
                        problem = "the header is not valid safetensors JSON"
                    else:
                        if 8 + n + end != size:
                            problem = (
                                f"the tensors need {8 + n + end} bytes, the file has {size} (truncated?)"
                            )
        if problem:
            raise RerankAlignError(
                f"corrupt weights file: {problem}", where=str(f), hint="re-save or re-download the model"
            )
