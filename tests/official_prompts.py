"""The official prompt constructions, written from the published code (never from rerank_align's encoder), shared
by tests/test_official_prompts.py and tests/export/test_serving.py.

- Qwen3-Reranker, model card ``process_inputs`` / ``compute_logits``.
- FlagEmbedding, bge-reranker-v2-gemma ``get_inputs`` and its "Yes" logit.
- templates without official code: the rendered prompt tokenised as one string.
- vLLM's score API reading of a sequence-classification folder (``get_score_prompt``).
"""

from __future__ import annotations

import json

import torch

# pairs with the boundary cases: a word right after "<Query>: " / "A: " (BPE merges the space into it), digits,
# punctuation, leading and trailing spaces, newlines, non-ASCII text, an empty document
PAIRS = [
    ("what causes the tides?", "The gravitational pull of the moon and the sun causes ocean tides."),
    ("what causes the tides?", "  Tidal pools host anemones, crabs and small fish.  "),
    ("kalomi nesu", "kalomi tavo risu kalomi nesu pezu"),
    ("123 kalomi", "2024: gafi zuta loka\nmine suvo"),
    ("who wrote Les Misérables", "Victor Hugo published Les Misérables in 1862."),
    (" leading space", "trailing space "),
    ("yes", "no"),
    ("empty document", ""),
    ("a", "b"),
]
LONG_DOC = "kalomi tavo risu pezu gafi zuta loka mine suvo vota ripe suta " * 40


QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
BGE_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing "
    "a prediction of either 'Yes' or 'No'."
)


# -- the official constructions --------------------------------------------------------------------------------
def qwen3_official_ids(tok, pairs, max_length):
    prefix_tokens = tok.encode(QWEN3_PREFIX, add_special_tokens=False)
    suffix_tokens = tok.encode(QWEN3_SUFFIX, add_special_tokens=False)
    texts = [f"<Instruct>: {QWEN3_INSTRUCTION}\n<Query>: {q}\n<Document>: {d}" for q, d in pairs]
    inputs = tok(
        texts,
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
    )
    return [prefix_tokens + ids + suffix_tokens for ids in inputs["input_ids"]]


def qwen3_official_scores(model, tok, ids_list):
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    out = []
    for ids in ids_list:  # one pair at a time: no padding, positions 0..n-1
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[:, -1, :]
        pair = torch.stack([logits[:, no], logits[:, yes]], dim=1)
        out.append(torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp().item())
    return torch.tensor(out, dtype=torch.float64)


def bge_official_ids(tok, pairs, max_length):
    sep_inputs = tok("\n", add_special_tokens=False)["input_ids"]
    prompt_inputs = tok(BGE_PROMPT, add_special_tokens=False)["input_ids"]
    rows = []
    for q, p in pairs:
        q_ids = tok(f"A: {q}", add_special_tokens=False, max_length=max_length * 3 // 4, truncation=True)
        p_ids = tok(f"B: {p}", add_special_tokens=False, max_length=max_length, truncation=True)
        # prepare_for_model(first, second, truncation="only_second", max_length, add_special_tokens=False), which
        # transformers 5 no longer has on fast tokenizers: the second sequence loses its last tokens until the pair fits
        first = [tok.bos_token_id] + q_ids["input_ids"]
        second = sep_inputs + p_ids["input_ids"]
        over = len(first) + len(second) - max_length
        if over > 0:
            second = second[: len(second) - over]
        rows.append(first + second + sep_inputs + prompt_inputs)
    return rows


def last_logit_scores(model, ids_list, token_ids):
    out = []
    for ids in ids_list:
        with torch.no_grad():
            z = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
        out.append(z[token_ids[0]] - (z[token_ids[1]] if len(token_ids) > 1 else 0.0))
    return torch.tensor(out, dtype=torch.float64)


def whole_string_ids(tok, template, pairs):
    return [
        tok(template.replace("{query}", q).replace("{document}", d), add_special_tokens=False)["input_ids"]
        for q, d in pairs
    ]


def padded(tok, ids_list, side):
    """The official batching: ``tokenizer.pad`` on ``side`` (Qwen3's model card loads the tokenizer with left)."""
    tok.padding_side = side
    return tok.pad({"input_ids": ids_list}, padding=True, return_tensors="pt")


def vllm_prompt_ids(path, q, d, chat_template=None):
    """vLLM's ``get_score_prompt`` for a model without a built-in score template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    cfg = json.loads((path / "config.json").read_text())
    if chat_template is not None:
        full = tok.apply_chat_template(
            [{"role": "query", "content": q}, {"role": "document", "content": d}],
            chat_template=chat_template,
            tokenize=False,
        )
        return tok(full)["input_ids"]
    if cfg.get("use_sep_token", True):  # vLLM's cross-encoder default
        return tok(text=q, text_pair=d)["input_ids"]
    return tok(text=q + d)["input_ids"]
