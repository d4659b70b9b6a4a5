"""Images under the scoring contract (docs/design.md §1): the Qwen2-VL / Qwen2.5-VL family as a ``yesno`` reranker, with
text and/or an image on either side of the pair (a single-logit ``head`` on a VLM and listwise VLMs are not built).

The prompt is the text template; a field (query or document) that carries an image gets the image block the
Qwen2-VL processor would write, ``<|vision_start|>`` + ``<|image_pad|>`` × n + ``<|vision_end|>``, before (or after)
its text, where n = t·h·w / merge² is the number of merged patches of the resized image. A field without an image
is tokenised exactly as in the text path, so a text-only pair takes the same ids and the same forward.

Everything that decides the pixels is in ``reranker.json`` (``vision``: token strings and ids, the image
processor and all its settings), and the image processor is built from those settings alone — never from whatever
processor a folder or the hub offers — so training, ``Reranker.from_pretrained`` and the evaluator feed the model
identical ``pixel_values``. The score is the text path's: the hidden state at the last prompt position times the
two answer rows of lm_head (``forward.score_forward``); only the positions differ, which are Qwen2-VL's 3-D M-RoPE
positions (Wang et al. 2024, "Qwen2-VL", arXiv 2409.12191, §2.1) computed from the attention mask, so left and
right padding give the same scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rerank_align.errors import ContractError, InputError
from rerank_align.scoring.contract import ScoringContract, VisionFormat
from rerank_align.scoring.encode import Doc, PairEncoder

# model types whose processor writes the image block above and whose model computes M-RoPE with get_rope_index
SUPPORTED_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
IMAGE_TOKENS = ("vision_start", "image_pad", "vision_end")


def image_processor(v: VisionFormat) -> Any:
    """The image processor of ``v``, from its recorded settings only (transformers' PIL Qwen2-VL processor)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if v.image_processor != "Qwen2VLImageProcessor" or v.backend != "pil":
        raise ContractError(
            f"unknown image processor {v.image_processor!r} ({v.backend})", where="reranker.json:vision"
        )
    return Qwen2VLImageProcessorPil(
        min_pixels=v.min_pixels,
        max_pixels=v.max_pixels,
        patch_size=v.patch_size,
        temporal_patch_size=v.temporal_patch_size,
        merge_size=v.merge_size,
        image_mean=list(v.image_mean),
        image_std=list(v.image_std),
        rescale_factor=v.rescale_factor,
        resample=v.resample,
    )


def image_of(rec: Any) -> str | None:
    return (rec.get("image") or None) if isinstance(rec, dict) else None


def load_image(ref: str) -> Any:
    """A local image file as RGB (no network: URLs are refused with the reason)."""
    from PIL import Image

    if "://" in ref:
        raise InputError(
            f"image {ref!r} is a URL", hint="download it and give the local path (no network here)"
        )
    try:
        with Image.open(ref) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise InputError(f"image {ref!r} cannot be read ({type(e).__name__}: {e})") from None


class MultimodalPairEncoder(PairEncoder):
    """``PairEncoder`` for VLM contracts: features carry ``image_files`` (in prompt order), ``collate`` adds
    ``pixel_values`` (all images' patches, row after row) and ``image_grid_thw`` (one row per image).

    Processed images are cached per file up to ``image_cache_bytes`` of pixel values (a query image shared by 100
    candidates is resized once; one 256-token image is ~4.8 MB of float32 patches, so the cache is bounded by size,
    not by count)."""

    def __init__(
        self, tokenizer: Any, contract: ScoringContract, *, image_cache_bytes: int = 1 << 30
    ) -> None:
        super().__init__(tokenizer, contract)
        if contract.vision is None:
            raise ContractError("MultimodalPairEncoder needs a contract with a vision section")
        self.vision = contract.vision
        self.processor = image_processor(self.vision)
        self.image_cache_bytes = image_cache_bytes
        self._images: dict[str, tuple[torch.Tensor, tuple[int, int, int]]] = {}
        self._cached_bytes = 0

    def image(self, ref: str) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """``(pixel_values (patches, C·t·p·p) float32, (t, h, w))`` of one image file."""
        hit = self._images.get(ref)
        if hit is None:
            out = self.processor(images=[load_image(ref)], return_tensors="pt")
            grid = tuple(int(x) for x in out["image_grid_thw"][0])
            pixels = out["pixel_values"].float()
            hit = (pixels, grid)  # type: ignore[assignment]
            size = pixels.numel() * pixels.element_size()
            if self._cached_bytes + size > self.image_cache_bytes:
                self._images.clear()
                self._cached_bytes = 0
            self._images[ref] = hit  # type: ignore[assignment]
            self._cached_bytes += size
        return hit  # type: ignore[return-value]

    def image_block(self, ref: str | None) -> list[int]:
        if not ref:
            return []
        t, h, w = self.image(ref)[1]
        n = t * h * w // (self.vision.merge_size**2)
        ids = self.vision.token_ids
        return [ids["vision_start"]] + [ids["image_pad"]] * n + [ids["vision_end"]]

    def encode(self, queries: Sequence[str | dict], docs: Sequence[Doc]) -> list[dict[str, Any]]:
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} documents")
        q_texts, d_texts = self.texts(queries, docs)
        q_files, d_files = [image_of(q) for q in queries], [image_of(d) for d in docs]
        all_ids = self._prompt_ids(
            q_texts,
            d_texts,
            [self.image_block(f) for f in q_files],
            [self.image_block(f) for f in d_files],
        )
        feats = []
        for ids, qi, di in zip(all_ids, q_files, d_files):
            files = [f for f in ((qi, di) if self._query_first else (di, qi)) if f]
            feats.append({"input_ids": ids, "image_files": files})
        return feats

    def image_tensors(self, files: Sequence[str]) -> dict[str, torch.Tensor]:
        """``pixel_values`` (the images' patches, in order) and ``image_grid_thw``; empty without images."""
        if not files:
            return {}
        images = [self.image(f) for f in files]
        return {
            "pixel_values": torch.cat([pv for pv, _ in images]),
            "image_grid_thw": torch.tensor([g for _, g in images], dtype=torch.long),
        }

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        out = super().collate(features)
        out.update(self.image_tensors([f for feat in features for f in feat.get("image_files") or []]))
        return out


def slice_pairs(
    pairs: dict[str, torch.Tensor], sl: slice, contract: ScoringContract
) -> dict[str, torch.Tensor]:
    """Rows ``sl`` of a collated batch, with the pixel patches and grids of exactly those rows' images."""
    out = {k: v[sl] for k, v in pairs.items() if k not in ("pixel_values", "image_grid_thw")}
    if "pixel_values" not in pairs or contract.vision is None:
        return out
    per_row = (pairs["input_ids"] == contract.vision.token_ids["vision_start"]).sum(-1)
    first = int(per_row[: sl.start].sum())
    last = first + int(per_row[sl].sum())
    if last > first:
        patches = torch.cumsum(pairs["image_grid_thw"].prod(-1), 0).tolist()
        lo = patches[first - 1] if first else 0
        out["pixel_values"] = pairs["pixel_values"][lo : patches[last - 1]]
        out["image_grid_thw"] = pairs["image_grid_thw"][first:last]
    return out
