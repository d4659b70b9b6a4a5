"""One error type for everything a user can get wrong.

Every message is a single line that names the place (``file:line`` or a recipe key path) and says how to fix it.
The CLI prints ``str(error)`` and exits with status 2, never a stack trace.
"""

from __future__ import annotations


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


class NotBuiltError(RerankAlignError):
    """A CLI subcommand whose feature does not exist yet."""


def where(path: object, line: int | None = None) -> str:
    """``file:line`` for messages (line is 1-based)."""
    return f"{path}:{line}" if line is not None else str(path)
