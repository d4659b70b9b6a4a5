"""``rerank-align export <dir> --to seq-cls|cross-encoder --out <dir>``.

``seq-cls``: a ``yesno`` causal reranker becomes a single-logit ``AutoModelForSequenceClassification`` that plain
transformers (and serving stacks with a score / classification API) load. The backbone weights are copied; the
head row is built from the two lm_head rows of the answer tokens:

- ``logit_diff``: row = W_yes − W_no (bias b_yes − b_no), so the logit is z_yes − z_no exactly.
- ``yes_logit``: row = W_yes (bias b_yes).
- ``log_softmax_yes``: log p(yes | {yes, no}) = −softplus(−(z_yes − z_no)) is not linear in the hidden state, so the
  export is the ``logit_diff`` head; its logit d maps back to the original score by −softplus(−d) (monotone:
  rankings are identical). The card and ``export.json`` say so.

The new reranker.json is ``kind: head``, ``architecture: causal``, with the same template and lengths, so
``Reranker.from_pretrained`` scores the exported folder through the same encoding. Parity (≤ tolerance, float32)
is checked on the probe set twice: via ``Reranker`` and via plain transformers with the card's documented input
construction (``card.encode_pair``), right padding, the model's own last-non-pad pooling.

``cross-encoder``: an encoder ``head`` reranker is copied with ``config.json`` telling sentence-transformers to
apply no activation, and parity between ``Reranker`` and ``CrossEncoder(path).predict`` is checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from rerank_align.errors import ContractError, RerankAlignError, run_main
from rerank_align.export.card import encode_pair, write_card
from rerank_align.export.common import (
    DEFAULT_TOLERANCE,
    ParityReport,
    compare,
    enforce,
    find_recipe,
    mark_cross_encoder,
    probe_pairs,
    save_tokenizer,
    scores_of,
    torch_dtype,
)
from rerank_align.export.serving import (
    fits,
    mark_seq_cls_for_vllm,
    rendered_prompt_scores,
    right_padded_logits,
    sentence_transformers_scores,
    write_chat_template,
)
from rerank_align.io import atomic_dir, check_output, check_safetensors, write_json
from rerank_align.scoring.contract import ScoringContract, format_document, query_text
from rerank_align.scoring.modeling import is_adapter_dir, load_model, load_tokenizer
from rerank_align.scoring.reranker import Reranker


def softplus_back(d: Any) -> Any:
    """log p(yes | {yes, no}) from d = z_yes − z_no: −softplus(−d), computed stably."""
    import numpy as np

    d = np.asarray(d, dtype="float64")
    return -np.logaddexp(0.0, -d)


def _load_source(src: Path, trust_remote_code: bool) -> tuple[Any, Any]:
    contract = ScoringContract.load(src)
    if is_adapter_dir(src):
        raise ContractError(
            "this is a LoRA adapter",
            where=str(src),
            hint="run `rerank-align merge` first, then export the merge",
        )
    tokenizer = load_tokenizer(str(src), trust_remote_code=trust_remote_code)
    contract.check_tokenizer(tokenizer)
    return contract, tokenizer


def plain_transformers_scores(path: Path, queries: list, docs: list, batch_size: int = 8) -> Any:
    """Scores of an exported seq-cls folder with transformers only: ``encode_pair`` + right padding."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    contract = json.loads((path / "reranker.json").read_text(encoding="utf-8"))
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()
    pad = model.config.pad_token_id
    out = []
    for i in range(0, len(queries), batch_size):
        rows = [
            encode_pair(tok, contract, q, d)
            for q, d in zip(queries[i : i + batch_size], docs[i : i + batch_size])
        ]
        out.append(right_padded_logits(model, rows, pad))
    return np.concatenate(out).astype("float64")


def _check_out(src: Path, out: Path, overwrite: bool, *inputs: Any) -> None:
    """Before any model loads: ``out`` is new or empty (or ``overwrite``) and holds none of the inputs."""
    files = [p for x in inputs for p in (x if isinstance(x, list) else [x]) if p]
    check_output(out, overwrite=overwrite, sources=[src, *files])
    check_safetensors(src)


