"""Recipes are data (docs/design.md §5): YAML → typed dataclasses, strictly.

Each field is documented once, in its ``help``: here, or for the ``method:`` keys in its family's section
(``config/<family>_config.py``); ``docs/recipes.md`` is generated from these dataclasses
(``python scripts/gen_recipe_docs.py``). Cross-field contradictions are rejected by ``config.load.check`` (the
method family's rules first) at parse time, before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rerank_align.config.distill_preference_config import DistillPreferenceMethod
from rerank_align.config.dpo_config import DPOMethod
from rerank_align.config.list_preference_config import ListPreferenceMethod
from rerank_align.config.listwise_config import ListwiseMethod
from rerank_align.config.method_section import MethodSection
from rerank_align.config.score_config import ScoreMethod
from rerank_align.config.sft_yesno_config import SFTYesNoMethod
from rerank_align.scoring.quantization import QuantizationConfig
from rerank_align.strict import field

# The one table of methods: a method name → its family's config section (rerank_align/config/<family>_config.py),
# which names the trainer module that builds it (rerank_align/training/<family>_trainer.py).
METHODS: dict[str, type[MethodSection]] = {
    "score": ScoreMethod,
    "sft_yesno": SFTYesNoMethod,
    "fullrank": ListwiseMethod,
    "first": ListwiseMethod,
    "dpo": DPOMethod,
    "irpo": ListPreferenceMethod,
    "adpa": DistillPreferenceMethod,
    "dckd": DistillPreferenceMethod,
    "pl_dpo": ListPreferenceMethod,
    "pg_rank": ScoreMethod,
}

MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]


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
    list_identifier: str | None = field(
        None,
        help="Listwise: how candidates are numbered, '[{i}]' (default: [1], [2], ...) or '[{a}]' (letters, at most "
        "26: FIRST's choice; needed where multi-digit numbers share a first token, e.g. SmolLM2 or Qwen).",
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
    shuffle_candidates: bool = field(
        False,
        help="List records: put each list's candidates in a seeded random order (the target ranking follows), so "
        "that the input position carries no relevance signal (RankZephyr's shuffled-input training). Without it, "
        "lists in first-stage order teach a listwise model to copy that order.",
    )
    list_size: int | None = field(
        None,
        help="List records built from qrels: candidates per list, drawn from each query's top `depth` (default: the "
        "whole top `depth`, one list per query).",
        min=2,
    )
    lists_per_query: int = field(
        1,
        help="List records built from qrels: distinct lists of `list_size` drawn per query, each with a judged-"
        "relevant candidate (few judged queries, e.g. TREC DL's 54 a year, still give enough lists).",
        min=1,
    )


@dataclass
class MethodConfig(
    DistillPreferenceMethod, ListPreferenceMethod, ListwiseMethod, SFTYesNoMethod, ScoreMethod
):
    """The keys of every method family's section; each family reads its own (config/<family>_config.py).

    The family of a method is ``METHODS[name]``, reached as ``Recipe.family``: read its class attributes
    (records, args_class, listwise, trainer) there, not through this union of every family."""

    name: MethodName = field("score", help="Training method (see the method table in the README).")


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
    layers_to_transform: list[int] | None = field(
        None,
        help="Adapt only these transformer blocks (peft's LoraConfig.layers_to_transform; None: all). Adapting "
        "only the top blocks also skips the backward pass below the lowest one: SmolLM2's top 15 of 30 blocks "
        "train 1.6x faster per step (bench/bench.py lora-layers).",
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
    def family(self) -> type[MethodSection]:
        """The config section of the method's family: its records, arguments class, trainer and checks."""
        return METHODS[self.method.name]
