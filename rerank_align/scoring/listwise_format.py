"""Identifiers, answer strings and permutation parsing for listwise rerankers.

The identifier format comes from the scoring contract's ``ListFormat.identifier``: ``"[{i}]"`` numbers candidates
from ``first_index`` (``[1]``, ``[2]``, ...), ``"[{a}]"`` letters them (``[A]`` ... ``[Z]``, at most 26 — FIRST's
choice for tokenizers that split numbers into digits). The answer is the identifiers joined by ``separator``:
``"[3] > [1] > [2]"``.

Parsing (:func:`parse_permutation`) never raises: identifiers are read left to right, unknown ones (out of range)
and repeats are dropped, and every candidate never mentioned is appended in input (first-stage) order. If the text
holds no identifier of the contract's format at all, bare numbers / letters are tried as a last resort (RankGPT's
lenient reading). The result is always a permutation of ``range(n)`` plus a ``repaired`` flag that is True whenever
the output was not exactly a permutation in the contract's format.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rerank_align.errors import ContractError

LETTERS = string.ascii_uppercase


def _kind(identifier: str) -> str:
    has_i, has_a = "{i}" in identifier, "{a}" in identifier
    if has_i == has_a:
        raise ContractError(
            f"identifier format {identifier!r} must contain exactly one of {{i}} (numbers) or {{a}} (letters)",
            where="reranker.json:list_format.identifier",
        )
    return "i" if has_i else "a"


def capacity(identifier: str) -> int | None:
    """How many candidates one prompt can number (26 for letters, unbounded for numbers)."""
    return len(LETTERS) if _kind(identifier) == "a" else None


def render_identifier(identifier: str, index: int, first_index: int = 1) -> str:
    """The identifier of the 0-based candidate ``index``."""
    if _kind(identifier) == "a":
        if index >= len(LETTERS):
            raise ContractError(
                f"letter identifiers number at most {len(LETTERS)} candidates, got index {index}",
                where="reranker.json:list_format.identifier",
                hint="use a window of at most 26, or identifier '[{i}]'",
            )
        return identifier.replace("{a}", LETTERS[index])
    return identifier.replace("{i}", str(index + first_index))


@lru_cache(maxsize=64)
def identifier_regex(identifier: str) -> re.Pattern:
    """A regex matching any identifier of the format, with the number / letter as group 1."""
    kind = _kind(identifier)
    ph = "{" + kind + "}"
    head, tail = identifier.split(ph, 1)
    core = r"\s*(\d+)\s*" if kind == "i" else r"\s*([A-Za-z])\s*"
    return re.compile(re.escape(head) + core + re.escape(tail))


def _index_of(token: str, kind: str, first_index: int) -> int | None:
    if kind == "i":
        try:
            return int(token) - first_index
        except ValueError:
            return None
    return LETTERS.index(token.upper()) if len(token) == 1 and token.upper() in LETTERS else None


def answer_text(ranking: list[int], identifier: str, separator: str, first_index: int = 1) -> str:
    """``"[3] > [1] > [2]"`` for the 0-based ranking ``[2, 0, 1]``."""
    return separator.join(render_identifier(identifier, r, first_index) for r in ranking)


def answer_with_spans(
    ranking: list[int], identifier: str, separator: str, first_index: int = 1
) -> tuple[str, list[tuple[int, int]]]:
    """The answer text and the character span of each identifier, in rank order (for the token weights)."""
    parts, spans, pos = [], [], 0
    for k, r in enumerate(ranking):
        if k:
            parts.append(separator)
            pos += len(separator)
        ident = render_identifier(identifier, r, first_index)
        spans.append((pos, pos + len(ident)))
        parts.append(ident)
        pos += len(ident)
    return "".join(parts), spans


@dataclass
class Parsed:
    permutation: list[int]
    repaired: bool
    dropped: int = 0  # unknown or repeated identifiers
    appended: int = 0  # candidates never mentioned, appended in input order


def parse_permutation(text: Any, n: int, identifier: str = "[{i}]", first_index: int = 1) -> Parsed:
    """Read a permutation of ``range(n)`` from a model's output; never raises (see the module docstring)."""
    kind = _kind(identifier)
    text = text if isinstance(text, str) else ""
    tokens = [m.group(1) for m in identifier_regex(identifier).finditer(text)]
    lenient = False
    if not tokens:
        lenient = True
        tokens = re.findall(r"\d+", text) if kind == "i" else re.findall(r"\b([A-Za-z])\b", text)
    seen: set[int] = set()
    perm: list[int] = []
    dropped = 0
    for t in tokens:
        idx = _index_of(t, kind, first_index)
        if idx is None or not 0 <= idx < n or idx in seen:
            dropped += 1
            continue
        seen.add(idx)
        perm.append(idx)
    missing = [i for i in range(n) if i not in seen]
    perm.extend(missing)
    return Parsed(perm, bool(lenient or dropped or missing), dropped, len(missing))


# ------------------------------------------------------------------------------------ FIRST identifier tokens


@dataclass(frozen=True)
class FirstTokens:
    """What FIRST reads: after the shared ``prefix`` token ids (e.g. ``[`` ), the distinct next token of each
    identifier. ``token_ids[k]`` belongs to the 0-based candidate k."""

    prefix: tuple[int, ...]
    token_ids: tuple[int, ...]


def first_tokens(tokenizer: Any, identifier: str, n: int, first_index: int = 1) -> FirstTokens:
    """The FIRST identifier tokens for a window of ``n`` candidates, or a clear refusal.

    Each identifier is tokenised on its own (as it starts the answer); the longest token prefix shared by all ``n``
    identifiers is forced after the prompt, and the token right after it must differ between candidates — it is
    the one whose logit ranks the candidate. A tokenizer that splits ``[12]`` into ``[``, ``1``, ``2``, ``]`` cannot
    tell ``[1]`` from ``[12]`` by one token: refused, with the fix (letters, or a window of at most 9).
    """
    ids = [
        tuple(tokenizer.encode(render_identifier(identifier, k, first_index), add_special_tokens=False))
        for k in range(n)
    ]
    if n == 1:
        return FirstTokens(ids[0][:-1], (ids[0][-1],))
    p = 0
    while all(len(x) > p for x in ids) and len({x[p] for x in ids}) == 1:
        p += 1
    nxt = [x[p] if len(x) > p else None for x in ids]
    clashes: dict[int | None, list[int]] = {}
    for k, t in enumerate(nxt):
        clashes.setdefault(t, []).append(k)
    bad = [ks for t, ks in clashes.items() if t is None or len(ks) > 1]
    if bad:
        ks = bad[0][:3]
        names = ", ".join(render_identifier(identifier, k, first_index) for k in ks)
        raise ContractError(
            f"FIRST needs one distinct first token per identifier, but {names} start with the same token(s) "
            f"{list(ids[ks[0]][: p + 1])} for this tokenizer ({n} candidates)",
            where="reranker.json:list_format",
            hint="use identifier '[{a}]' (letters), or a window whose identifiers tokenise distinctly",
        )
    return FirstTokens(tuple(ids[0][:p]), tuple(nxt))  # type: ignore[arg-type]
