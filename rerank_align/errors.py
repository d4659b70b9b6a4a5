"""One error type for everything a user can get wrong.

Every message is a single line that names the place (``file:line`` or a recipe key path) and says how to fix it.
The CLI prints ``error: str(error)`` and exits with status 2, never a stack trace (``--debug`` adds it). Operating
system errors (a full disk, a read-only folder, a file where a folder was expected) and unreadable weights are
user errors too (:func:`describe`); anything else is a bug: one line, exit 1.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable


class RerankAlignError(Exception):
    """Base class: a problem the user can fix. ``str()`` is one line: ``<where>: <what> (<hint>)``."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.what = " ".join(str(what).split())
        self.where = where
        self.hint = " ".join(hint.split()) if hint else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        msg = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            msg += f" ({self.hint})"
        return msg


class InputError(RerankAlignError):
    """Malformed data file (JSONL records, BEIR folders, qrels, run files)."""


class RecipeError(RerankAlignError):
    """Invalid recipe: unknown key, bad enum value, out-of-range number or contradictory settings."""


class ContractError(RerankAlignError):
    """A reranker.json that does not match its model or tokenizer."""


def where(path: object, line: int | None = None) -> str:
    """``file:line`` for messages (line is 1-based)."""
    return f"{path}:{line}" if line is not None else str(path)


_OS_HINTS = {
    "ENOSPC": "the disk is full; free space and rerun (finished outputs are only ever replaced whole)",
    "EDQUOT": "disk quota exceeded; free space and rerun",
    "EACCES": "check the permissions, or choose another path",
    "EPERM": "check the permissions, or choose another path",
    "EROFS": "the file system is read-only; choose another path",
    "EISDIR": "this is a folder; a file was expected",
    "ENOTDIR": "a part of this path is a file, not a folder",
    "ENOENT": "check the path",
    "EEXIST": "remove it or choose another path",
}


def _weights_error(e: BaseException) -> bool:
    """safetensors / torch failures to read a weights file (truncated, corrupt header, not a weights file)."""
    mod = type(e).__module__ or ""
    text = str(e).lower()
    return mod.startswith("safetensors") or (
        isinstance(e, (OSError, RuntimeError, ValueError))
        and any(
            k in text
            for k in ("safetensors", "deserializing header", "invalid load key", "pytorchstreamreader")
        )
    )


def user_error(e: BaseException) -> bool:
    """A problem with the user's input or machine (exit 2), not a bug in rerank_align (exit 1)."""
    return isinstance(e, (RerankAlignError, OSError, UnicodeDecodeError)) or _weights_error(e)


def describe(e: BaseException) -> str:
    """One line for any exception: ``where: what (hint)``."""
    if isinstance(e, RerankAlignError):
        return str(e)
    if _weights_error(e):
        what = " ".join(str(e).split()) or type(e).__name__
        return f"cannot read the model weights: {what} (the weights file is corrupt or truncated; re-save or re-download it)"
    if isinstance(e, UnicodeDecodeError):
        return f"a file is not valid UTF-8 (byte {e.start}: {e.reason}) (re-encode it as UTF-8; --debug names the file)"
    if isinstance(e, OSError):
        code = errno.errorcode.get(e.errno or -1, "")
        place = e.filename if e.filename is not None else None
        what = e.strerror or " ".join(str(e).split()) or type(e).__name__
        hint = _OS_HINTS.get(code)
        msg = f"{place}: {what}" if place else what
        return f"{msg} ({hint})" if hint else msg
    what = " ".join(str(e).split())
    return f"internal error: {type(e).__name__}: {what} (a bug in rerank_align: rerun with --debug and report it)"


def report_error(e: BaseException, *, debug: bool = False) -> int:
    """Print ``error: <where>: <what> (<fix>)`` (and the traceback with ``--debug``); the exit status: 2 for a
    problem with the input or the machine, 1 for a bug."""
    if debug:
        traceback.print_exception(e)
    print(f"error: {describe(e)}", file=sys.stderr)
    return 2 if user_error(e) else 1


def debug_flag(argv: list[str]) -> tuple[bool, list[str]]:
    """``--debug`` may stand anywhere on a command line (also ``RERANK_ALIGN_DEBUG=1``): (debug?, argv without it)."""
    debug = "--debug" in argv or (os.environ.get("RERANK_ALIGN_DEBUG") or "") not in ("", "0")
    return debug, [a for a in argv if a != "--debug"]


def guarded(call: Callable[[], int | None], *, debug: bool) -> int:
    """Run one command: every error becomes one line and an exit status (2 user error, 1 bug, 130 interrupt).

    With ``debug`` the command (and subcommands that report their own errors) sees ``RERANK_ALIGN_DEBUG=1``
    for its duration only: ``main`` may run many times in one process."""
    env_debug = os.environ.get("RERANK_ALIGN_DEBUG")
    if debug:
        os.environ["RERANK_ALIGN_DEBUG"] = "1"
    try:
        return int(call() or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 (the one place every error becomes one line)
        return report_error(e, debug=debug)
    finally:
        sys.stdout.flush()
        if env_debug is None:
            os.environ.pop("RERANK_ALIGN_DEBUG", None)


def run_main(main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """``python -m rerank_align.<command>``: the command's ``main`` with the CLI's ``--debug`` and error handling."""
    debug, argv = debug_flag(sys.argv[1:] if argv is None else list(argv))
    return guarded(lambda: main(argv), debug=debug)
