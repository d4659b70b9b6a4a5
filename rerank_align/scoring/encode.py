"""Tokenisation under the scoring contract: the only code that turns (query, document) into input ids.

Causal / VLM (template) path — the official constructions' rule: the prompt is rendered with the query and document
text and each of the template's ``segments`` (scoring/templates.py; by default the whole template) is given to the
tokenizer as one string, without special tokens, and the ids are concatenated. So BPE merges across the template /
field boundaries exactly as in Qwen3-Reranker's model-card code (fixed prefix | rendered middle | fixed suffix),
FlagEmbedding's bge-reranker-v2-gemma (bos | "A: " + query | "\n" | "B: " + passage | "\n" | prompt) and a serving
stack that tokenises the rendered prompt (one segment).

Truncation is done on those ids, as the official code does (it cuts the ids of the string that holds the field):
the tokens of a field are the tokens whose character offsets overlap it (a token merged across the boundary, e.g.
``Ġwhat`` of ``": what"``, counts as the field's); a field longer than ``max_query_length`` /
``max_document_length`` tokens keeps that many from the side in ``truncation_side``; a prompt still longer than
``max_length`` loses document tokens, then query tokens; the template's own tokens are never cut, so the prompt always
ends with the template's suffix. Qwen3-Reranker's own truncation (the middle string's ids cut at
``max_length − len(prefix) − len(suffix)``) is this with ``max_document_length ≥ max_length``: its middle ends with
the document. Where this differs from an official construction: ids cut inside a string are not always the ids of the
cut text re-tokenised (serving stacks that cut the text first, e.g. vLLM's ``max_tokens_per_doc``, re-tokenise);
the official truncations continue into the template once the field is used up, this never cuts the template.

Contracts of ``version`` 1 tokenised each literal piece and each field on its own; they keep it (their segments are
those pieces), so a model saved then scores with the ids it was trained on.

Encoder path (``architecture: encoder``): each field is first cut to its max length at a token boundary (via the
tokenizer's offsets), then the tokenizer's own pair encoding builds ``[CLS] q [SEP] d [SEP]`` with
``truncation=pair_truncation`` and ``max_length`` — the same call sentence-transformers' CrossEncoder makes, so
inputs within the limits tokenise identically there.

Fixed segments are tokenised once; segments without the document are cached per text; prompts and encoder pair
encodings are cached per (query, document), so a pair encoded again (the next epoch) is not tokenised again.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rerank_align.errors import ContractError
from rerank_align.scoring.contract import ScoringContract, cut_at_token, format_document, query_text
from rerank_align.scoring.templates import split_template, tokenization_segments

Doc = str | dict


FIELDS = ("query", "document")


def _field_span(offsets: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """Token index range ``[i0, i1)`` of the characters ``[start, end)``: the tokens overlapping them, or for an empty
    field the insertion point after every token that starts before it."""
    if end > start and len(offsets):
        hit = np.flatnonzero((offsets[:, 0] < end) & (offsets[:, 1] > start))
        if hit.size:
            return int(hit[0]), int(hit[-1]) + 1
    i = int(np.count_nonzero(offsets[:, 0] < start)) if len(offsets) else 0
    return i, i


class PairEncoder:
    def __init__(self, tokenizer: Any, contract: ScoringContract, *, cache_size: int = 200_000) -> None:
        self.tokenizer = tokenizer
        self.contract = contract
        self.cache_size = cache_size
        self._cache: dict[tuple, Any] = {}
        if tokenizer.pad_token_id is None:
            raise ValueError("tokenizer has no pad token; set one (e.g. the eos token) before scoring")
        self.pad_id = tokenizer.pad_token_id
        self.is_encoder = contract.architecture == "encoder"
        if not self.is_encoder:
            if not getattr(tokenizer, "is_fast", False):
                raise ContractError(
                    f"{type(tokenizer).__name__} is a slow tokenizer: it has no character offsets",
                    where="tokenizer",
                    hint="load the fast tokenizer (tokenizer.json), as AutoTokenizer does by default",
                )
            template = contract.template or ""
            self._segments = tokenization_segments(template, contract.segments, contract.version)
            self._seg_fields = [
                [f for f in FIELDS if "{" + f + "}" in seg] for seg in self._segments
            ]  # fields inside each segment, in order of appearance
            for fields, seg in zip(self._seg_fields, self._segments):
                fields.sort(key=lambda f, seg=seg: seg.index("{" + f + "}"))
            fixed = [seg for seg, fields in zip(self._segments, self._seg_fields) if not fields]
            ids = tokenizer(fixed, add_special_tokens=False)["input_ids"] if fixed else []
            self._fixed: dict[str, list[int]] = dict(zip(fixed, ids))
            # listwise contracts have no pair template: the encoder is then only used to pad
            self._query_first = template.find("{query}") <= template.find("{document}")

    def _cut_text(self, texts: Sequence[str], max_len: int, side: str) -> list[str]:
        """Cut each text to at most ``max_len`` tokens at a token boundary (encoder path)."""
        out: list[str | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            hit = self._cache.get((t, max_len, "cut-" + side))
            if hit is None:
                todo.setdefault(t, []).append(i)
            else:
                out[i] = hit
        if todo:
            uniq = list(todo)
            enc = self.tokenizer(uniq, add_special_tokens=False, return_offsets_mapping=True)
            if len(self._cache) + len(uniq) > self.cache_size:
                self._cache.clear()
            for t, offsets in zip(uniq, enc["offset_mapping"]):
                cut = cut_at_token(t, offsets, max_len, side)
                self._cache[(t, max_len, "cut-" + side)] = cut
                for i in todo[t]:
                    out[i] = cut
        return out  # type: ignore[return-value]

    def _pair_features(self, q_cut: Sequence[str], d_cut: Sequence[str]) -> list[dict[str, list[int]]]:
        """Encoder pair encoding, cached per (query, document): a pair seen before is not tokenised again; the
        unseen pairs go to the tokenizer in one batched call. Cached features are shared: do not mutate them."""
        c = self.contract
        out: list[dict[str, list[int]] | None] = [None] * len(q_cut)
        todo: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(q_cut, d_cut)):
            hit = self._cache.get(("pair", *key))
            if hit is None:
                todo.setdefault(key, []).append(i)
            else:
                out[i] = hit
        if todo:
            uniq = list(todo)
            enc = self.tokenizer(
                [q for q, _ in uniq],
                [d for _, d in uniq],
                truncation=c.pair_truncation,
                max_length=c.max_length,
            )
            keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
            if len(self._cache) + len(uniq) > self.cache_size:
                self._cache.clear()
            for j, key in enumerate(uniq):
                feat = {k: enc[k][j] for k in keys}
                self._cache[("pair", *key)] = feat
                for i in todo[key]:
                    out[i] = feat
        return out  # type: ignore[return-value]

    # -- pairs -------------------------------------------------------------------------------------------------
    def texts(self, queries: Sequence[str | dict], docs: Sequence[Doc]) -> tuple[list[str], list[str]]:
        fmt = self.contract.document_format
        return [query_text(q) for q in queries], [format_document(d, fmt) for d in docs]

    def encode(self, queries: Sequence[str | dict], docs: Sequence[Doc]) -> list[dict[str, list[int]]]:
        """One feature dict per (query, doc) pair: ``input_ids`` (+ ``token_type_ids`` for encoders)."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} documents")
        c = self.contract
        q_texts, d_texts = self.texts(queries, docs)
        if self.is_encoder:
            q_cut = self._cut_text(q_texts, c.max_query_length, c.truncation_side["query"])
            d_cut = self._cut_text(d_texts, c.max_document_length, c.truncation_side["document"])
            return self._pair_features(q_cut, d_cut)
        return [{"input_ids": ids} for ids in self._prompt_ids(q_texts, d_texts)]

    # -- causal / VLM prompts -----------------------------------------------------------------------------------
    def _room(self, n: int) -> None:
        if len(self._cache) + n > self.cache_size:
            self._cache.clear()

    def _tokenise(self, texts: Sequence[str], cache: Sequence[bool]) -> list[tuple[list[int], np.ndarray]]:
        """(ids, character offsets) of each text, one batched tokenizer call for those not cached."""
        out: list[Any] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            hit = self._cache.get(("seg", t)) if cache[i] else None
            if hit is None:
                todo.setdefault(t, []).append(i)
            else:
                out[i] = hit
        if todo:
            uniq = list(todo)
            enc = self.tokenizer(uniq, add_special_tokens=False, return_offsets_mapping=True)
            self._room(len(uniq))
            for t, ids, offsets in zip(uniq, enc["input_ids"], enc["offset_mapping"]):
                item = (ids, np.asarray(offsets, dtype=np.int64).reshape(-1, 2))
                if cache[todo[t][0]]:
                    self._cache[("seg", t)] = item
                for i in todo[t]:
                    out[i] = item
        return out

    def _prompt_ids(
        self,
        q_texts: Sequence[str],
        d_texts: Sequence[str],
        q_images: Sequence[Sequence[int]] | None = None,
        d_images: Sequence[Sequence[int]] | None = None,
    ) -> list[list[int]]:
        """Prompt ids per pair: render, tokenise each segment whole, cut the fields' tokens to their budgets.

        ``q_images`` / ``d_images``: a VLM field's image block per pair (never cut), placed before or after the
        field's tokens as the contract's ``vision.image_position`` says. Text-only prompts are cached per (query,
        document); the cached lists are shared with the caller, so features must not be mutated."""
        c = self.contract
        images = bool(q_images or d_images)
        out: list[list[int] | None] = [None] * len(q_texts)
        todo: list[int] = []
        for i, (q, d) in enumerate(zip(q_texts, d_texts)):
            hit = None if images else self._cache.get(("prompt", q, d))
            if hit is None:
                todo.append(i)
            else:
                out[i] = hit
        if not todo:
            return out  # type: ignore[return-value]
        # render every segment that holds a field; remember where each field sits (characters)
        rendered: list[str] = []
        cacheable: list[bool] = []
        where: list[list[tuple[int, dict[str, tuple[int, int]]]]] = []  # per pair: (rendered index, spans)
        for i in todo:
            row = []
            for seg, fields in zip(self._segments, self._seg_fields):
                if not fields:
                    continue
                text, spans = "", {}
                for piece in split_template(seg):
                    if piece not in ("{query}", "{document}"):
                        text += piece
                        continue
                    value = q_texts[i] if piece == "{query}" else d_texts[i]
                    spans[piece[1:-1]] = (len(text), len(text) + len(value))
                    text += value
                row.append((len(rendered), spans))
                rendered.append(text)
                cacheable.append("document" not in fields)
            where.append(row)
        tokenised = self._tokenise(rendered, cacheable)
        after = c.vision is not None and c.vision.image_position == "after"
        self._room(len(todo))
        for j, p in enumerate(todo):
            pieces: list[Any] = []  # fixed id lists, or (ids, {field: (i0, i1)}) of a rendered segment
            counts = {"query": 0, "document": 0}
            row_iter = iter(where[j])
            for seg, fields in zip(self._segments, self._seg_fields):
                if not fields:
                    pieces.append(self._fixed[seg])
                    continue
                k, spans = next(row_iter)
                ids, offsets = tokenised[k]
                tok_spans = {}
                prev_end = 0
                for f in fields:  # in order of appearance; a token shared by both fields goes to the first
                    i0, i1 = _field_span(offsets, *spans[f])
                    i0 = max(i0, prev_end)
                    i1 = max(i1, i0)
                    tok_spans[f] = (i0, i1)
                    prev_end = i1
                    counts[f] = i1 - i0
                pieces.append((ids, tok_spans))
            blocks = {
                "query": list(q_images[p]) if q_images else [],
                "document": list(d_images[p]) if d_images else [],
            }
            total = sum(len(x) if isinstance(x, list) else len(x[0]) for x in pieces)
            total += len(blocks["query"]) + len(blocks["document"])
            keep = {
                "query": min(counts["query"], c.max_query_length),
                "document": min(counts["document"], c.max_document_length),
            }
            over = total - (counts["query"] - keep["query"]) - (counts["document"] - keep["document"])
            over -= c.max_length
            for f in ("document", "query"):  # the document gives way first; the template never does
                if over > 0:
                    cut = min(over, keep[f])
                    keep[f] -= cut
                    over -= cut
            ids_out: list[int] = []
            for x in pieces:
                if isinstance(x, list):
                    ids_out.extend(x)
                    continue
                ids, tok_spans = x
                pos = 0
                for f, (i0, i1) in tok_spans.items():
                    ids_out.extend(ids[pos:i0])
                    span = ids[i0:i1]
                    n = keep[f]
                    kept = span[:n] if c.truncation_side[f] == "right" else span[len(span) - n :]
                    ids_out.extend(kept + blocks[f] if after else blocks[f] + kept)
                    pos = i1
                ids_out.extend(ids[pos:])
            out[p] = ids_out
            if not images:
                self._cache[("prompt", q_texts[p], d_texts[p])] = ids_out
        return out  # type: ignore[return-value]

    def collate(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Pad to the longest feature on the contract's padding side; positions come from the mask at forward.

        Vectorised: one flat id array scattered through the padding mask (row-major order keeps each row's
        tokens in order on either side), so no Python work per token."""
        lens = np.fromiter((len(f["input_ids"]) for f in features), dtype=np.int64, count=len(features))
        n = int(lens.max())
        cols = np.arange(n)[None, :]
        valid = cols >= (n - lens)[:, None] if self.contract.padding_side == "left" else cols < lens[:, None]
        out: dict[str, torch.Tensor] = {}
        for key, pad in (("input_ids", self.pad_id), ("token_type_ids", 0)):
            if key not in features[0]:
                continue
            flat = np.fromiter(
                itertools.chain.from_iterable(f[key] for f in features), dtype=np.int64, count=int(lens.sum())
            )
            rows = np.full((len(features), n), pad, dtype=np.int64)
            rows[valid] = flat
            out[key] = torch.from_numpy(rows)
        out["attention_mask"] = torch.from_numpy(valid.astype(np.int64))
        return out


def left_pad(
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    **columns: tuple[Sequence[Sequence[float]], float, torch.dtype],
) -> dict[str, torch.Tensor]:
    """Left-pad token id lists to the longest: ``input_ids`` and ``attention_mask`` ``(B, T)`` (int64), plus each
    per-token column given as ``name=(values per row, fill value, dtype)``, padded the same way.

    Left padding puts every sequence's end at the last position, where generation and completion scoring read;
    positions come from the attention mask (scoring/forward.py), so the padding changes no score.

    >>> left_pad([[5, 6], [7]], 0, labels=([[1, 2], [3]], -100, torch.long))["labels"].tolist()
    [[1, 2], [-100, 3]]
    """
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    padded = {k: torch.full((len(seqs), t), fill, dtype=dtype) for k, (_, fill, dtype) in columns.items()}
    for i, s in enumerate(seqs):
        start = t - len(s)
        ids[i, start:] = torch.tensor(s, dtype=torch.long)
        mask[i, start:] = 1
        for k, (values, _, dtype) in columns.items():
            padded[k][i, start:] = torch.tensor(values[i], dtype=dtype)
    return {"input_ids": ids, "attention_mask": mask, **padded}
