"""The scoring contract (docs/design.md §1), saved next to the weights as ``reranker.json``.

Everything that turns (query, document) into a score is written here literally — template strings, answer tokens
and their ids, the score formula, per-field max lengths and truncation sides, padding side, the list identifier
format, the base model and its revision — and every component (trainer, evaluator, ``Reranker``, merge, export,
model card) reads it back from here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rerank_align.errors import ContractError
from rerank_align.io import atomic_write

CONTRACT_FILE = "reranker.json"
# 2: the prompt is tokenised as whole strings (``segments``, else the whole template); 1: each literal piece and
# each field on its own (kept for models saved under version 1, see scoring/templates.py)
CONTRACT_VERSION = 2

Kind = Literal["yesno", "head", "listwise"]
Architecture = Literal["causal", "encoder", "vlm"]
Formula = Literal["logit_diff", "log_softmax_yes", "yes_logit", "head"]
Side = Literal["left", "right"]

KINDS = ("yesno", "head", "listwise")
ARCHITECTURES = ("causal", "encoder", "vlm")
FORMULAS = ("logit_diff", "log_softmax_yes", "yes_logit", "head")

FORMULA_TEXT = {
    "logit_diff": "score = z_yes - z_no, the difference of the answer-token logits at the last prompt position",
    "log_softmax_yes": "score = log p(yes | {yes, no}) = z_yes - logsumexp(z_yes, z_no) at the last prompt position",
    "yes_logit": "score = z_yes, the logit of the yes token at the last prompt position",
    "head": "score = the single logit of the classification head",
}


def default_list_prompt(identifier: str = "[{i}]") -> str:
    """RankGPT's list prompt for ``identifier``: numerical (``[2] > [1]``) or, for letters, alphabetical
    (``[B] > [A]``, as FIRST's prompts in rank_llm say), so the instruction never names another format."""
    if "{a}" in identifier:
        return ListFormat.prompt_template.replace(
            "a numerical identifier", "an alphabetical identifier"
        ).replace("e.g., [2] > [1]", "e.g., [B] > [A]")
    return ListFormat.prompt_template


@dataclass
class ListFormat:
    """How a listwise prompt numbers candidates and how the answer permutation is written."""

    identifier: str = "[{i}]"
    separator: str = " > "
    passage_template: str = "{identifier} {document}\n"
    prompt_template: str = (
        "I will provide you with {n} passages, each indicated by a numerical identifier []. Rank the passages "
        "based on their relevance to the search query: {query}.\n\n{passages}\nSearch Query: {query}.\n"
        "Rank the {n} passages above based on their relevance to the search query. All the passages should be "
        "included and listed using identifiers, in descending order of relevance. The output format should be "
        "[] > [], e.g., [2] > [1]. Only respond with the ranking results, do not say any word or explain.\n"
    )
    first_index: int = 1
    # inference (rerank_align.listwise): "generate" the permutation or rank by FIRST's first-token logits;
    # one "full" window or "sliding" windows of `window` candidates moved back to front by `stride`
    decoding: str = "generate"
    strategy: str = "sliding"
    window: int = 20
    stride: int = 10


@dataclass
class VisionFormat:
    """How images enter a VLM prompt (Qwen2-VL / Qwen2.5-VL family), written literally into reranker.json.

    A query or document with an image is written as ``vision_start + image_pad * n + vision_end`` placed
    ``image_position`` its text, where ``n`` is the number of merged patches of the resized image; a field without
    an image is written exactly as in the text path. The image is resized and normalised by the image processor
    named here (``backend`` pil: transformers' PIL implementation, so no torchvision is needed and training and
    scoring cannot pick different resizers) with every setting below.
    """

    image_processor: str = "Qwen2VLImageProcessor"
    backend: str = "pil"
    vision_start: str = "<|vision_start|>"
    image_pad: str = "<|image_pad|>"
    vision_end: str = "<|vision_end|>"
    token_ids: dict[str, int] = field(default_factory=dict)
    image_position: Literal["before", "after"] = "before"
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    image_mean: list[float] = field(default_factory=lambda: [0.48145466, 0.4578275, 0.40821073])
    image_std: list[float] = field(default_factory=lambda: [0.26862954, 0.26130258, 0.27577711])
    rescale_factor: float = 1 / 255
    resample: int = 3  # PIL bicubic


@dataclass
class ScoringContract:
    kind: Kind
    architecture: Architecture
    base_model: str
    base_model_revision: str | None = None
    template: str | None = None
    template_name: str = "custom"
    document_format: str = "{title}\n{text}"
    answer_tokens: dict[str, str] = field(default_factory=dict)
    answer_token_ids: dict[str, int] = field(default_factory=dict)
    formula: Formula = "logit_diff"
    max_query_length: int = 64
    max_document_length: int = 256
    max_length: int = 512
    truncation_side: dict[str, Side] = field(default_factory=lambda: {"query": "right", "document": "right"})
    padding_side: Side = "right"
    pair_truncation: Literal["longest_first", "only_second"] = "longest_first"
    list_format: ListFormat | None = None
    vision: VisionFormat | None = None
    # the template cut where the tokenizer must see separate strings (concatenated: ``template``); None = one string
    segments: list[str] | None = None
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.list_format, dict):
            self.list_format = ListFormat(**self.list_format)
        if isinstance(self.vision, dict):
            self.vision = VisionFormat(**self.vision)
        self.validate()

    def validate(self) -> None:
        def bad(key: str, what: str, hint: str | None = None) -> None:
            raise ContractError(what, where=f"{CONTRACT_FILE}:{key}", hint=hint)

        if self.kind not in KINDS:
            bad("kind", f"unknown kind {self.kind!r}", f"one of {', '.join(KINDS)}")
        if self.architecture not in ARCHITECTURES:
            bad(
                "architecture",
                f"unknown architecture {self.architecture!r}",
                f"one of {', '.join(ARCHITECTURES)}",
            )
        if self.formula not in FORMULAS:
            bad("formula", f"unknown formula {self.formula!r}", f"one of {', '.join(FORMULAS)}")
        if self.kind == "yesno":
            if self.architecture == "encoder":
                bad(
                    "architecture", "a yesno reranker needs a causal LM or VLM", "use kind: head for encoders"
                )
            if self.formula == "head":
                bad("formula", "yesno rerankers score with logit_diff, log_softmax_yes or yes_logit")
            if set(self.answer_tokens) != {"yes", "no"} or set(self.answer_token_ids) != {"yes", "no"}:
                bad("answer_tokens", "yesno needs answer_tokens and answer_token_ids for 'yes' and 'no'")
        if self.kind == "head" and self.architecture == "vlm":
            bad(
                "kind",
                "a single-logit head on a VLM is not built",
                "use kind: yesno for Qwen2-VL / Qwen2.5-VL",
            )
        if self.kind == "head" and self.formula != "head":
            bad("formula", "head rerankers use formula 'head'")
        if self.kind == "listwise" and self.architecture == "encoder":
            bad("architecture", "a listwise reranker generates a permutation: it needs a causal LM")
        if self.kind == "listwise" and self.list_format is not None:
            lf = self.list_format
            if lf.decoding not in ("generate", "first") or lf.strategy not in ("sliding", "full"):
                bad("list_format", "decoding must be generate|first and strategy sliding|full")
            if not 1 <= lf.stride <= lf.window or lf.window < 2:
                bad("list_format.window", "need window >= 2 and 1 <= stride <= window")
        if self.vision is not None:
            v = self.vision
            if self.architecture != "vlm" or self.kind == "listwise":
                bad("vision", "only yesno rerankers on a VLM take images", "drop the vision section")
            if set(v.token_ids) != {"vision_start", "image_pad", "vision_end"}:
                bad("vision.token_ids", "need the ids of vision_start, image_pad and vision_end")
            if v.image_position not in ("before", "after") or v.backend != "pil":
                bad("vision", "image_position must be before|after and backend pil")
            if not 0 < v.min_pixels <= v.max_pixels:
                bad("vision.min_pixels", "need 0 < min_pixels <= max_pixels")
        elif self.architecture == "vlm" and self.kind != "listwise":
            bad("vision", "a VLM reranker needs the vision section (image tokens and image processing)")
        if self.architecture != "encoder" and self.kind != "listwise" and not self.template:
            bad("template", "causal and VLM rerankers need a template with {query} and {document}")
        if self.segments is not None and not self.template:
            self.segments = None  # nothing to tokenise in pieces (encoders, listwise)
        if self.segments is not None:
            if "".join(self.segments) != (self.template or ""):
                bad(
                    "segments",
                    "segments must concatenate to the template",
                    "drop segments to tokenise it whole",
                )
            for f in ("{query}", "{document}"):
                if sum(s.count(f) for s in self.segments) != 1:
                    bad("segments", f"{f} must lie whole inside one segment")
        for key in ("max_query_length", "max_document_length", "max_length"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                bad(key, f"{key} must be a positive integer")
        for f, side in self.truncation_side.items():
            if f not in ("query", "document") or side not in ("left", "right"):
                bad("truncation_side", f"bad truncation side {f}={side!r}", "query/document: left or right")
        if self.padding_side not in ("left", "right"):
            bad("padding_side", f"bad padding side {self.padding_side!r}")
        if self.architecture == "encoder" and self.padding_side != "right":
            bad("padding_side", "encoders use absolute positions from the left", "use padding_side: right")

    # -- serialisation ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if (
            d["vision"] is None
        ):  # text contracts keep the exact JSON (and hash) they had before images existed
            del d["vision"]
        if d["segments"] is None:  # one string: nothing to record
            del d["segments"]
        d["formula_text"] = FORMULA_TEXT[self.formula]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / CONTRACT_FILE
        with atomic_write(path) as fh:
            fh.write(self.to_json())
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = CONTRACT_FILE) -> ScoringContract:
        d = dict(d)
        d.pop("formula_text", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ContractError(
                f"unknown keys {unknown}", where=source, hint="was it written by a newer rerank_align?"
            )
        if d.get("version", CONTRACT_VERSION) > CONTRACT_VERSION:
            raise ContractError(
                f"contract version {d['version']} is newer than supported {CONTRACT_VERSION}", where=source
            )
        try:
            return cls(**d)
        except TypeError as e:
            raise ContractError(str(e), where=source) from None

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ScoringContract:
        path = Path(directory) / CONTRACT_FILE
        if not path.is_file():
            raise ContractError(
                "no reranker.json: this folder was not saved by rerank_align",
                where=str(path),
                hint="use Reranker.from_base(...) to score a plain base model",
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ContractError(f"unreadable JSON ({e})", where=str(path)) from None
        return cls.from_dict(data, source=str(path))

    # -- checks against a tokenizer ---------------------------------------------------------------------------
    def check_tokenizer(self, tokenizer: Any) -> None:
        """The answer tokens (and a VLM's image tokens) must still be single tokens with the recorded ids (catches a
        swapped tokenizer)."""
        expected = {k: (text, self.answer_token_ids.get(k)) for k, text in self.answer_tokens.items()}
        if self.vision is not None:
            expected.update({k: (getattr(self.vision, k), i) for k, i in self.vision.token_ids.items()})
        for name, (text, recorded) in expected.items():
            ids = tokenizer.encode(text, add_special_tokens=False)
            if ids != [recorded]:
                raise ContractError(
                    f"{'answer ' if name in self.answer_tokens else ''}token {name}={text!r} encodes to {ids}, reranker.json says {recorded}",
                    where=CONTRACT_FILE,
                    hint="the tokenizer does not belong to this reranker",
                )


def format_document(doc: str | dict, document_format: str) -> str:
    """A doc (string or ``{"title","text"}``) → text. With an empty title the format reduces to the text alone."""
    if isinstance(doc, str):
        return doc
    title, text = (doc.get("title") or "").strip(), doc.get("text") or ""
    if not title:
        return text
    if not text:
        return title
    return document_format.replace("{title}", title).replace("{text}", text)


def query_text(query: str | dict) -> str:
    return query if isinstance(query, str) else (query.get("text") or "")


def cut_at_token(text: str, offsets: Sequence[Sequence[int]], keep: int, side: str) -> str:
    """``text`` cut to its first (``side`` right) or last (left) ``keep`` tokens, at a token boundary; ``offsets``
    are its tokens' character spans (a fast tokenizer's ``offset_mapping`` of ``text`` alone)."""
    if keep >= len(offsets):
        return text
    if keep <= 0:
        return ""
    return text[: offsets[keep - 1][1]] if side == "right" else text[offsets[len(offsets) - keep][0] :]


def single_token_id(tokenizer: Any, text: str, where: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ContractError(
            f"answer {text!r} is {len(ids)} tokens ({ids}) for this tokenizer; it must be exactly one",
            where=where,
            hint="choose an answer string that is a single token",
        )
    return ids[0]