def to_seq_cls(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dtype: str = "float32",
    probe_file: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    results: str | None = None,
    recipe: str | None = None,
    data_files: list[str] | None = None,
    trust_remote_code: bool = False,
    overwrite: bool = False,
) -> ParityReport:
    import torch
    from transformers import AutoModelForSequenceClassification

    src, out = Path(src), Path(out)
    _check_out(src, out, overwrite, probe_file, results, recipe, data_files)
    contract, tokenizer = _load_source(src, trust_remote_code)
    if contract.kind != "yesno" or contract.architecture != "causal":
        raise ContractError(
            f"--to seq-cls exports a yesno causal reranker; this is {contract.kind}/{contract.architecture}",
            where=str(src / "reranker.json"),
            hint="an encoder head reranker is already a seq-cls model (use --to cross-encoder)",
        )
    causal = load_model(str(src), contract, dtype="float32", trust_remote_code=trust_remote_code)
    queries, docs = probe_pairs(probe_file)
    ref = scores_of(causal, tokenizer, contract, queries, docs)

    cfg = causal.config.__class__.from_dict(causal.config.to_dict())
    cfg.num_labels = 1
    cfg.architectures = None
    cfg.tie_word_embeddings = False
    cfg.pad_token_id = tokenizer.pad_token_id
    cfg.problem_type = "regression"
    try:
        seq = AutoModelForSequenceClassification.from_config(cfg, dtype=torch.float32)
    except ValueError as e:
        raise RerankAlignError(
            f"transformers has no sequence-classification class for {cfg.model_type}: {e}"
        ) from None
    head = getattr(seq, "score", None)
    if head is None:
        raise RerankAlignError(f"{type(seq).__name__} has no 'score' head; export supports decoder LMs only")
    prefix = seq.base_model_prefix
    state = {k: v for k, v in causal.state_dict().items() if k.startswith(prefix + ".")}
    missing, unexpected = seq.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"score.weight", "score.bias"}:
        raise RerankAlignError(f"backbone weights do not fit: missing {missing}, unexpected {unexpected}")

    lm_head = causal.get_output_embeddings()
    yes, no = contract.answer_token_ids["yes"], contract.answer_token_ids["no"]
    w, b = lm_head.weight.detach().float(), getattr(lm_head, "bias", None)
    linear = "yes_logit" if contract.formula == "yes_logit" else "logit_diff"
    row = w[yes] if linear == "yes_logit" else w[yes] - w[no]
    bias = None
    if b is not None:
        bias = b[yes] if linear == "yes_logit" else b[yes] - b[no]
    with torch.no_grad():
        head.weight.copy_(row.unsqueeze(0))
        if bias is not None:
            if head.bias is None:
                if float(bias.abs()) != 0.0:
                    raise RerankAlignError("lm_head has a bias but the sequence-classification head has none")
            else:
                head.bias.copy_(bias.reshape(1))
        elif head.bias is not None:
            head.bias.zero_()

    new_contract = dataclasses.replace(
        contract, kind="head", formula="head", answer_tokens={}, answer_token_ids={}
    )
    notes = [
        f"Exported from a `{contract.formula}` yes/no reranker: the head row is "
        + ("W_yes (+ b_yes)" if linear == "yes_logit" else "W_yes − W_no (+ b_yes − b_no)")
        + f" of lm_head rows {contract.answer_tokens} (ids {contract.answer_token_ids})."
    ]
    if contract.formula == "log_softmax_yes":
        notes.append(
            "log_softmax_yes is not a linear function of the hidden state, so this model outputs "
            "d = z_yes − z_no (logit_diff); the original score is log p(yes | {yes, no}) = −softplus(−d). "
            "The map is monotone: rankings are identical."
        )
    transform = "neg_softplus_neg" if contract.formula == "log_softmax_yes" else "identity"
    mapped = (lambda s: softplus_back(s)) if transform != "identity" else (lambda s: s)

    report = ParityReport()
    expected_logit = None
    target = torch_dtype(dtype)
    with atomic_dir(out) as tmp:
        if target != torch.float32:
            seq.to(target)
        seq.config.dtype = dtype
        seq.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tokenizer, src, tmp, new_contract)
        new_contract.save(tmp)
        # serving stacks read these as they are: the prompt as a query/document chat template, no [SEP] pairs,
        # and CrossEncoder's raw logit (no sigmoid)
        write_chat_template(tmp, new_contract)
        mark_seq_cls_for_vllm(tmp)
        mark_cross_encoder(tmp)
        via_reranker = scores_of(
            load_model(str(tmp), new_contract, dtype="float32"), tokenizer, new_contract, queries, docs
        )
        expected_logit = via_reranker
        via_plain = plain_transformers_scores(tmp, queries, docs)
        gated = target == torch.float32
        note = "" if gated else f"weights rounded to {dtype}"
        report.add(
            compare(
                f"export: yesno ({contract.formula}) vs seq-cls via Reranker"
                + (" through −softplus(−d)" if transform != "identity" else ""),
                ref,
                mapped(via_reranker),
                tolerance,
                gated=gated,
                note=note,
            )
        )
        report.add(
            compare(
                "export: yesno vs seq-cls via plain transformers + documented template"
                + (" through −softplus(−d)" if transform != "identity" else ""),
                ref,
                mapped(via_plain),
                tolerance,
                gated=gated,
                note=note,
            )
        )
        report.add(
            compare(
                "export: Reranker vs plain transformers (same folder)", expected_logit, via_plain, tolerance
            )
        )
        report.add(serving_parity(tmp, tokenizer, new_contract, queries, docs, via_reranker, tolerance))
        report.add(cross_encoder_vs(tmp, tokenizer, new_contract, queries, docs, via_reranker, tolerance))
        enforce(report, "export")
        source = {
            "operation": "export",
            "name": out.name,
            "to": "seq-cls",
            "source": str(src),
            "source_formula": contract.formula,
            "head": linear,
            "score_transform": transform,
            "score_transform_text": "original score = -softplus(-logit)"
            if transform != "identity"
            else "none",
            "answer_tokens": contract.answer_tokens,
            "answer_token_ids": contract.answer_token_ids,
            "dtype": dtype,
            "probe_file": probe_file,
            "notes": notes,
            "parity": report.to_dict(),
        }
        write_json(tmp / "export.json", source)

        write_card(
            tmp,
            contract=new_contract,
            source=source,
            results=results,
            recipe=Path(recipe) if recipe else find_recipe(src),
            data_files=data_files,
            notes=notes,
        )
    return report


