"""Listwise inference: full ranking in one pass, sliding windows (RankGPT / RankZephyr), FIRST single-token ranking.

Strategies (``ListFormat.strategy``):

- ``full``: one window holding all N candidates (fullrank's full ranking).
- ``sliding``: windows of ``window`` candidates moved from the back of the first-stage list to the front by
  ``stride`` (RankGPT's sliding window: window (N−w, N], then (N−w−s, N−s], ...). The last window always starts at
  position 0 — unlike RankGPT's loop, which skips the top when ``(N − w)`` is not a multiple of the stride — so the
  best candidates bubble up to the top.

Decodings (``ListFormat.decoding``):

- ``generate``: greedy generation of the permutation (``[3] > [1] > …``), parsed with
  :func:`~rerank_align.scoring.listwise_format.parse_permutation` (never fails; repairs are counted).
- ``first``: FIRST (Reddy et al. 2024, arXiv 2406.15657): one forward pass over prompt + the identifiers' shared
  prefix token(s); the candidates are sorted by the logit of their identifier's first distinct token at that
  position. Only those rows of lm_head are computed. No generation, never a repair.

Windows of different queries are batched together (left padding, positions from the attention mask), step by
step, so a batch of queries costs ``#windows`` batched calls instead of ``#queries × #windows``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from rerank_align.errors import ContractError
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.encode import left_pad
from rerank_align.scoring.forward import last_hidden, unwrap
from rerank_align.scoring.listwise_format import capacity, first_tokens, parse_permutation
from rerank_align.scoring.listwise_prompt import ListPromptBuilder


def window_schedule(n: int, window: int, stride: int, strategy: str) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` windows back to front; the last one starts at 0."""
    if n <= 1:
        return []
    if strategy == "full" or n <= window:
        return [(0, n)]
    out = []
    end = n
    while True:
        start = max(0, end - window)
        out.append((start, end))
        if start == 0:
            return out
        end -= stride


@dataclass
class ListRanking:
    order: list[int]  # indices into the input docs, best first
    outputs: int = 0  # windows ranked
    repaired: int = 0  # windows whose output needed repair
    generated_tokens: int = 0
    raw: list[str] = field(default_factory=list)


