"""Built-in prompt templates. Each resolves to literal strings that are stored in reranker.json.

A template is one string holding the placeholders ``{query}`` and ``{document}`` exactly once each (and, before it
is resolved, optionally ``{instruction}``, ``{bos}``, ``{eos}``). Only these names are placeholders, so braces in
the text itself need no escaping. Resolution replaces ``{instruction}``/``{bos}``/``{eos}`` with literal strings;
what is saved is the literal result, never only a name.

Tokenisation (scoring/encode.py): the resolved prompt is rendered with the query and document text and handed to the
tokenizer as one string, so BPE merges across the template/field boundaries exactly as when the official code (or a
serving stack with a chat template) tokenises the whole prompt. A preset may cut the template into ``segments``
where its official code tokenises separately (Qwen3-Reranker: prefix | instruction-query-document | suffix;
FlagEmbedding's bge-reranker-v2-gemma: bos | "A: " + query | "\n" | "B: " + passage | "\n" | prompt); they are
stored literally in reranker.json. Contracts written before this rule (``version`` 1) tokenised every literal piece
and every field on its own; they keep that tokenisation, so a model scores with the ids it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

from rerank_align.errors import ContractError

FIELDS = ("query", "document")


@dataclass(frozen=True)
class TemplatePreset:
    template: str
    answer_yes: str
    answer_no: str
    formula: str
    default_instruction: str | None = None
    source: str = ""
    # where the official code tokenises separately: the template cut into consecutive pieces (concatenated they
    # give ``template``); None = the whole rendered prompt is one string for the tokenizer
    segments: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.segments is not None and "".join(self.segments) != self.template:
            raise ValueError("preset segments must concatenate to the template")


_QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
_QWEN3_MIDDLE = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
_QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

PRESETS: dict[str, TemplatePreset] = {
    # Qwen3-Reranker (Qwen/Qwen3-Reranker-0.6B model card): the system/user/assistant strings, including the
    # empty think block; the model card's score is p(yes) over {yes, no}, i.e. log_softmax_yes here.
    # The model card tokenises its fixed prefix and suffix on their own and the formatted instruction/query/document
    # text between them as one string (so BPE merges across "<Query>: " and the query, as at training time).
    "qwen3": TemplatePreset(
        template=_QWEN3_PREFIX + _QWEN3_MIDDLE + _QWEN3_SUFFIX,
        segments=(_QWEN3_PREFIX, _QWEN3_MIDDLE, _QWEN3_SUFFIX),
        answer_yes="yes",
        answer_no="no",
        formula="log_softmax_yes",
        default_instruction="Given a web search query, retrieve relevant passages that answer the query",
        source="Qwen3-Reranker model card",
    ),
    # BAAI/bge-reranker-v2-gemma (FlagEmbedding LLM reranker): "<bos>A: {query}\nB: {passage}\n{prompt}", score =
    # the logit of "Yes" at the last position. FlagEmbedding's get_inputs tokenises "A: " + query and "B: " + passage
    # as whole strings, and the "\n" separators and the prompt on their own.
    "bge-gemma": TemplatePreset(
        template="{bos}A: {query}\nB: {document}\n{instruction}",
        segments=("{bos}", "A: {query}", "\n", "B: {document}", "\n", "{instruction}"),
        answer_yes="Yes",
        answer_no="No",
        formula="yes_logit",
        default_instruction=(
            "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
            "providing a prediction of either 'Yes' or 'No'."
        ),
        source="FlagEmbedding bge-reranker-v2-gemma",
    ),
    "plain": TemplatePreset(
        template="Query: {query}\nDocument: {document}\nRelevant:",
        answer_yes="yes",
        answer_no="no",
        formula="logit_diff",
        source="rerank_align",
    ),
}


def resolve_template(template: str, *, instruction: str | None, bos: str | None, eos: str | None) -> str:
    """Replace build-time placeholders with literal strings; check {query}/{document} appear exactly once."""
    values = {"instruction": instruction, "bos": bos, "eos": eos}
    out = template
    for name, value in values.items():
        token = "{" + name + "}"
        if token in out:
            if value is None:
                raise ContractError(
                    f"template uses {token} but no value is available",
                    where="model.template",
                    hint=f"set model.{name}"
                    if name == "instruction"
                    else "the tokenizer has no such special token",
                )
            out = out.replace(token, value)
    for f in FIELDS:
        if out.count("{" + f + "}") != 1:
            raise ContractError(
                f"template must contain {{{f}}} exactly once",
                where="model.template",
                hint="e.g. 'Q: {query} D: {document}'",
            )
    return out


def split_template(template: str, fields: tuple[str, ...] = FIELDS) -> list[str]:
    """Split a template into literal pieces and ``{field}`` placeholders, e.g. ``["Q: ", "{query}", " D: ",
    "{document}", ""]``; only the names in ``fields`` are placeholders."""
    pieces: list[str] = []
    rest = template
    while True:
        positions = [(rest.find("{" + f + "}"), f) for f in fields if ("{" + f + "}") in rest]
        if not positions:
            pieces.append(rest)
            return pieces
        pos, f = min(positions)
        pieces.append(rest[:pos])
        pieces.append("{" + f + "}")
        rest = rest[pos + len(f) + 2 :]


def resolve_segments(
    segments: tuple[str, ...] | list[str] | None, *, instruction: str | None, bos: str | None, eos: str | None
) -> list[str] | None:
    """A preset's segments with the build-time placeholders replaced (the same values as its template)."""
    if segments is None:
        return None
    values = {"instruction": instruction, "bos": bos, "eos": eos}
    out = []
    for seg in segments:
        for name, value in values.items():
            if "{" + name + "}" in seg and value is not None:
                seg = seg.replace("{" + name + "}", value)
        out.append(seg)
    return out


