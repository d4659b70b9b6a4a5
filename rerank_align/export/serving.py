"""Files that let other stacks read a rerank_align folder as it is, and how those stacks read them.

- ``chat_template.jinja``: the contract's prompt as a chat template over two messages, role ``query`` and role
  ``document`` — the pair format of vLLM's score API (``get_score_prompt`` renders ``[{"role": "query", ...},
  {"role": "document", ...}]`` with the template given to ``vllm serve --chat-template`` and tokenises the rendered
  string) and of sentence-transformers' CrossEncoder (a pair becomes those two messages when the tokenizer has a chat
  template). Every literal is a Jinja string expression, so nothing is trimmed (transformers renders templates
  without ``keep_trailing_newline``, which would drop the final newline of Qwen3's ``<think>\\n\\n</think>\\n\\n``).
  The stacks tokenise the rendered prompt as one string: for a contract of version ≥ 2 these are the ids
  ``Reranker`` builds whenever its segments tokenise like the whole string (tested for the presets on the tiny
  tokenizer; holds for byte-level BPE whose pre-tokenizer splits at the segment boundaries) and no field is cut.
- seq-cls ``config.json``: ``use_sep_token: false`` — without it vLLM's score API builds ``tokenizer(text=q,
  text_pair=d)``, the bare pair without the prompt (vLLM's own converter for LLM rerankers writes ``false``).
- yes/no folders: sentence-transformers' module files (``Transformer`` as text-generation + ``LogitScore`` with the
  answer-token ids, activation by formula), so ``CrossEncoder(path).predict`` returns the reranker's score:
  ``logit_diff`` → LogitScore(yes, no), Identity; ``yes_logit`` → LogitScore(yes), Identity; ``log_softmax_yes`` →
  LogitScore(yes, no) then LogSigmoid (log σ(z_yes − z_no) = log p(yes | {yes, no})).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rerank_align.io import write_json
from rerank_align.scoring.contract import format_document, query_text
from rerank_align.scoring.templates import split_template

CHAT_TEMPLATE_FILE = "chat_template.jinja"
_ROLE = '(messages | selectattr("role", "eq", "{role}") | map(attribute="content") | first)'


def chat_template(template: str) -> str:
    """A Jinja chat template rendering ``template`` with the ``query`` and ``document`` messages' contents."""
    out = []
    for piece in split_template(template):
        if piece in ("{query}", "{document}"):
            out.append("{{ " + _ROLE.format(role=piece[1:-1]) + " }}")
        elif piece:
            out.append("{{ " + json.dumps(piece, ensure_ascii=False) + " }}")
    return "".join(out)


def write_chat_template(directory: Path, contract: Any, tokenizer: Any = None) -> Path | None:
    """``chat_template.jinja`` for a text template contract (None for encoders, listwise and VLM contracts). The
    tokenizer's own ``chat_template`` (if it is saved in tokenizer_config.json) is replaced by this one."""
    if contract.architecture != "causal" or contract.kind == "listwise" or not contract.template:
        return None
    path = directory / CHAT_TEMPLATE_FILE
    path.write_text(chat_template(contract.template), encoding="utf-8")
    cfg = directory / "tokenizer_config.json"
    if cfg.is_file():  # a template stored there would take precedence over the file in some loaders
        data = json.loads(cfg.read_text(encoding="utf-8"))
        if data.pop("chat_template", None) is not None:
            cfg.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def mark_seq_cls_for_vllm(directory: Path) -> None:
    """``use_sep_token: false`` in config.json: the score API joins the rendered prompt, never ``[SEP]`` pairs."""
    path = directory / "config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg["use_sep_token"] = False
    write_json(path, cfg)


ST_ACTIVATION = {
    "logit_diff": "torch.nn.modules.linear.Identity",
    "yes_logit": "torch.nn.modules.linear.Identity",
    "log_softmax_yes": "torch.nn.modules.activation.LogSigmoid",
    "head": "torch.nn.modules.linear.Identity",
}


