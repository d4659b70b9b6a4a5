"""Shared pieces of merge / export: probe pairs, scoring a model under a contract, the parity gate."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rerank_align.data import read_group_records
from rerank_align.errors import RerankAlignError
from rerank_align.io import write_json

DEFAULT_TOLERANCE = 1e-4
MAX_PROBE_PAIRS = 512

# Built-in probes: short and long, with and without titles, lexical matches and misses, non-ASCII text, so that
# padding, truncation and the document format are all exercised when a model is checked.
BUILTIN_PROBES: list[tuple[str, str | dict]] = [
    ("what causes the tides?", "The gravitational pull of the moon and the sun causes ocean tides."),
    ("what causes the tides?", "Tidal pools host anemones, crabs and small fish."),
    ("what causes the tides?", {"title": "Tides", "text": "Tides are driven by the moon's gravity."}),
    ("boiling point of water", "Water boils at 100 degrees Celsius at sea level."),
    ("boiling point of water", "The Nile is the longest river in Africa. " * 12),
    ("who wrote Les Misérables", "Victor Hugo published Les Misérables in 1862."),
    ("who wrote Les Misérables", {"title": "Musicals", "text": ""}),
    ("yes", "no"),
    ("kalomi nesu", "kalomi tavo risu kalomi nesu pezu"),
    ("kalomi nesu", "gafi zuta loka mine suvo"),
    ("a", "b"),
    (
        "how do vaccines train the immune system to recognise a pathogen without causing the disease itself",
        "Vaccines present antigens, weakened or inactivated pathogens, or mRNA instructions so that B cells "
        "and T cells form a memory of the pathogen. " * 4,
    ),
]


class ParityError(RerankAlignError):
    """A written model does not score like the model it was made from."""


@dataclass
class Parity:
    """One comparison of two score vectors on the probe set."""

    name: str
    max_abs_diff: float
    tolerance: float | None
    n_pairs: int
    gated: bool = True
    note: str = ""
    # what one compared value is: a pair's score, or one log-probability of an answer token
    unit: str = "pairs"

    @property
    def ok(self) -> bool:
        return not self.gated or self.max_abs_diff <= (self.tolerance or 0.0)

    def line(self) -> str:
        tol = (
            f" (tolerance {self.tolerance:g})" if self.gated and self.tolerance is not None else " (reported)"
        )
        note = f"; {self.note}" if self.note else ""
        return f"{self.name}: max |Δ| = {self.max_abs_diff:.3g} over {self.n_pairs} {self.unit}{tol}{note}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance if self.gated else None,
            "n_pairs": self.n_pairs,
            "unit": self.unit,
            "gated": self.gated,
            "ok": self.ok,
            "note": self.note,
        }


@dataclass
class ParityReport:
    checks: list[Parity] = field(default_factory=list)

    def add(self, p: Parity) -> Parity:
        self.checks.append(p)
        return p

    def to_dict(self) -> dict[str, Any]:
        return {"checks": [c.to_dict() for c in self.checks]}


def probe_pairs(
    probe_file: str | None = None, limit: int = MAX_PROBE_PAIRS, *, images: bool = False
) -> tuple[list, list]:
    """(queries, docs) from a JSONL of group records (every positive and negative), or the built-in probes.

    ``images`` (a VLM contract): pairs with images are kept, and the built-in probes get image pairs too, so the
    parity gates also cover the vision tower."""
    if probe_file is None:
        queries = [q for q, _ in BUILTIN_PROBES]
        docs: list = [d for _, d in BUILTIN_PROBES]
        if images:
            q_img, d_img = image_probes()
            queries, docs = queries + q_img, docs + d_img
        return queries, docs

    queries = []
    docs = []
    for rec in read_group_records(probe_file):
        for d in rec["positives"] + rec["negatives"]:
            if d.get("image") and not images:
                continue
            queries.append(rec["query"])
            docs.append(d)
    if not queries:
        raise RerankAlignError("no text pairs in the probe file", where=str(probe_file))
    return queries[:limit], docs[:limit]


def image_probes() -> tuple[list, list]:
    """Image pairs for a VLM parity gate: four generated images (gradients and stripes, so every patch differs)
    in a temporary folder removed at exit, as image→image, text→image, image→text and fused pairs."""
    import numpy as np
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="rerank_align_probes_"))
    atexit.register(shutil.rmtree, folder, True)
    paths = []
    for i, (h, w) in enumerate(((56, 56), (84, 56), (40, 120), (224, 224))):
        y, x = np.mgrid[0:h, 0:w]
        rgb = np.stack([(x * (3 + i)) % 256, (y * (5 + i)) % 256, ((x + y) * (7 + i) // 8) % 256], -1)
        path = folder / f"probe{i}.png"
        Image.fromarray(rgb.astype("uint8")).save(path)
        paths.append(str(path))
    queries = [
        {"text": "", "image": paths[0]},
        "a striped pattern",
        {"text": "", "image": paths[2]},
        {"text": "which image is this", "image": paths[3]},
    ]
    docs = [
        {"text": "", "image": paths[1]},
        {"text": "", "image": paths[3]},
        {"title": "Pattern", "text": "red and green stripes"},
        {"text": "a gradient", "image": paths[0]},
    ]
    return queries, docs


def scores_of(
    model: Any, tokenizer: Any, contract: Any, queries: list, docs: list, device: str = "cpu"
) -> Any:
    """Scores through the one scoring forward (``Reranker.score_pairs``), as a float64 numpy array.

    Always float32: parity gates compare to ~1e-5, which a bf16 forward cannot meet."""
    if contract.kind == "listwise":
        return list_answer_logprobs(model, tokenizer, contract, queries, docs, device)
    from rerank_align.scoring.reranker import Reranker

    rr = Reranker(model, tokenizer, contract, device=device, batch_size=8, autocast_dtype="float32")
    return rr.score_pairs(queries, docs).astype("float64")


def list_answer_logprobs(
    model: Any, tokenizer: Any, contract: Any, queries: list, docs: list, device: str = "cpu"
) -> Any:
    """A listwise model has no pair scores; what its answers depend on is the next-token distribution after a list
    prompt. The probe pairs are grouped into lists (each query with up to 5 of the probe documents, in two orders),
    and the log-softmax over the whole vocabulary at the first answer position is compared, as float64 numpy."""
    import numpy as np
    import torch

    from rerank_align.scoring.listwise_prompt import ListPromptBuilder

    builder = ListPromptBuilder(tokenizer, contract)
    pool = list({repr(d): d for d in docs}.values())  # distinct probe documents, titles kept
    uniq = list({repr(q): q for q in queries}.values())
    lists = [(q, pool[k % len(pool) :][:5]) for k, q in enumerate(uniq)]
    lists += [(q, list(reversed(ds))) for q, ds in lists]
    model.eval()
    out = []
    with torch.no_grad():
        for q, ds in lists:
            if len(ds) < 2:
                continue
            ids = torch.tensor([builder.build(q, ds).input_ids], device=device)
            logits = model(input_ids=ids).logits[0, -1].float()
            out.append(torch.log_softmax(logits, -1).cpu().numpy().astype("float64"))
    return np.concatenate(out)


def compare(
    name: str,
    a: Any,
    b: Any,
    tolerance: float | None,
    *,
    gated: bool = True,
    note: str = "",
    unit: str = "pairs",
) -> Parity:
    import numpy as np

    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    if a.shape != b.shape:
        raise ParityError(f"{name}: {a.shape} vs {b.shape} scores")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    if not np.isfinite(diff):
        diff = float("inf")
    return Parity(name, diff, tolerance, int(a.size), gated=gated, note=note, unit=unit)


def enforce(report: ParityReport, what: str) -> None:
    bad = [c for c in report.checks if not c.ok]
    if bad:
        raise ParityError(
            f"{what} refused: " + "; ".join(c.line() for c in bad),
            hint="nothing was written; the model would not score like its source",
        )


PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "chat_template.json",
    "chat_template.jinja",
)


def save_tokenizer(tokenizer: Any, src: str | Path, dst: Path, contract: Any) -> None:
    """The tokenizer (and any processor files of ``src``) into ``dst``.

    For encoders, ``model_max_length`` is set to the contract's ``max_length`` so that sentence-transformers'
    CrossEncoder truncates pairs at the same total length as ``Reranker``.
    """
    if contract.architecture == "encoder":
        tokenizer.model_max_length = contract.max_length
    tokenizer.save_pretrained(dst)
    for name in PROCESSOR_FILES:
        f = Path(src) / name
        if f.is_file() and not (dst / name).exists():
            shutil.copy2(f, dst / name)


def mark_cross_encoder(directory: Path) -> None:
    """Record in config.json that CrossEncoder must apply no activation (so it returns the raw head logit)."""
    cfg_path = directory / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    st = dict(cfg.get("sentence_transformers") or {})
    st["activation_fn"] = "torch.nn.modules.linear.Identity"
    cfg["sentence_transformers"] = st
    write_json(cfg_path, cfg)


def torch_dtype(name: str) -> Any:
    import torch

    if name not in ("float32", "bfloat16", "float16"):
        raise RerankAlignError(f"unknown dtype {name!r}", hint="float32, bfloat16 or float16")
    return getattr(torch, name)


RECIPE_FILES = ("recipe.yaml", "recipe.yml", "recipe.json")


def find_recipe(directory: Path) -> Path | None:
    for name in RECIPE_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def read_recipe_dict(path: Path | None) -> dict:
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text) or {}
