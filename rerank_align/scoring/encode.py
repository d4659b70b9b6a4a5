"""Tokenisation under the scoring contract: the only code that turns (query, document) into input ids.

Causal / VLM (template) path: the resolved template is split into literal pieces and the two fields; each piece
and each field is tokenised on its own without special tokens and the ids are concatenated. So per-field
truncation is exact (``max_query_length`` / ``max_document_length`` tokens, from the side in
``truncation_side``), and the prompt always ends with the template's suffix — the position whose next-token logits
are the answer. If the assembled prompt is still longer than ``max_length``, the document is cut further, then the
query; the template's literal pieces are never cut.

Encoder path (``architecture: encoder``): each field is first cut to its max length at a token boundary (via the
tokenizer's offsets), then the tokenizer's own pair encoding builds ``[CLS] q [SEP] d [SEP]`` with
``truncation=pair_truncation`` and ``max_length`` — the same call sentence-transformers' CrossEncoder makes, so
inputs within the limits tokenise identically there.

Token ids are cached per unique text, so a query shared by 100 candidates is tokenised once; encoder pair
encodings are cached per (query, document), so a pair scored again is not tokenised again.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rerank_align.scoring.contract import ScoringContract, format_document, query_text
from rerank_align.scoring.templates import split_template

Doc = str | dict


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
            pieces = split_template(contract.template or "")
            literal = [p for p in pieces if p not in ("{query}", "{document}")]
            literal_ids = tokenizer(literal, add_special_tokens=False)["input_ids"] if literal else []
            it = iter(literal_ids)
            self._pieces: list[str | list[int]] = [
                p if p in ("{query}", "{document}") else next(it) for p in pieces
            ]

    # -- field tokenisation ------------------------------------------------------------------------------------
    def _field_ids(self, texts: Sequence[str], max_len: int, side: str) -> list[list[int]]:
        """Token ids per text, cut to ``max_len`` from ``side``; unique texts are tokenised once and cached."""
        out: list[list[int] | None] = [None] * len(texts)
        todo: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            hit = self._cache.get((t, max_len, side))
            if hit is None:
                todo.setdefault(t, []).append(i)
            else:
                out[i] = hit
        if todo:
            uniq = list(todo)
            enc = self.tokenizer(uniq, add_special_tokens=False)["input_ids"]
            if len(self._cache) + len(uniq) > self.cache_size:
                self._cache.clear()
            for t, ids in zip(uniq, enc):
                ids = ids[:max_len] if side == "right" else ids[max(0, len(ids) - max_len) :]
                self._cache[(t, max_len, side)] = ids
                for i in todo[t]:
                    out[i] = ids
        return out  # type: ignore[return-value]

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
                if len(offsets) <= max_len:
                    cut = t
                elif side == "right":
                    cut = t[: offsets[max_len - 1][1]]
                else:
                    cut = t[offsets[len(offsets) - max_len][0] :]
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
        q_ids = self._field_ids(q_texts, c.max_query_length, c.truncation_side["query"])
        d_ids = self._field_ids(d_texts, c.max_document_length, c.truncation_side["document"])
        return [{"input_ids": self._assemble(q, d)} for q, d in zip(q_ids, d_ids)]

    def _assemble(
        self,
        q: list[int],
        d: list[int],
        q_image: Sequence[int] = (),
        d_image: Sequence[int] = (),
    ) -> list[int]:
        """Template pieces + fields → ids, cutting the document text, then the query text, to ``max_length``.

        ``q_image`` / ``d_image`` are a VLM field's image block (never cut), placed before or after its text as the
        contract's ``vision.image_position`` says."""
        c = self.contract
        fixed = sum(len(p) for p in self._pieces if isinstance(p, list)) + len(q_image) + len(d_image)
        over = fixed + len(q) + len(d) - c.max_length
        if over > 0:
            cut = min(over, len(d))
            d = d[: len(d) - cut] if c.truncation_side["document"] == "right" else d[cut:]
            over -= cut
        if over > 0:
            cut = min(over, len(q))
            q = q[: len(q) - cut] if c.truncation_side["query"] == "right" else q[cut:]
        after = c.vision is not None and c.vision.image_position == "after"
        q_field = q + list(q_image) if after else list(q_image) + q
        d_field = d + list(d_image) if after else list(d_image) + d
        ids: list[int] = []
        for p in self._pieces:
            ids.extend(q_field if p == "{query}" else d_field if p == "{document}" else p)
        return ids

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


def pair_encoder(tokenizer: Any, contract: ScoringContract) -> PairEncoder:
    """The encoder for ``contract``: a VLM contract (``vision`` set) reads images too (scoring/vision.py)."""
    if contract.vision is not None:
        from rerank_align.scoring.vision import MultimodalPairEncoder

        return MultimodalPairEncoder(tokenizer, contract)
    return PairEncoder(tokenizer, contract)