def write_sentence_transformers_yesno(directory: Path, contract: Any) -> None:
    """The module files sentence-transformers 6.x writes for a causal-LM CrossEncoder (Transformer + LogitScore)."""
    ids = contract.answer_token_ids
    write_json(
        directory / "modules.json",
        [
            {
                "idx": 0,
                "name": "0",
                "path": "",
                "type": "sentence_transformers.base.modules.transformer.Transformer",
            },
            {
                "idx": 1,
                "name": "1",
                "path": "1_LogitScore",
                "type": "sentence_transformers.cross_encoder.modules.logit_score.LogitScore",
            },
        ],
    )
    write_json(
        directory / "sentence_bert_config.json",
        {
            "transformer_task": "text-generation",
            "modality_config": {
                "text": {"method": "forward", "method_output_name": "logits"},
                "message": {"method": "forward", "method_output_name": "logits", "format": "flat"},
            },
            "module_output_name": "causal_logits",
            "max_seq_length": contract.max_length,
        },
    )
    (directory / "1_LogitScore").mkdir(exist_ok=True)
    write_json(
        directory / "1_LogitScore" / "config.json",
        {
            "true_token_id": ids["yes"],
            "false_token_id": None if contract.formula == "yes_logit" else ids["no"],
            "module_input_name": "causal_logits",
        },
    )
    write_json(
        directory / "config_sentence_transformers.json",
        {
            "activation_fn": ST_ACTIVATION[contract.formula],
            "default_prompt_name": None,
            "model_type": "CrossEncoder",
            "prompts": {},
        },
    )


def fits(tokenizer: Any, contract: Any, queries: list, docs: list) -> list[int]:
    """Indices of the pairs whose fields and whole prompt fit the contract's limits (no truncation anywhere): other
    stacks cut long inputs their own way, so only these can be compared id for id."""
    out = []
    for i, (q, d) in enumerate(zip(queries, docs)):
        qt, dt = query_text(q), format_document(d, contract.document_format)
        rendered = contract.template.replace("{query}", qt).replace("{document}", dt)
        n = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        if (
            len(tokenizer(qt, add_special_tokens=False)["input_ids"]) < contract.max_query_length
            and len(tokenizer(dt, add_special_tokens=False)["input_ids"]) < contract.max_document_length
            and n <= contract.max_length
        ):
            out.append(i)
    return out


def sentence_transformers_scores(path: Path, pairs: list[tuple[str, str]]) -> Any:
    """``CrossEncoder(path).predict`` on text pairs, float64 (weights loaded in float32, as the parity gates)."""
    import torch
    from sentence_transformers import CrossEncoder

    ce = CrossEncoder(str(path), device="cpu", model_kwargs={"dtype": torch.float32})
    return ce.predict(pairs, batch_size=8, convert_to_numpy=True).astype("float64")


def right_padded_logits(model: Any, rows: list[list[int]], pad: int) -> Any:
    """A seq-cls model's first logit for each id list, batched with right padding (as a serving stack would)."""
    import torch

    n = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (n - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits[:, 0].float().numpy()


def rendered_prompt_scores(path: Path, pairs: list[tuple[str, str]], batch_size: int = 8) -> Any:
    """Scores of a seq-cls folder read the way a serving stack with a score template reads it: the folder's
    ``chat_template.jinja`` rendered over the query / document messages, the rendered string tokenised whole, right
    padding, the model's own last-non-pad pooling (float32)."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    template = (path / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()
    pad = model.config.pad_token_id
    out = []
    for i in range(0, len(pairs), batch_size):
        rows = []
        for q, d in pairs[i : i + batch_size]:
            text = tok.apply_chat_template(
                [{"role": "query", "content": q}, {"role": "document", "content": d}],
                chat_template=template,
                tokenize=False,
            )
            rows.append(tok(text, add_special_tokens=False)["input_ids"])
        out.append(right_padded_logits(model, rows, pad))
    return np.concatenate(out).astype("float64")