def tokenization_segments(template: str, segments: list[str] | None, version: int) -> list[str]:
    """The consecutive pieces of ``template`` that the tokenizer sees as separate strings.

    ``version`` ≥ 2: ``segments`` if given, else the whole template. ``version`` 1 (contracts written before whole-
    string tokenisation): every literal piece and every field alone, as those models were trained."""
    if version < 2:
        return [p for p in split_template(template) if p]
    if segments:
        return list(segments)
    return [template]


# -- templates rendered from the tokenizer's own chat template -------------------------------------------------------
# ``model.template: chat`` builds the prompt from the base model's chat template (any instruct model whose tokenizer
# has one): a system message, a user message holding the instruction, query and document, and the generation prompt,
# rendered once by ``tokenizer.apply_chat_template`` with the placeholders still in it. The rendered string is what
# reranker.json stores, so training, scoring and export never call the chat template again.
#
# The fields sit right after a newline and right before one, so the text around them never merges with a field's
# first or last token under byte-level BPE: tokenising the fields on their own or the whole prompt at once gives the
# same ids (tests/real_llm/test_chat_templates.py checks this on SmolLM2's tokenizer).

CHAT_YESNO_SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
CHAT_YESNO_USER = "<Instruct>: {instruction}\n<Query>:\n{query}\n<Document>:\n{document}"
# RankGPT's system message (Sun et al. 2023, "Is ChatGPT Good at Search?", released code); the user turn is the
# contract's list prompt (ListFormat.prompt_template).
CHAT_LIST_SYSTEM = (
    "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."
)
CHAT_PRESET_NAMES = ("chat",)


def render_chat(tokenizer: object, system: str | None, user: str) -> str:
    """``system`` + ``user`` through the tokenizer's chat template with the generation prompt, as one string.

    Placeholders (``{query}``, ``{instruction}``, ...) pass through as plain text; a chat template that alters them
    (strips, escapes) is refused rather than silently producing a prompt without a field."""
    if not getattr(tokenizer, "chat_template", None):
        raise ContractError(
            "the tokenizer has no chat template",
            where="model.template",
            hint="use template plain, qwen3, bge-gemma or a custom string",
        )
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    out = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)  # type: ignore[attr-defined]
    if not isinstance(out, str) or user not in out or (system and system not in out):
        raise ContractError(
            "the chat template does not keep the message text as it is",
            where="model.template",
            hint="write the rendered prompt as a custom template string instead",
        )
    return out


def chat_yesno_preset(tokenizer: object) -> TemplatePreset:
    """The yes/no preset ``chat``: :data:`CHAT_YESNO_SYSTEM` and :data:`CHAT_YESNO_USER` in the model's own chat
    template; score = z_yes − z_no at the first answer position (right after the generation prompt)."""
    return TemplatePreset(
        template=render_chat(tokenizer, CHAT_YESNO_SYSTEM, CHAT_YESNO_USER),
        answer_yes="yes",
        answer_no="no",
        formula="logit_diff",
        default_instruction="Given a web search query, retrieve relevant passages that answer the query",
        source="rerank_align chat template (system text of the Qwen3-Reranker model card)",
    )


def chat_list_prompt(tokenizer: object, prompt_template: str) -> str:
    """A listwise ``prompt_template`` (``{n}``, ``{query}``, ``{passages}``) wrapped as the user turn of the model's
    chat template, with RankGPT's system message and the generation prompt."""
    return render_chat(tokenizer, CHAT_LIST_SYSTEM, prompt_template)
