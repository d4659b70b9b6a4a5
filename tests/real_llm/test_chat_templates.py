"""Prompts built from the tokenizer's own chat template: the stored strings, the answer tokens, and token ids equal
to tokenising the whole rendered prompt at once."""

from __future__ import annotations

import json

import pytest

from rerank_align.errors import ContractError
from rerank_align.scoring.contract import ListFormat
from rerank_align.scoring.encode import PairEncoder
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.scoring.modeling import build_contract

SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
RANKGPT_SYSTEM = (
    "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
)
PAIRS = [
    ("0-dimensional biomaterials show inductive properties.", {"title": "A title", "text": "Body, 12 345."}),
    ("kami lolo?", "suta  vozu\n\nrika (pene) tazu: 1.5%"),
    ("Ünïcode — query “quoted”", {"title": "", "text": "  leading spaces and trailing  "}),
    ("q", {"title": "T", "text": ""}),
]


def chatml(system: str, user: str) -> str:
    """ChatML written out by hand (the format SmolLM2-Instruct's model card documents), not via apply_chat_template."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


def whole(tok, contract, query, doc) -> list[int]:
    from rerank_align.scoring.contract import format_document

    text = contract.template.replace("{query}", query).replace(
        "{document}", format_document(doc, contract.document_format)
    )
    return tok(text, add_special_tokens=False)["input_ids"]


def test_chat_yesno_template_is_the_rendered_chat(chat_tok):
    c = build_contract(
        chat_tok, base_model="x", kind="yesno", architecture="causal", template="chat", instruction="Find it"
    )
    user = "<Instruct>: Find it\n<Query>:\n{query}\n<Document>:\n{document}"
    assert c.template == chatml(SYSTEM, user)
    assert c.template_name == "chat" and c.formula == "logit_diff"
    assert c.answer_tokens == {"yes": "yes", "no": "no"}
    assert [c.answer_token_ids["yes"]] == chat_tok.encode("yes", add_special_tokens=False)
    # the contract stores the literal string: it survives a JSON round trip without the tokenizer
    again = type(c).from_dict(json.loads(c.to_json()))
    assert again.template == c.template


@pytest.mark.parametrize("query,doc", PAIRS)
def test_chat_yesno_ids_equal_whole_string_tokenisation(chat_tok, query, doc):
    c = build_contract(
        chat_tok, base_model="x", kind="yesno", architecture="causal", template="chat", max_length=4096
    )
    ids = PairEncoder(chat_tok, c).encode([query], [doc])[0]["input_ids"]
    assert ids == whole(chat_tok, c, query, doc)
    assert chat_tok.convert_ids_to_tokens(ids[-3:]) == ["<|im_start|>", "assistant", "Ċ"]


def test_no_chat_template_is_refused(chat_tok):
    import copy

    tok = copy.deepcopy(chat_tok)
    tok.chat_template = None
    with pytest.raises(ContractError, match="no chat template"):
        build_contract(tok, base_model="x", kind="yesno", architecture="causal", template="chat")


def test_a_chat_template_that_rewrites_content_is_refused(chat_tok):
    import copy

    tok = copy.deepcopy(chat_tok)
    tok.chat_template = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    with pytest.raises(ContractError, match="does not keep the message text"):
        build_contract(tok, base_model="x", kind="yesno", architecture="causal", template="chat")


def test_chat_list_prompt_is_rankgpt_in_the_chat(chat_tok):
    c = build_contract(chat_tok, base_model="x", kind="listwise", architecture="causal", template="chat")
    assert c.list_format.prompt_template == chatml(RANKGPT_SYSTEM, ListFormat().prompt_template)
    custom = "Query: {query}\n{passages}Rank the {n} passages:\n"
    c = build_contract(
        chat_tok, base_model="x", kind="listwise", architecture="causal", template="chat",
        list_format={"prompt_template": custom},
    )  # fmt: skip
    assert c.list_format.prompt_template == chatml(RANKGPT_SYSTEM, custom)


def _whole_list(tok, c, query, docs) -> list[int]:
    f = c.list_format
    passages = "".join(
        f.passage_template.replace("{identifier}", f"[{k + 1}]").replace("{document}", d)
        for k, d in enumerate(docs)
    )
    text = (
        f.prompt_template.replace("{n}", str(len(docs)))
        .replace("{query}", query)
        .replace("{passages}", passages)
    )
    return tok(text, add_special_tokens=False)["input_ids"]


def test_chat_list_prompt_decodes_to_the_rendered_string(chat_tok):
    c = build_contract(
        chat_tok, base_model="x", kind="listwise", architecture="causal", template="chat", max_length=4096
    )
    docs = ["lolo kami", "suta vozu rika"]
    p = ListPromptBuilder(chat_tok, c).build("about kami", docs)
    assert chat_tok.decode(p.input_ids) == chat_tok.decode(_whole_list(chat_tok, c, "about kami", docs))


def test_chat_list_prompt_ids_equal_whole_string_tokenisation(chat_tok):
    c = build_contract(
        chat_tok, base_model="x", kind="listwise", architecture="causal", template="chat", max_length=4096
    )
    docs = ["lolo kami", "suta vozu rika"]
    p = ListPromptBuilder(chat_tok, c).build("about kami", docs)
    assert p.input_ids == _whole_list(chat_tok, c, "about kami", docs)


# -- SmolLM2's own tokenizer (from the prepared cache; skipped where it was never prepared) --------------------------


def test_smollm2_answer_tokens_are_single_tokens(smollm2_tok):
    c = build_contract(
        smollm2_tok, base_model="smollm2-135m-instruct", kind="yesno", architecture="causal", template="chat"
    )
    # ids read from the tokenizer's vocabulary by token string, not by encoding
    vocab = smollm2_tok.get_vocab()
    assert c.answer_token_ids == {"yes": vocab["yes"], "no": vocab["no"]} == {"yes": 10407, "no": 4607}
    assert smollm2_tok.eos_token == "<|im_end|>"


def test_smollm2_chat_template_and_whole_string_ids(smollm2_tok):
    from pathlib import Path

    from rerank_align.data import load_beir

    c = build_contract(
        smollm2_tok, base_model="smollm2-135m-instruct", kind="yesno", architecture="causal", template="chat",
        instruction="Given a scientific claim, judge whether the document provides evidence that supports or refutes it",
        max_document_length=100_000, max_length=100_000,
    )  # fmt: skip
    assert c.template.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
    assert c.template.endswith("<|im_end|>\n<|im_start|>assistant\n")
    col = load_beir(Path(__file__).resolve().parents[2] / "data" / "scifact", split="test")
    qids = sorted(col.qrels)[:10]
    docs = list(col.corpus.values())[:10]
    enc = PairEncoder(smollm2_tok, c)
    queries = [col.queries[q] for q in qids for _ in docs]
    feats = enc.encode(queries, docs * len(qids))
    for q, d, f in zip(queries, docs * len(qids), feats):
        assert f["input_ids"] == whole(smollm2_tok, c, q, d)


def test_chat_list_prompt_cut_to_fit_is_still_the_canonical_tokenisation(chat_tok):
    """Passages cut by the budget: the ids are the tokenizer's own encoding of the text they decode to (what a
    serving engine would compute from that text), and the prompt fits."""
    c = build_contract(
        chat_tok, base_model="x", kind="listwise", architecture="causal", template="chat", max_length=4096
    )
    docs = [" ".join(["lolo kami suta vozu"] * 30), "suta vozu rika", " ".join(["rika pene"] * 40)]
    full = ListPromptBuilder(chat_tok, c).build("about kami", docs)
    c.max_length = len(full.input_ids) - 60
    b = ListPromptBuilder(chat_tok, c)
    p = b.build("about kami", docs)
    assert p.truncated and len(p.input_ids) + b.answer_reserve(3) <= c.max_length
    assert p.input_ids == chat_tok(chat_tok.decode(p.input_ids), add_special_tokens=False)["input_ids"]
    assert p.passage_tokens[1] == full.passage_tokens[1]  # the short passage is not cut


def test_smollm2_list_prompt_ids_equal_whole_string_tokenisation(smollm2_tok):
    from pathlib import Path

    from rerank_align.data import load_beir
    from rerank_align.scoring.contract import format_document

    c = build_contract(
        smollm2_tok, base_model="smollm2-135m-instruct", kind="listwise", architecture="causal", template="chat",
        max_document_length=100_000, max_length=100_000,
    )  # fmt: skip
    col = load_beir(Path(__file__).resolve().parents[2] / "data" / "scifact", split="test")
    docs = list(col.corpus.values())
    b = ListPromptBuilder(smollm2_tok, c)
    for i, q in enumerate(sorted(col.qrels)[:5]):
        window = docs[10 * i : 10 * i + 10]
        texts = [format_document(d, c.document_format) for d in window]
        p = b.build(col.queries[q], window)
        assert p.input_ids == _whole_list(smollm2_tok, c, col.queries[q], texts)
