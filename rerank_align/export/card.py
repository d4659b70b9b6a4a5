"""The model card (README.md) written next to every merged / exported model.

Sections: base model, method and recipe, training data, evaluation table (from a ``rerank-align eval`` results
JSON), the scoring contract in words (``FORMULA_TEXT``), usage with plain transformers, parity checks and a
reproducibility manifest (git commit, library versions, recipe hash, data file hashes, reranker.json hash).

The plain-transformers snippet embeds the source of ``encode_pair`` below — the very function the export parity
gate runs — so the documented recipe for building input ids cannot drift from the tested one.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from rerank_align.export.common import find_recipe, read_recipe_dict
from rerank_align.io import atomic_write
from rerank_align.provenance import git_info, library_versions, sha256_file, sha256_path


# -- the documented input construction (self-contained: copied verbatim into the card) -------------------------
def encode_pair(tokenizer, contract, query, document):
    """Input ids of one (query, document) prompt, built exactly as rerank_align builds them.

    ``contract`` is the parsed reranker.json; ``document`` a string or {"title", "text"}. The prompt is rendered and
    each of its ``segments`` (else the whole template) is tokenised as one string, no special tokens. A field's
    tokens are those overlapping its characters; a field over its max length keeps that many tokens (from its
    truncation side), and a prompt over ``max_length`` loses document tokens, then query tokens, never template ones.
    (Contracts of version 1 tokenised each literal piece and each field on its own.)
    """
    import re  # inside: the card copies this function's source, which must run on its own

    if isinstance(document, dict):
        title, text = (document.get("title") or "").strip(), document.get("text") or ""
        fmt = contract["document_format"]
        document = (
            text
            if not title
            else title
            if not text
            else fmt.replace("{title}", title).replace("{text}", text)
        )
    fields = {"query": query, "document": document}
    t = contract["template"]
    split = re.compile(r"(\{query\}|\{document\})")
    if contract.get("version", 1) < 2:
        segments = [p for p in split.split(t) if p]
    else:
        segments = contract.get("segments") or [t]
    parts = []  # per segment: its ids and {field: (first token, end token)}
    for seg in segments:
        text, chars = "", {}
        for piece in split.split(seg):
            if piece in ("{query}", "{document}"):
                value = fields[piece[1:-1]]
                chars[piece[1:-1]] = (len(text), len(text) + len(value))
                text += value
            else:
                text += piece
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        spans, prev = {}, 0
        for name, (s, e) in chars.items():
            hit = [i for i, (a, b) in enumerate(offsets) if a < e and b > s] if e > s else []
            i0, i1 = (hit[0], hit[-1] + 1) if hit else (sum(a < s for a, _ in offsets),) * 2
            i0 = max(i0, prev)  # a token shared by two fields belongs to the first
            i1 = max(i1, i0)
            spans[name], prev = (i0, i1), i1
        parts.append((ids, spans))
    n = {f: sum(sp[f][1] - sp[f][0] for _, sp in parts if f in sp) for f in fields}
    keep = {f: min(n[f], contract[f"max_{f}_length"]) for f in fields}
    over = sum(len(ids) for ids, _ in parts) - sum(n[f] - keep[f] for f in fields) - contract["max_length"]
    for f in ("document", "query"):  # the document gives way first; the template never does
        cut = min(max(over, 0), keep[f])
        keep[f], over = keep[f] - cut, over - cut
    side = contract["truncation_side"]
    out = []
    for ids, spans in parts:
        pos = 0
        for f, (i0, i1) in spans.items():
            span = ids[i0:i1]
            out += ids[pos:i0] + (span[: keep[f]] if side[f] == "right" else span[len(span) - keep[f] :])
            pos = i1
        out += ids[pos:]
    return out


# -- manifest ----------------------------------------------------------------------------------------------------
def recipe_data_files(recipe: dict) -> list[str]:
    data = recipe.get("data") or {}
    files = [data.get("train_file"), data.get("beir"), data.get("run"), *(data.get("teacher_files") or [])]
    return [f for f in files if f]


def manifest(
    directory: Path, recipe: Path | None, recipe_dict: dict, data_files: list[str]
) -> dict[str, Any]:
    data: dict[str, str | None] = {}
    for f in [*recipe_data_files(recipe_dict), *data_files]:
        data[f] = sha256_path(f) if Path(f).exists() else None
    contract_file = directory / "reranker.json"
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(),
        "versions": library_versions(),
        "recipe": str(recipe) if recipe else None,
        "recipe_sha256": sha256_file(recipe) if recipe else None,
        "data_sha256": data,
        "reranker_json_sha256": sha256_file(contract_file) if contract_file.is_file() else None,
    }


# -- evaluation table ---------------------------------------------------------------------------------------------
def evaluation_table(results_path: str | os.PathLike) -> list[str]:
    """Markdown table from a ``rerank-align eval`` results JSON (``format: rerank_align.eval/1``)."""
    r = json.loads(Path(results_path).read_text(encoding="utf-8"))
    metrics = r.get("metrics") or []
    lines = [f"From `{Path(results_path).name}`"]
    suite = (r.get("suite") or {}).get("name")
    if suite:
        lines[0] += (
            f" (suite `{suite}`, created {r.get('created', '?')}, commit `{(r.get('git') or {}).get('commit')}`)"
        )
    lines[0] += "."
    for col, c in (r.get("collections") or {}).items():
        lines += [
            "",
            f"**{col}** — {c.get('n_queries', '?')} queries, rerank depth {c.get('depth', '?')}",
            "",
        ]
        lines += ["| system | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for system, m in (c.get("metrics") or {}).items():
            cells = [f"{m[k]:.4f}" if isinstance(m.get(k), (int, float)) else "—" for k in metrics]
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return lines


# -- usage snippets -----------------------------------------------------------------------------------------------
def usage(contract: Any, name: str) -> list[str]:
    c = contract
    if c.kind == "listwise":
        return [
            "A listwise reranker generates (or, with FIRST decoding, reads from its first-token logits) a "
            "permutation of the candidates; the prompt and identifier format are `list_format` in reranker.json.",
            "",
            "```python",
            "from rerank_align.scoring import Reranker",
            "",
            f'ranking = Reranker.from_pretrained("{name}").rerank("what causes tides?", ["doc 1", "doc 2"])',
            "```",
        ]
    if c.architecture == "encoder":
        return [
            "```python",
            "import torch",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            f'path = "{name}"',
            "tok = AutoTokenizer.from_pretrained(path)",
            "model = AutoModelForSequenceClassification.from_pretrained(path).eval()",
            'queries, docs = ["what causes tides?"] * 2, ["The moon\'s gravity.", "Tidal pools host crabs."]',
            f'batch = tok(queries, docs, padding=True, truncation="{c.pair_truncation}", max_length={c.max_length}, return_tensors="pt")',
            "with torch.no_grad():",
            "    scores = model(**batch).logits[:, 0]  # raw logits = the reranker's scores",
            "```",
            "",
            "sentence-transformers (config.json sets `activation_fn` to Identity, so scores are the raw logits):",
            "",
            "```python",
            "from sentence_transformers import CrossEncoder",
            "",
            f'scores = CrossEncoder("{name}").predict([("what causes tides?", "The moon\'s gravity.")])',
            "```",
            "",
            f"Fields longer than `max_query_length` ({c.max_query_length}) / `max_document_length` "
            f"({c.max_document_length}) tokens are cut first by `rerank_align`; plain pair tokenisation and "
            "CrossEncoder cut only at `max_length`, so very long inputs can score differently there.",
        ]
    src = inspect.getsource(encode_pair).rstrip()
    head = [
        "```python",
        "import json",
        "",
        "import torch",
        "from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer",
        "",
        "",
        src,
        "",
        "",
        f'path = "{name}"',
        'contract = json.load(open(f"{path}/reranker.json"))',
        "tok = AutoTokenizer.from_pretrained(path)",
        'query, doc = "what causes tides?", {"title": "Tides", "text": "The moon\'s gravity pulls the ocean."}',
        "input_ids = torch.tensor([encode_pair(tok, contract, query, doc)])",
    ]
    if c.kind == "head":
        body = [
            "model = AutoModelForSequenceClassification.from_pretrained(path).eval()",
            "with torch.no_grad():",
            "    score = model(input_ids=input_ids).logits[0, 0].item()",
            "```",
            "",
            "For batches, pad on the **right** with the tokenizer's pad token and pass `attention_mask`: the model "
            "pools the last non-pad token and numbers positions from 0.",
        ]
    else:
        ids = c.answer_token_ids
        formula = {
            "logit_diff": "score = (z_yes - z_no).item()",
            "log_softmax_yes": "score = (z_yes - torch.logaddexp(z_yes, z_no)).item()",
            "yes_logit": "score = z_yes.item()",
        }[c.formula]
        model_class = "AutoModelForImageTextToText" if c.vision is not None else "AutoModelForCausalLM"
        head = [
            f"from transformers import {model_class}, AutoTokenizer"
            if line.startswith("from transformers")
            else line
            for line in head
        ]
        body = [
            f"model = {model_class}.from_pretrained(path).eval()",
            "with torch.no_grad():",
            "    logits = model(input_ids=input_ids).logits[0, -1].float()",
            f"z_yes, z_no = logits[{ids['yes']}], logits[{ids['no']}]  # answer tokens {c.answer_tokens}",
            formula,
            "```",
        ]
    tail = ["", "Or with rerank_align: `Reranker.from_pretrained(path).score(query, [doc, ...])`."]
    if c.vision is not None:
        v = c.vision
        tail += [
            "",
            "The snippet scores a text-only pair. With images, use rerank_align (`Reranker.from_pretrained(path)"
            '.score({"text": "", "image": "q.png"}, [{"image": "d.png"}, "a text document"])`), or build the '
            f"inputs the same way: a field with an image starts ({v.image_position} its text) with `{v.vision_start}` + "
            f"`{v.image_pad}` × (t·h·w / {v.merge_size}²) + `{v.vision_end}`, the pixels come from "
            f"`{v.image_processor}` with the `vision` settings of reranker.json (min_pixels {v.min_pixels}, "
            f"max_pixels {v.max_pixels}), and the model gets `pixel_values`, `image_grid_thw` and "
            f"`mm_token_type_ids = (input_ids == {v.token_ids['image_pad']})`.",
        ]
    return head + body + tail


# -- metadata (the way sentence-transformers writes it for rerankers) --------------------------------------------
def library_for(directory: Path, contract: Any) -> tuple[str, str]:
    """``library_name`` = the library that loads the folder as it is, and why.

    sentence-transformers: encoder heads (``CrossEncoder`` config), yes/no folders with its module files
    (Transformer + LogitScore) and causal seq-cls exports with a query/document chat template — all loaded by
    ``CrossEncoder(path)`` with the reranker's scores (tested). peft: adapter folders. transformers otherwise."""
    if (directory / "adapter_config.json").is_file():
        return "peft", "a LoRA adapter: peft loads it onto its base model"
    cfg_path = directory / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    if (directory / "modules.json").is_file():
        return "sentence-transformers", "CrossEncoder(path) loads it as Transformer + LogitScore"
    if contract.kind == "head" and "sentence_transformers" in cfg:
        return "sentence-transformers", "CrossEncoder(path) loads the sequence-classification model"
    return "transformers", "no sentence-transformers files: load it with transformers (or rerank_align)"


