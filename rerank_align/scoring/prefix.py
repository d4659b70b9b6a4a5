"""Shared-prefix reuse for causal scoring: a query's prompt prefix is run once, its KV cache serves every document.

With a template that puts the query before the document (``qwen3``, ``bge-gemma``, ``plain``), the ``k`` prompts of
one query share their first tokens — the system text, the instruction and the query. Causal attention makes the
keys and values of those tokens independent of what follows, so they are computed once per query (one row of the
prefix length ``P``) and the cache is expanded over the query's documents, which then run only their own suffix
(the document and the template's tail) with positions continuing at ``P``. This is the prompt-caching argument of
Pope et al. 2022 ("Efficiently Scaling Transformer Inference", arXiv 2211.05102, §3.3, shared-prefix batches) and
of vLLM's prefix caching (Kwon et al. 2023, arXiv 2309.06180), applied to one reranking call.

The scores are those of the plain path (``forward.score_forward``) up to floating-point reassociation: the same
tokens, the same positions (continuing after the prefix; derived from the mask for the suffix, so left and right
padding agree), the same last-position hidden state and the same heads (tests/scoring/test_fast_scoring.py checks
≤ 1e-5 in float32 for several batch sizes and both padding sides). The shared prefix is the longest common prefix
of the query's token ids, capped so every row keeps at least one suffix token; rows whose group would share fewer
than ``min_prefix`` tokens take the plain path.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.forward import backbone, score_forward, scores_from_hidden

MIN_PREFIX = 8


def prefix_reuse_applies(contract: ScoringContract, model: Any) -> bool:
    """Text-only causal LMs whose template has the query before the document (or any shared head)."""
    if contract.architecture != "causal" or contract.kind not in ("yesno", "head"):
        return False
    if getattr(contract, "vision", None) is not None:
        return False
    cfg = getattr(backbone(model), "config", None)
    # cache layers other than full attention (sliding windows, linear attention) are left to the plain path
    kinds = set(getattr(cfg, "layer_types", None) or ["full_attention"])
    return kinds == {"full_attention"}


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Longest common prefix of ``seqs``, capped at ``min(len) - 1`` (each row keeps a token to score)."""
    arrs = [np.asarray(s) for s in seqs]
    n = min(len(a) for a in arrs) - 1
    if n <= 0:
        return 0
    first = arrs[0][:n]
    for a in arrs[1:]:
        diff = np.nonzero(a[:n] != first)[0]
        if diff.size:
            n = int(diff[0])
            if n == 0:
                return 0
            first = first[:n]
    return n


def _cache_kwarg(bb: Any) -> str:
    """transformers ≥ 5.2x calls the argument ``cache``; earlier versions ``past_key_values``."""
    params = inspect.signature(bb.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _layer_kv(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return [(k, v) for k, v in cache]  # legacy tuple cache


def _expanded_cache(bb: Any, kv: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> Any:
    from transformers import DynamicCache

    # expand() is a view; the cache's first update concatenates onto it, which materialises the copy once
    return DynamicCache(
        ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in kv],
        config=bb.config,
    )


def prefix_kv(model: Any, prefix_ids: Sequence[int], device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Run the shared prefix once (one row, positions 0..P-1) and return its per-layer keys and values."""
    bb = backbone(model)
    ids = torch.tensor([list(prefix_ids)], dtype=torch.long, device=device)
    out = bb(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        position_ids=torch.arange(ids.shape[1], device=device).unsqueeze(0),
        use_cache=True,
    )
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    return _layer_kv(cache)


def suffix_hidden(
    model: Any, kv: list[tuple[torch.Tensor, torch.Tensor]], batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Last non-pad hidden state of each suffix row, attending to the shared prefix's cache."""
    bb = backbone(model)
    mask = batch["attention_mask"]
    n, t = mask.shape
    p = kv[0][0].shape[-2]
    position_ids = p + (mask.long().cumsum(-1) - 1).clamp(min=0)
    full_mask = torch.cat([mask.new_ones(n, p), mask], dim=1)
    out = bb(
        input_ids=batch["input_ids"],
        attention_mask=full_mask,
        position_ids=position_ids,
        use_cache=False,
        **{_cache_kwarg(bb): _expanded_cache(bb, kv, n)},
    )
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    idx = (torch.arange(t, device=mask.device).unsqueeze(0) * mask).argmax(-1)
    return hidden[torch.arange(n, device=hidden.device), idx]


def score_with_prefix_reuse(
    model: Any,
    contract: ScoringContract,
    encoder: Any,
    feats: Sequence[dict[str, list[int]]],
    groups: Sequence[Sequence[int]],
    *,
    batch_size: int,
    device: str,
    min_prefix: int = MIN_PREFIX,
) -> np.ndarray:
    """Scores of ``feats`` (tokenised pairs); ``groups`` lists the feature indices of each query.

    Per group: the common prefix runs once; the suffixes are sorted by length (bucketing) and scored in batches of
    ``batch_size`` against the expanded cache. Groups with a short shared prefix are scored the plain way."""
    scores = np.empty(len(feats), dtype=np.float32)
    plain: list[int] = []
    for group in groups:
        p = common_prefix_len([feats[i]["input_ids"] for i in group]) if len(group) > 1 else 0
        if p < min_prefix:
            plain.extend(group)
            continue
        kv = prefix_kv(model, feats[group[0]]["input_ids"][:p], device)
        order = sorted(group, key=lambda i: len(feats[i]["input_ids"]), reverse=True)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batch = encoder.collate([{"input_ids": feats[i]["input_ids"][p:]} for i in idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            h = suffix_hidden(model, kv, batch)
            scores[idx] = scores_from_hidden(model, contract, h).scores.float().cpu().numpy()
    plain.sort(key=lambda i: len(feats[i]["input_ids"]), reverse=True)
    for s in range(0, len(plain), batch_size):
        idx = plain[s : s + batch_size]
        batch = {k: v.to(device) for k, v in encoder.collate([feats[i] for i in idx]).items()}
        scores[idx] = score_forward(model, contract, batch).scores.float().cpu().numpy()
    return scores