def to_cross_encoder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    probe_file: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    results: str | None = None,
    recipe: str | None = None,
    data_files: list[str] | None = None,
    overwrite: bool = False,
) -> ParityReport:
    """Copy an encoder head reranker so that sentence-transformers CrossEncoder(path) gives the same scores."""
    src, out = Path(src), Path(out)
    _check_out(src, out, overwrite, probe_file, results, recipe, data_files)
    contract, tokenizer = _load_source(src, False)
    if contract.architecture != "encoder" or contract.kind != "head":
        raise ContractError(
            "--to cross-encoder needs an encoder head reranker", where=str(src / "reranker.json")
        )
    queries, docs = probe_pairs(probe_file)
    report = ParityReport()
    with atomic_dir(out) as tmp:
        for f in src.iterdir():
            if f.is_file() and f.name not in ("README.md",):
                shutil.copy2(f, tmp / f.name)
        save_tokenizer(tokenizer, src, tmp, contract)
        mark_cross_encoder(tmp)
        report.add(cross_encoder_parity(tmp, queries, docs, tolerance))
        enforce(report, "export")

        write_card(
            tmp,
            contract=contract,
            source={
                "operation": "export",
                "name": out.name,
                "to": "cross-encoder",
                "source": str(src),
                "parity": report.to_dict(),
            },
            results=results,
            recipe=Path(recipe) if recipe else find_recipe(src),
            data_files=data_files,
        )
    return report


def _fitting_pairs(tokenizer: Any, contract: Any, queries: list, docs: list) -> tuple[list, list, str]:
    keep = fits(tokenizer, contract, queries, docs)
    if not keep:
        raise RerankAlignError("no probe pair fits the contract's lengths; give shorter --probe-file pairs")
    pairs = [(query_text(queries[i]), format_document(docs[i], contract.document_format)) for i in keep]
    skipped = len(queries) - len(keep)
    note = (
        f"{skipped} pairs over the length limits left out (other stacks cut them their own way)"
        if skipped
        else ""
    )
    return keep, pairs, note