class ListwiseRanker:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        contract: ScoringContract,
        *,
        device: str | None = None,
        batch_size: int = 8,
        keep_raw: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.contract = contract
        self.fmt = contract.list_format
        self.builder = ListPromptBuilder(tokenizer, contract)
        self.device = device or str(next(model.parameters()).device)
        self.batch_size = batch_size
        self.keep_raw = keep_raw
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stats = {
            "generated_tokens": 0,
            "generate_seconds": 0.0,
            "first_candidates": 0,
            "first_seconds": 0.0,
        }

    # -- one batch of windows --------------------------------------------------------------------------------
    def _left_pad(self, seqs: list[list[int]]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in left_pad(seqs, self.pad_id).items()}

    @torch.no_grad()
    def first_logits(self, windows: Sequence[tuple[Any, Sequence[Any]]]) -> list[torch.Tensor]:
        """FIRST: per window, the logits of each candidate's identifier token at the first answer position."""
        out: list[torch.Tensor] = []
        for i in range(0, len(windows), self.batch_size):
            chunk = windows[i : i + self.batch_size]
            seqs, toks = [], []
            for q, docs in chunk:
                ft = first_tokens(self.tokenizer, self.fmt.identifier, len(docs), self.fmt.first_index)
                p = self.builder.build(q, docs, extra_reserve=0)
                seqs.append(p.input_ids + list(ft.prefix))
                toks.append(ft.token_ids)
            t0 = time.perf_counter()
            batch = self._left_pad(seqs)
            h = last_hidden(self.model, batch)
            lm_head = unwrap(self.model).get_output_embeddings()
            for row, ids in enumerate(toks):
                w = lm_head.weight[list(ids)]
                b = lm_head.bias[list(ids)] if getattr(lm_head, "bias", None) is not None else None
                out.append(F.linear(h[row : row + 1], w, b)[0].float().cpu())
            self.stats["first_seconds"] += time.perf_counter() - t0
            self.stats["first_candidates"] += sum(len(t) for t in toks)
        return out

    @torch.no_grad()
    def generate(self, windows: Sequence[tuple[Any, Sequence[Any]]]) -> list[tuple[str, int]]:
        """Greedy answers (text, number of generated tokens) for each window."""
        res: list[tuple[str, int]] = []
        eos = self.tokenizer.eos_token_id
        for i in range(0, len(windows), self.batch_size):
            chunk = windows[i : i + self.batch_size]
            seqs = [self.builder.build(q, docs).input_ids for q, docs in chunk]
            max_new = max(self.builder.answer_reserve(len(docs)) for _, docs in chunk)
            batch = self._left_pad(seqs)
            t0 = time.perf_counter()
            gen = self.model.generate(
                **batch,
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=self.pad_id,
                eos_token_id=eos,
            )
            self.stats["generate_seconds"] += time.perf_counter() - t0
            new = gen[:, batch["input_ids"].shape[1] :].cpu().tolist()
            for row, (_, docs) in zip(new, chunk):
                row = row[: self.builder.answer_reserve(len(docs))]  # each window's own budget
                if eos is not None and eos in row:
                    row = row[: row.index(eos) + 1]
                toks = [t for t in row if t != eos]
                self.stats["generated_tokens"] += len(row)
                res.append((self.tokenizer.decode(toks, skip_special_tokens=True), len(row)))
        return res

    def rank_windows(
        self, windows: Sequence[tuple[Any, Sequence[Any]]], decoding: str
    ) -> list[tuple[list[int], bool, int, str]]:
        """Each window → (permutation of its positions, repaired?, generated tokens, raw text)."""
        if decoding == "first":
            out = []
            for logits in self.first_logits(windows):
                order = sorted(range(len(logits)), key=lambda k: (-float(logits[k]), k))
                out.append((order, False, 0, ""))
            return out
        if decoding != "generate":
            raise ValueError(f"decoding must be 'generate' or 'first', got {decoding!r}")
        out = []
        for (text, ntok), (_, docs) in zip(self.generate(windows), windows):
            parsed = parse_permutation(text, len(docs), self.fmt.identifier, self.fmt.first_index)
            out.append((parsed.permutation, parsed.repaired, ntok, text))
        return out

    # -- whole lists -----------------------------------------------------------------------------------------
    def rank_lists(
        self,
        queries: Sequence[Any],
        doc_lists: Sequence[Sequence[Any]],
        *,
        strategy: str | None = None,
        decoding: str | None = None,
        window: int | None = None,
        stride: int | None = None,
    ) -> list[ListRanking]:
        """Rank every list; windows of all queries advance in lockstep, batched."""
        f = self.fmt
        strategy = strategy or f.strategy
        decoding = decoding or f.decoding
        window = window or f.window
        stride = stride or f.stride
        cap = capacity(f.identifier)
        results = [ListRanking(list(range(len(d)))) for d in doc_lists]
        if strategy == "full" and cap is not None and any(len(d) > cap for d in doc_lists):
            raise ContractError(
                f"identifier {f.identifier!r} numbers at most {cap} candidates; full ranking got more",
                where="reranker.json:list_format",
                hint="use strategy 'sliding' or identifier '[{i}]'",
            )
        if cap is not None:
            window = min(window, cap)
        schedules = [window_schedule(len(d), window, stride, strategy) for d in doc_lists]
        for step in range(max((len(s) for s in schedules), default=0)):
            jobs = [(qi, *schedules[qi][step]) for qi in range(len(doc_lists)) if step < len(schedules[qi])]
            windows = []
            for qi, a, b in jobs:
                seg = results[qi].order[a:b]
                windows.append((queries[qi], [doc_lists[qi][j] for j in seg]))
            for (qi, a, b), (perm, repaired, ntok, raw) in zip(jobs, self.rank_windows(windows, decoding)):
                r = results[qi]
                seg = r.order[a:b]
                r.order[a:b] = [seg[p] for p in perm]
                r.outputs += 1
                r.repaired += int(repaired)
                r.generated_tokens += ntok
                if self.keep_raw:
                    r.raw.append(raw)
        return results