def _hub_id(name: str | None) -> str | None:
    """``name`` if it reads as a hub repo id (owner/name, not a local path), else None."""
    if not name or Path(name).exists() or name.startswith((".", "/", "~")):
        return None
    return name if re.fullmatch(r"[\w.-]+/[\w.-]+", name) else None


def eval_results(results_path: str | os.PathLike, system: str) -> list[Any]:
    """huggingface_hub ``EvalResult``s of ``system`` in a ``rerank-align eval`` results JSON (one per collection
    and metric); empty when the system is not in it."""
    from huggingface_hub import EvalResult

    r = json.loads(Path(results_path).read_text(encoding="utf-8"))
    out = []
    for col, c in (r.get("collections") or {}).items():
        m = (c.get("metrics") or {}).get(system)
        if not m:
            continue
        for k in r.get("metrics") or []:
            if isinstance(m.get(k), (int, float)):
                out.append(
                    EvalResult(
                        task_type="text-ranking",
                        task_name="Reranking",
                        dataset_type=col,
                        dataset_name=col,
                        dataset_split=c.get("split"),
                        metric_type=k.lower().replace("@", "_at_"),
                        metric_name=k,
                        metric_value=float(m[k]),
                    )
                )
    return out


def card_data(
    directory: Path,
    contract: Any,
    *,
    name: str,
    recipe_dict: dict,
    results: str | None,
    results_system: str | None,
    license: str | None,
) -> tuple[Any, dict[str, Any]]:
    """``ModelCardData`` (validated by huggingface_hub when built) and facts for the card's text."""
    from huggingface_hub import ModelCardData

    library, why = library_for(directory, contract)
    method = (recipe_dict.get("method") or {}).get("name")
    loss = (recipe_dict.get("method") or {}).get("loss")
    tags = ["rerank_align", "reranker", "text-ranking"]
    if library == "sentence-transformers":
        tags = ["sentence-transformers", "cross-encoder", *tags]
    tags += [f"{k}:{v}" for k, v in (("method", method), ("loss", loss)) if v]
    data_files = recipe_data_files(recipe_dict)
    datasets = [d for d in (_hub_id(f) for f in data_files) if d]
    system = results_system or name
    evals = eval_results(results, system) if results else []
    license = license or base_license(contract.base_model)
    data = ModelCardData(
        model_name=name,
        library_name=library,
        pipeline_tag="text-ranking",
        base_model=_hub_id(contract.base_model),
        tags=tags,
        license=license,
        datasets=datasets or None,
        eval_results=evals or None,
    )
    facts = {
        "library": library,
        "library_why": why,
        "eval_system": system if evals else None,
        "license": license,
        "base_on_hub": _hub_id(contract.base_model) is not None,
    }
    return data, facts


