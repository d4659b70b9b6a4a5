"""Recipes are data (docs/design.md §5): YAML → typed dataclasses, strictly.

Each field is documented once, here, in its ``help``; ``docs/recipes.md`` is generated from these dataclasses
(``python scripts/gen_recipe_docs.py``). Cross-field contradictions are rejected by ``Recipe.check()`` at parse
time, before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rerank_align.scoring.quantization import QuantizationConfig
from rerank_align.strict import field


@dataclass(frozen=True)
class MethodSpec:
    """What a training method needs: its record format, trainer family and TRL/transformers config class."""

    data: Literal["group", "list", "preference", "prompt"]
    trainer: str
    args_class: str  # "TrainingArguments" | "SFTConfig" | "DPOConfig"
    listwise: bool = False


# A plain dict, not a registry: the train entry point reads it top to bottom.
METHODS: dict[str, MethodSpec] = {
    "score": MethodSpec("group", "score", "TrainingArguments"),
    "sft_yesno": MethodSpec("group", "sft_yesno", "SFTConfig"),
    "fullrank": MethodSpec("list", "listwise_sft", "SFTConfig", listwise=True),
    "first": MethodSpec("list", "listwise_sft", "SFTConfig", listwise=True),
    "dpo": MethodSpec("preference", "preference", "DPOConfig", listwise=True),
    "irpo": MethodSpec("list", "preference", "DPOConfig", listwise=True),
    "adpa": MethodSpec("preference", "preference", "DPOConfig", listwise=True),
    "dckd": MethodSpec("preference", "preference", "DPOConfig", listwise=True),
    "pl_dpo": MethodSpec("preference", "preference", "DPOConfig", listwise=True),
    "pg_rank": MethodSpec("group", "score", "TrainingArguments"),
}

POINTWISE_LOSSES = ("bce", "binary_ce")
TEACHER_LOSSES = ("margin_mse", "listnet_distill", "kl", "pld", "cprd")


@dataclass
class ModelConfig:
    name_or_path: str = field(help="Base model: a local folder or a hub id available offline.")
    revision: str | None = field(
        None, help="Hub revision (commit or tag) of the base model, recorded in reranker.json."
    )
    kind: Literal["yesno", "head", "listwise"] = field(
        "yesno",
        help="Scoring kind (docs/design.md §1): yes/no answer token, single-logit head, or listwise permutation.",
    )
    architecture: Literal["auto", "causal", "encoder", "vlm"] = field(
        "auto", help="Model family; 'auto' reads model_type from the base model's config.json."
    )
    template: str = field(
        "plain",
        help="Prompt template: 'qwen3', 'bge-gemma', 'plain', 'chat' (the base model's own chat template; "
        "listwise too), or a custom string with {query} and {document}.",
    )
    instruction: str | None = field(
        None, help="Text for the template's {instruction} (preset default if unset)."
    )
    formula: Literal["logit_diff", "log_softmax_yes", "yes_logit"] | None = field(
        None, help="yesno score formula; the template preset's default if unset."
    )
    list_prompt_template: str | None = field(
        None,
        help="Listwise: the prompt, with {n}, {query} and {passages} (default: RankGPT's instruction); in reranker.json.",
    )
    answer_yes: str | None = field(None, help="Answer token for 'relevant' (must be a single token).")
    answer_no: str | None = field(None, help="Answer token for 'not relevant' (must be a single token).")
    document_format: str = field(
        "{title}\n{text}", help="How a doc's title and text are joined (text alone if no title)."
    )
    max_query_length: int = field(64, help="Max query tokens (cut from truncation_side).", min=1)
    max_document_length: int = field(256, help="Max document tokens.", min=1)
    max_length: int = field(512, help="Max total tokens of a scored prompt or pair.", min=8)
    query_truncation_side: Literal["left", "right"] = field("right", help="Which end of a long query is cut.")
    document_truncation_side: Literal["left", "right"] = field(
        "right", help="Which end of a long document is cut."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        "float32", help="Weight dtype at load time."
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = field(
        "auto", help="Attention kernel; flash_attention_2 is used only when flash-attn and CUDA are present."
    )
    trust_remote_code: bool = field(False, help="Allow model code from the hub (off unless set).")
    allow_pickle: bool = field(False, help="Allow non-safetensors (pickle) weights.")
    image_min_pixels: int | None = field(
        None,
        help="VLM: fewest pixels an image is resized to (default: the base model's image processor); in reranker.json.",
        min=1,
    )
    image_max_pixels: int | None = field(
        None,
        help="VLM: most pixels an image is resized to. Qwen2-VL spends one token per 28×28 pixels and never cuts "
        "an image, so this bounds the image tokens (default: the base model's image processor).",
        min=1,
    )


@dataclass
class DataConfig:
    train_file: str | None = field(
        None,
        help="Training records (group, list or preference, per the method): a JSONL / JSON / parquet / arrow file, "
        "a `save_to_disk` folder or a Hugging Face hub dataset id, in `format` (docs/data.md).",
    )
    format: Literal["auto", "jsonl", "flagembedding", "sentence-transformers", "tevatron", "rank_llm"] = (
        field(
            "auto",
            help="Format of `train_file`: this project's JSONL, FlagEmbedding, sentence-transformers, Tevatron or "
            "rank_llm (RankZephyr / FIRST) data; 'auto' tells them apart by the keys of the first row.",
        )
    )
    dataset_config: str | None = field(
        None,
        help="Config (subset) name of a hub `train_file`, e.g. 'triplet-hard' (datasets.load_dataset's name).",
    )
    beir: str | None = field(
        None,
        help="BEIR folder (or a BeIR hub id such as BeIR/scifact, qrels from <id>-qrels) to build training "
        "groups from (with `run`).",
    )
    split: str = field(
        "train", help="Qrels split of `beir` (or the dataset split of a hub / saved `train_file`)."
    )
    run: str | None = field(
        None, help="TREC run with the candidates to mine negatives from (default: BM25 via bm25s)."
    )
    num_negatives: int = field(7, help="Negatives per group when building from a run.", min=1)
    depth: int = field(100, help="Run depth that negatives are drawn from.", min=1)
    sampling: Literal["random", "top"] = field(
        "random", help="Draw negatives at random from the depth, or best first."
    )
    teacher_files: list[str] = field(
        [], help="Teacher score files (JSONL {qid, doc_id, score} or TREC runs)."
    )
    teacher_normalization: Literal["none", "zscore", "minmax"] = field(
        "zscore", help="Per-query normalisation of each teacher before averaging several."
    )
    teacher_margin: float | None = field(
        None, help="False-negative guard: drop negatives with t_neg > t_pos - margin."
    )
    teacher_ratio: float | None = field(
        None, help="False-negative guard: drop negatives with t_neg > ratio * t_pos."
    )
    grade_negatives: bool = field(
        False,
        help="Graded qrels: judged candidates graded below a group's positive may be its negatives (2 vs 1 too).",
    )
    graded_labels: bool = field(
        False,
        help="Label each candidate with its grade (graded losses); else 1 for the positive, 0 for negatives.",
    )
    max_train_samples: int | None = field(
        None, help="Use at most this many records (after shuffling).", min=1
    )


@dataclass
class MethodConfig:
    name: Literal[
        "score", "sft_yesno", "fullrank", "first", "dpo", "irpo", "adpa", "dckd", "pl_dpo", "pg_rank"
    ] = field("score", help="Training method (see the method table in the README).")
    loss: str = field("infonce", help="Loss of the score trainer: a key of rerank_align.losses.SCORE_LOSSES.")
    loss_args: dict[str, Any] = field({}, help="Hyper-parameters of the loss (its keyword arguments).")
    group_size: int = field(
        8, help="Candidates per query in a training group (1 positive + group_size-1 negatives).", min=1
    )
    in_batch_negatives: bool = field(
        False, help="Also score each query against the other groups' documents (losses with in_batch_scores)."
    )
    chunk_size: int | None = field(
        None, help="Score groups in sub-batches of this many pairs (memory ∝ chunk).", min=1
    )
    first_lambda: float = field(
        10.0,
        help="FIRST: weight λ of the RankNet term on first-token identifier logits (L = L_LM + λ·RankNet).",
        min=0.0,
    )
    token_weight_norm: Literal["tokens", "weights"] = field(
        "tokens",
        help="fullrank: normalise the weighted token NLL by the token count (paper) or by Σ weights.",
    )
    listwise_decoding: Literal["auto", "generate", "first"] = field(
        "auto",
        help="Listwise inference saved in reranker.json: 'auto' = first for FIRST, generate for fullrank and the "
        "preference methods.",
    )
    listwise_strategy: Literal["sliding", "full"] = field(
        "sliding", help="Listwise inference: sliding windows (back to front) or one full-list pass."
    )
    listwise_window: int = field(20, help="Listwise inference: candidates per window.", min=2)
    listwise_stride: int = field(10, help="Listwise inference: window step (≤ window).", min=1)
    preference_source: Literal["qrels", "samples", "student", "pointwise"] = field(
        "qrels",
        help="dpo/adpa/dckd without a preference train_file: rejected = the first-stage order ('qrels'), the "
        "farthest by nDCG of num_samples permutations sampled from the starting model ('samples'), one sample of the "
        "starting model as it is ('student': ADPA's released semantics, the advantage applies to the student's own "
        "generation), or pointwise pairs (a higher- vs a lower-graded passage, num_samples per query; the answer is "
        "the passage to rank first).",
    )
    num_samples: int = field(
        4,
        help="Permutations sampled per list (preference_source samples; PL-DPO's ranked permutations).",
        min=1,
    )
    sample_temperature: float = field(1.0, help="Sampling temperature of those permutations.", min=1e-3)
    irpo_rounds: int = field(
        1,
        help="IRPO: >1 = iterative IRPO, the policy regenerates its lists this many times over training.",
        min=1,
    )
    teacher_model: str | None = field(
        None, help="ADPA/DCKD: the preference-aligned teacher (a model or adapter folder; same vocabulary)."
    )
    teacher_ref_model: str | None = field(
        None, help="ADPA: the aligned teacher's reference (pre-alignment) model, for the advantage."
    )
    teacher_topk: int = field(
        20,
        help="ADPA/DCKD: teacher log-probs kept on the aligned teacher's top-k tokens (0 = full vocabulary).",
        min=0,
    )
    teacher_precompute: bool = field(
        True, help="ADPA/DCKD: compute the teachers' top-k once before training and free the teachers."
    )


@dataclass
class PeftConfig:
    enabled: bool = field(False, help="Train LoRA adapters instead of all weights.")
    r: int = field(16, help="LoRA rank.", min=1)
    alpha: int = field(32, help="LoRA alpha.", min=1)
    dropout: float = field(0.05, help="LoRA dropout.", min=0.0, max=1.0)
    target_modules: list[str] | str = field(
        "all-linear", help="Modules to adapt ('all-linear' or a list of names)."
    )
    modules_to_save: list[str] = field(
        [], help="Extra modules trained in full and saved (e.g. 'score' for a head)."
    )


@dataclass
class EvalConfig:
    beir: str | None = field(None, help="BEIR folder for in-training ranking evaluation.")
    split: str = field("test", help="Qrels split used for in-training evaluation.")
    run: str | None = field(None, help="First-stage run to rerank during training.")
    depth: int = field(100, help="Candidates reranked per query.", min=1)
    max_queries: int | None = field(None, help="Evaluate on at most this many queries.", min=1)
    every_n_steps: int | None = field(
        None, help="Evaluate every N optimizer steps (None: at the end only).", min=1
    )
    metric: str = field("nDCG@10", help="ir_measures metric used to keep the best checkpoint.")
    at_start: bool = field(False, help="Also evaluate the untrained model before the first step.")
    rel: int = field(1, help="Minimum grade counted relevant for binary metrics.", min=1)


@dataclass
class Recipe:
    model: ModelConfig = field(help="The base model and its scoring contract.")
    data: DataConfig = field(DataConfig(), help="Training data.")
    method: MethodConfig = field(MethodConfig(), help="Method, loss and group layout.")
    peft: PeftConfig = field(PeftConfig(), help="LoRA settings.")
    quantization: QuantizationConfig = field(QuantizationConfig(), help="QLoRA settings.")
    eval: EvalConfig = field(EvalConfig(), help="In-training ranking evaluation.")
    training: dict[str, Any] = field(
        {},
        help="Arguments of the method's transformers TrainingArguments / TRL SFTConfig / DPOConfig, checked by name.",
    )
    seed: int = field(42, help="Seed for data sampling, initialisation and training.")
    source: str | None = field(None, help="(set by the loader) path of the recipe file.")

    @property
    def spec(self) -> MethodSpec:
        return METHODS[self.method.name]