def serving_parity(
    path: Path, tokenizer: Any, contract: Any, queries: list, docs: list, ours: Any, tolerance: float
) -> Any:
    """The folder read as a serving stack with a score template reads it (``serving.rendered_prompt_scores``)
    vs ``Reranker``. Gated for contracts of version ≥ 2; a version-1 model was trained on per-piece ids."""
    keep, pairs, note = _fitting_pairs(tokenizer, contract, queries, docs)
    gated = contract.version >= 2
    if not gated:
        note = (
            note + "; " if note else ""
        ) + "contract version 1: trained on per-piece ids, stacks see whole strings"
    return compare(
        "serving: chat_template.jinja rendered and tokenised whole vs Reranker",
        [ours[i] for i in keep],
        rendered_prompt_scores(path, pairs),
        tolerance,
        gated=gated,
        note=note,
    )


def cross_encoder_vs(
    path: Path, tokenizer: Any, contract: Any, queries: list, docs: list, ours: Any, tolerance: float
) -> Any:
    """``CrossEncoder(path).predict`` (sentence-transformers, through the folder's chat template) vs ``Reranker``."""
    keep, pairs, note = _fitting_pairs(tokenizer, contract, queries, docs)
    gated = contract.version >= 2
    return compare(
        "sentence-transformers CrossEncoder(path).predict vs Reranker",
        [ours[i] for i in keep],
        sentence_transformers_scores(path, pairs),
        tolerance,
        gated=gated,
        note=note,
    )


def cross_encoder_parity(path: Path, queries: list, docs: list, tolerance: float) -> Any:
    """``Reranker.from_pretrained(path)`` vs ``CrossEncoder(path).predict`` on the same pairs."""
    from sentence_transformers import CrossEncoder

    rr = Reranker.from_pretrained(path, device="cpu", dtype="float32", autocast_dtype="float32")
    c, tok = rr.contract, rr.tokenizer
    # rerank_align cuts each field to its own max length first; CrossEncoder cuts only the pair at max_length.
    # The two agree by design on pairs whose fields fit, so those are compared.
    pairs = [(query_text(q), format_document(d, c.document_format)) for q, d in zip(queries, docs)]
    fits = [
        i
        for i, (q, d) in enumerate(pairs)
        if len(tok.encode(q, add_special_tokens=False)) <= c.max_query_length
        and len(tok.encode(d, add_special_tokens=False)) <= c.max_document_length
    ]
    if not fits:
        raise RerankAlignError(
            "no probe pair fits the contract's field lengths; give shorter --probe-file pairs"
        )
    ours = rr.score_pairs([queries[i] for i in fits], [docs[i] for i in fits])
    ce = CrossEncoder(str(path), device="cpu")
    theirs = ce.predict([pairs[i] for i in fits], batch_size=8, convert_to_numpy=True)
    skipped = len(pairs) - len(fits)
    note = (
        f"{skipped} pairs longer than the field limits left out (truncated differently by design)"
        if skipped
        else ""
    )
    return compare("CrossEncoder(path).predict vs Reranker", ours, theirs, tolerance, note=note)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rerank-align export", description="Export a reranker to another model shape."
    )
    p.add_argument("directory", help="a saved (merged) reranker folder with reranker.json")
    p.add_argument("--to", required=True, choices=["seq-cls", "cross-encoder"])
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out (only once the new model is complete)",
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--probe-file", help="JSONL of group records to probe with (default: built-in pairs)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    p.add_argument("--results", help="results JSON of `rerank-align eval` for the card")
    p.add_argument("--recipe")
    p.add_argument("--data", action="append", default=[])
    p.add_argument("--trust-remote-code", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    common = dict(
        probe_file=args.probe_file,
        tolerance=args.tolerance,
        results=args.results,
        recipe=args.recipe,
        data_files=args.data,
        overwrite=args.overwrite,
    )
    if args.to == "seq-cls":
        report = to_seq_cls(
            args.directory, args.out, dtype=args.dtype, trust_remote_code=args.trust_remote_code, **common
        )
    else:
        report = to_cross_encoder(args.directory, args.out, **common)
    for c in report.checks:
        print(c.line())
    print(f"exported to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
