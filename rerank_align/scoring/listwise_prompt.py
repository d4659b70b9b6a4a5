"""Listwise prompts under the scoring contract: the only code that turns (query, candidate list) into input ids.

The contract's ``ListFormat`` holds every string literally: ``prompt_template`` (placeholders ``{n}``, ``{query}``,
``{passages}``), ``passage_template`` (``{identifier}``, ``{document}``), ``identifier`` and ``separator``.

The ids are those of the whole rendered string, tokenised once (no special tokens added), as a serving engine or
rank_llm tokenises the chat-rendered prompt. Tokenising the pieces apart and concatenating (as ``PairEncoder`` does
for pair templates, whose fields sit between newlines) would differ under byte-level BPE wherever a field follows a
space: RankGPT's prompt has ``query: {query}`` and ``[1] {document}``, and in the whole string the space belongs to
the field's first word. Truncation is counted on each field tokenised alone and applied in text space, at a token
boundary of that field; the whole string is then tokenised and, should the joins add tokens past the budget, the
passages are cut again by the excess.

Truncation rule (documented in docs/listwise.md):

1. the query is cut to ``max_query_length`` tokens and every document to ``max_document_length`` tokens, from the
   sides in ``truncation_side``;
2. the prompt must leave room for the answer: ``prompt ≤ max_length − answer_reserve(n)``, where the reserve is
   the token count of the longest answer for ``n`` candidates (``[1] > [2] > … > [n]`` + eos);
3. if the prompt is still too long, the passages are cut to a common cap L, the largest for which
   ``fixed + Σ_i min(len_i, L)`` fits (water-filling: short passages keep every token, long ones are cut evenly,
   from the document truncation side), never below ``min_passage_tokens`` (4);
4. if it still does not fit, the query is cut further; if even that fails, a ``ContractError`` says which
   ``max_length`` would be needed. Template literals and identifiers are never cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rerank_align.errors import ContractError
from rerank_align.scoring.contract import (
    ListFormat,
    ScoringContract,
    cut_at_token,
    format_document,
    query_text,
)
from rerank_align.scoring.listwise_format import answer_with_spans, render_identifier
from rerank_align.scoring.templates import split_template

MIN_PASSAGE_TOKENS = 4


@dataclass
class ListPrompt:
    input_ids: list[int]
    n: int
    passage_tokens: list[int]  # tokens kept per passage
    truncated: bool


class ListPromptBuilder:
    def __init__(self, tokenizer: Any, contract: ScoringContract) -> None:
        if contract.kind != "listwise" or contract.list_format is None:
            raise ContractError(
                "a listwise prompt needs kind 'listwise' and a list_format", where="reranker.json"
            )
        self.tokenizer = tokenizer
        self.contract = contract
        self.fmt: ListFormat = contract.list_format
        self._lit: dict[str, list[int]] = {}
        self._reserve: dict[int, int] = {}
        for key, names in (
            ("prompt_template", ("n", "query", "passages")),
            ("passage_template", ("identifier", "document")),
        ):
            t = getattr(self.fmt, key)
            if "{" + names[-1] + "}" not in t:
                raise ContractError(f"{key} lacks {{{names[-1]}}}", where=f"reranker.json:list_format.{key}")

    def literal(self, text: str) -> list[int]:
        ids = self._lit.get(text)
        if ids is None:
            ids = self.tokenizer.encode(text, add_special_tokens=False) if text else []
            self._lit[text] = ids
        return ids

    def answer_reserve(self, n: int) -> int:
        """Tokens of the longest answer for ``n`` candidates, plus eos."""
        if n not in self._reserve:
            text, _ = answer_with_spans(
                list(range(n)), self.fmt.identifier, self.fmt.separator, self.fmt.first_index
            )
            self._reserve[n] = len(self.tokenizer.encode(text, add_special_tokens=False)) + 1
        return self._reserve[n]

    def build(self, query: str | dict, docs: Sequence[Any], *, extra_reserve: int = 0) -> ListPrompt:
        """Prompt ids for ranking ``docs`` (in this order) for ``query``, leaving room for the answer."""
        c, f = self.contract, self.fmt
        n = len(docs)
        texts = [query_text(query), *(format_document(d, c.document_format) for d in docs)]
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [list(o) for o in enc["offset_mapping"]]
        q_len = min(len(offsets[0]), c.max_query_length)
        lens = [min(len(o), c.max_document_length) for o in offsets[1:]]
        q_side, d_side = c.truncation_side["query"], c.truncation_side["document"]

        outer = split_template(f.prompt_template.replace("{n}", str(n)), ("query", "passages"))
        n_query = outer.count("{query}")
        fixed = sum(len(self.literal(p)) for p in outer if p not in ("{query}", "{passages}"))
        p_pieces = []
        for k in range(n):
            ident = render_identifier(f.identifier, k, f.first_index)
            pieces = split_template(f.passage_template.replace("{identifier}", ident), ("document",))
            p_pieces.append(pieces)
            fixed += sum(len(self.literal(p)) for p in pieces if p != "{document}")
        budget = c.max_length - self.answer_reserve(n) - extra_reserve
        excess = 0  # tokens the joins added past the budget in the previous attempt
        for _ in range(8):
            q_keep, d_keep = self._fit(fixed, n_query, q_len, lens, budget - excess, n)
            query_cut = cut_at_token(texts[0], offsets[0], q_keep, q_side)
            passages = "".join(
                "".join(cut_at_token(t, o, keep, d_side) if pp == "{document}" else pp for pp in pieces)
                for pieces, t, o, keep in zip(p_pieces, texts[1:], offsets[1:], d_keep)
            )
            text = "".join(
                query_cut if p == "{query}" else passages if p == "{passages}" else p for p in outer
            )
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) <= budget:
                # truncated: the budget cut a field below its per-field limit
                return ListPrompt(list(ids), n, d_keep, q_keep < q_len or d_keep != lens)
            excess += len(ids) - budget
        raise ContractError(
            f"{n} passages do not fit in max_length={c.max_length}: the joined prompt stays {len(ids) - budget} "
            "tokens over",
            where="reranker.json:max_length",
            hint=f"raise max_length to at least {len(ids) + self.answer_reserve(n) + extra_reserve}",
        )

    def _fit(
        self, fixed: int, n_query: int, q_len: int, lens: list[int], budget: int, n: int
    ) -> tuple[int, list[int]]:
        """Tokens kept of the query and of each passage so that ``fixed`` + the fields fit ``budget`` (the rule
        of the module docstring, steps 3 and 4)."""
        c = self.contract
        if fixed + n_query * q_len + sum(lens) <= budget:
            return q_len, list(lens)
        cap = self._water_fill(lens, budget - fixed - n_query * q_len)
        if cap < MIN_PASSAGE_TOKENS and any(x > cap for x in lens):
            cap = min(MIN_PASSAGE_TOKENS, max(lens))
            over = fixed + n_query * q_len + sum(min(x, cap) for x in lens) - budget
            if over > 0 and n_query:
                q_len = max(0, q_len - -(-over // n_query))
        d_keep = [min(x, cap) for x in lens]
        total = fixed + n_query * q_len + sum(d_keep)
        if total > budget:
            need = total + c.max_length - budget
            raise ContractError(
                f"{n} passages do not fit in max_length={c.max_length} even cut to {cap} tokens each",
                where="reranker.json:max_length",
                hint=f"raise max_length to at least {need}, or rank fewer passages per window",
            )
        return q_len, d_keep

    @staticmethod
    def _water_fill(lens: list[int], room: int) -> int:
        """Largest L with Σ min(len_i, L) ≤ room (0 if none)."""
        if room <= 0:
            return 0
        lo, hi = 0, max(lens, default=0)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if sum(min(x, mid) for x in lens) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo

    # -- training targets ------------------------------------------------------------------------------------
    def target(
        self, ranking: list[int]
    ) -> tuple[list[int], list[tuple[int, int]], str, list[tuple[int, int]]]:
        """Answer ids (+ eos), their character offsets (eos: (0, 0)), the text and the identifier spans."""
        f = self.fmt
        text, spans = answer_with_spans(ranking, f.identifier, f.separator, f.first_index)
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        offs = [tuple(o) for o in enc["offset_mapping"]]
        eos = self.tokenizer.eos_token_id
        if eos is not None:
            ids.append(eos)
            offs.append((0, 0))
        return ids, offs, text, spans