def base_license(base_model: str) -> str | None:
    """The license in the base model's own card (a local folder or the hub cache; never the network)."""
    from huggingface_hub import ModelCard

    path = Path(base_model) / "README.md"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(base_model, "README.md")
        except Exception:  # noqa: BLE001 - not a hub id
            hit = None
        if not isinstance(hit, str):
            return None
        path = Path(hit)
    try:
        return ModelCard.load(path).data.get("license")
    except Exception:  # noqa: BLE001 - a card without metadata
        return None


# -- the card ------------------------------------------------------------------------------------------------------
def contract_in_words(c: Any) -> list[str]:
    from rerank_align.scoring.contract import FORMULA_TEXT

    lines = [
        f"- kind: `{c.kind}`, architecture: `{c.architecture}`",
        f"- score: {FORMULA_TEXT[c.formula]}",
    ]
    if c.kind == "yesno":
        lines.append(
            f"- answer tokens: yes = {c.answer_tokens['yes']!r} (id {c.answer_token_ids['yes']}), "
            f"no = {c.answer_tokens['no']!r} (id {c.answer_token_ids['no']})"
        )
    lines += [
        f"- max lengths: query {c.max_query_length}, document {c.max_document_length}, total {c.max_length} tokens; "
        f"truncation side: query {c.truncation_side['query']}, document {c.truncation_side['document']}",
        f"- padding side: {c.padding_side} (positions are counted from the first real token)",
        f"- document text: `{c.document_format!r}` (the text alone when a document has no title)",
    ]
    if c.vision is not None:
        v = c.vision
        lines.append(
            f"- images (query and/or document): `{v.vision_start}` + `{v.image_pad}` × n + `{v.vision_end}` "
            f"{v.image_position} the field's text, n = merged patches of the image resized by {v.image_processor} "
            f"to {v.min_pixels}–{v.max_pixels} pixels (patch {v.patch_size}, merge {v.merge_size}); never truncated"
        )
    if c.architecture == "encoder":
        lines.append(f"- input: `[CLS] query [SEP] document [SEP]`, pair truncation `{c.pair_truncation}`")
    elif c.template:
        lines += [
            f"- template (`{c.template_name}`), every character literal; the score is read at the last prompt "
            "position. "
            + (
                "Each literal piece and each field is tokenised separately without special tokens (contract "
                "version 1):"
                if c.version < 2
                else "The rendered prompt is tokenised as one string without special tokens"
                + (
                    f", in {len(c.segments)} separately tokenised segments {c.segments!r}:"
                    if c.segments
                    else ":"
                )
            ),
            "",
            "```text",
            c.template,
            "```",
        ]
    return lines


def render_card(
    directory: Path,
    *,
    contract: Any,
    source: dict,
    results: str | None,
    recipe: Path | None,
    data_files: list[str] | None,
    notes: list[str] | None = None,
    results_system: str | None = None,
    license: str | None = None,
) -> str:
    """The card's text: huggingface_hub metadata (``ModelCardData``) and the sections below it."""
    from huggingface_hub import ModelCard

    recipe_dict = read_recipe_dict(recipe) if recipe else {}
    man = manifest(directory, recipe, recipe_dict, list(data_files or []))
    name = directory.name if not directory.name.startswith(".") else "path/to/model"
    name = source.get("name") or name
    c = contract
    base = c.base_model + (f" (revision `{c.base_model_revision}`)" if c.base_model_revision else "")
    data, facts = card_data(
        directory,
        c,
        name=name,
        recipe_dict=recipe_dict,
        results=results,
        results_system=results_system,
        license=license,
    )
    lines = [
        f"# {name}",
        "",
        f"A `{c.kind}` reranker made by `rerank_align` ({source.get('operation', 'save')}). "
        f"Loader: `{facts['library']}` ({facts['library_why']}).",
        "",
        "## Base model",
        "",
        f"- {base}"
        + ("" if facts["base_on_hub"] else " (a local path: not linked as `base_model` on the hub)"),
        f"- license: {facts['license'] or 'not recorded (the base model card has none here; pass --license)'}",
    ]
    if source.get("operation") == "merge":
        q = source.get("qlora")
        lines.append(
            f"- merged from the LoRA adapter `{source.get('adapter')}`"
            + (f" (QLoRA, {q['quant_type']} 4-bit base, dequantized to float32 before merging)" if q else "")
            + f"; weights stored in {source.get('dtype')}"
        )
    if source.get("operation") == "export":
        lines.append(
            f"- exported from `{source.get('source')}` ("
            + (
                f"{source['source_formula']} yes/no reranker → sequence classification"
                if source.get("source_formula")
                else f"{c.architecture} {c.kind} reranker, copied for sentence-transformers"
            )
            + ")"
        )
    lines += ["", "## Method and recipe", ""]
    if recipe_dict:
        m, p, qz = (
            recipe_dict.get("method") or {},
            recipe_dict.get("peft") or {},
            recipe_dict.get("quantization") or {},
        )
        lines += [
            f"- recipe: `{recipe.name if recipe else ''}` (sha256 `{man['recipe_sha256'][:16]}…`)",
            f"- method: `{m.get('name', 'score')}`, loss `{m.get('loss', '—')}` {m.get('loss_args') or ''}".rstrip(),
            f"- LoRA: {'r=' + str(p.get('r')) + ', alpha=' + str(p.get('alpha')) if p.get('enabled') else 'no'}"
            + (f"; QLoRA {qz.get('quant_type', 'nf4')}" if qz.get("load_in_4bit") else ""),
            f"- training arguments: `{json.dumps(recipe_dict.get('training') or {}, sort_keys=True)}`",
            f"- seed: {recipe_dict.get('seed', '—')}",
        ]
    else:
        lines.append("- no recipe was given (pass `--recipe`, or keep `recipe.yaml` in the model folder)")
    if source.get("lora"):
        lines.append(f"- adapter: `{json.dumps(source['lora'], sort_keys=True)}`")
    lines += ["", "## Training data", ""]
    if man["data_sha256"]:
        lines += [
            f"- `{f}`" + (f" (sha256 `{h[:16]}…`)" if h else " (not found here)")
            for f, h in man["data_sha256"].items()
        ]
    else:
        lines.append("- not recorded")
    lines += ["", "## Evaluation", ""]
    lines += evaluation_table(results) if results else ["- no results JSON was given (`--results`)"]
    if results:
        lines.append(
            f"\nThe card's metadata (model-index) carries the results of system `{facts['eval_system']}`."
            if facts["eval_system"]
            else "\nNo system of the results JSON is this model (`--results-system`), so the metadata has none."
        )
    lines += ["", "## Scoring contract", "", *contract_in_words(c)]
    if notes:
        lines += ["", *[f"> {n}" for n in notes]]
    lines += ["", "## Usage with plain transformers", "", *usage(c, name)]
    parity = (source.get("parity") or {}).get("checks") or []
    if parity:
        lines += [
            "",
            "## Parity checks (float32)",
            "",
            "| check | max abs diff | tolerance | pairs |",
            "|---|---|---|---|",
        ]
        for p in parity:
            tol = f"{p['tolerance']:g}" if p.get("tolerance") is not None else "reported"
            lines.append(f"| {p['name']} | {p['max_abs_diff']:.3g} | {tol} | {p['n_pairs']} |")
    lines += [
        "",
        "## Reproducibility manifest",
        "",
        "```json",
        json.dumps(man, indent=2, sort_keys=False),
        "```",
        "",
    ]
    card = ModelCard("---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(lines))
    # parsed back by huggingface_hub: the metadata round-trips (a malformed field raises here, not on the hub)
    if card.data.to_dict() != data.to_dict():
        raise ValueError("model card metadata does not round-trip through huggingface_hub")
    return str(card)


def write_card(directory: str | os.PathLike, **kwargs: Any) -> Path:
    directory = Path(directory)
    text = render_card(directory, **kwargs)
    path = directory / "README.md"
    with atomic_write(path) as fh:
        fh.write(text)
    return path


def main(argv: list[str]) -> int:
    """``python -m rerank_align.export.card <dir> [--results R] [--recipe Y] [--data F ...]``: rewrite a card."""
    from rerank_align.scoring.contract import ScoringContract

    p = argparse.ArgumentParser(prog="rerank-align card", description="(Re)write README.md of a model folder")
    p.add_argument("directory")
    p.add_argument("--results")
    p.add_argument("--recipe")
    p.add_argument("--data", action="append", default=[])
    p.add_argument(
        "--results-system", help="the system of the results JSON that is this model (default: its name)"
    )
    p.add_argument("--license", help="license id for the metadata (default: the base model card's)")
    args = p.parse_args(argv)
    d = Path(args.directory)
    source: dict = {"operation": "save"}
    for report in ("merge_report.json", "export.json"):
        if (d / report).is_file():
            source = json.loads((d / report).read_text(encoding="utf-8"))

    recipe = Path(args.recipe) if args.recipe else find_recipe(d)
    path = write_card(
        d,
        contract=ScoringContract.load(d),
        source=source,
        results=args.results,
        recipe=recipe,
        data_files=args.data,
        notes=source.get("notes"),
        results_system=args.results_system,
        license=args.license,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
