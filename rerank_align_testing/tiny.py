"""Tiny models and tokenizers for tests and recipe smoke runs, built locally (never from the hub).

- ``build_tiny_causal``: a ~100k-parameter Qwen3 (or Qwen2) causal LM with a byte-level BPE tokenizer trained here,
  in which "yes", "no", "Yes" and "No" are single tokens and the chat markers are special tokens.
- ``build_tiny_qwen2_vl``: a ~200k-parameter Qwen2-VL (2 text layers, a 1-block vision tower, patch 14, merge 2)
  with the same tokenizer plus the vision special tokens, and a Qwen2-VL image processor limited to 56×56 pixels.
- ``build_tiny_bert``: a tiny BERT cross-encoder (``BertForSequenceClassification``, num_labels=1) with a
  WordPiece tokenizer trained here.
"""

from __future__ import annotations

from pathlib import Path

from rerank_align.scoring.templates import PRESETS
from rerank_align_testing.chat import CHATML
from rerank_align_testing.synthetic import vocabulary

SPECIAL_CAUSAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<bos>"]
SPECIAL_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _training_texts() -> list[str]:
    keywords, fillers = vocabulary()
    words = keywords + fillers
    texts = [p.template for p in PRESETS.values()] * 20
    texts += ["yes no Yes No yes no"] * 200
    texts += ["Query: Document: Relevant: Passage Search query rank the passages [1] > [2] > [3]"] * 50
    texts += [" ".join(words[i : i + 12]) for i in range(0, len(words), 3)] * 30
    texts += [w for w in words for _ in range(20)]
    texts += [f"[{i}]" for i in range(1, 41)] * 20
    return texts


def train_causal_tokenizer(vocab_size: int = 1200):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_CAUSAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_training_texts(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", bos_token="<bos>"
    )
    for word in ("yes", "no", "Yes", "No"):
        assert len(fast.encode(word, add_special_tokens=False)) == 1, word
    return fast


def build_tiny_causal(
    path: str | Path,
    *,
    arch: str = "qwen3",
    hidden_size: int = 64,
    num_layers: int = 2,
    seed: int = 0,
    tie_word_embeddings: bool = True,
) -> Path:
    """Save a tiny causal LM + tokenizer to ``path`` and return it.

    Tied by default, like Qwen3-0.6B, so merge/export paths see tied weights. Learning from scratch with a
    full-vocabulary loss needs ``tie_word_embeddings=False`` (docs/learnability.md; likely because under Adam the softmax
    moves every tied row in a common direction and drowns the random token identities)."""
    import torch
    import transformers

    path = Path(path)
    tok = train_causal_tokenizer()
    # Qwen's chat format, so recipes with `template: chat` run on the tiny model too
    tok.chat_template = CHATML
    common = dict(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    if arch == "qwen3":
        config = transformers.Qwen3Config(head_dim=hidden_size // 4, **common)
        cls = transformers.Qwen3ForCausalLM
    elif arch == "qwen2":
        config = transformers.Qwen2Config(**common)
        cls = transformers.Qwen2ForCausalLM
    elif arch == "llama":  # SmolLM2's architecture
        config = transformers.LlamaConfig(**common)
        cls = transformers.LlamaForCausalLM
    else:
        raise ValueError(f"unknown tiny arch {arch!r}")
    torch.manual_seed(seed)
    model = cls(config)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def build_tiny_qwen2_vl(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    min_pixels: int = 28 * 28,
    max_pixels: int = 56 * 56,
    seed: int = 0,
) -> Path:
    """Save a tiny ``Qwen2VLForConditionalGeneration`` + tokenizer + image processor to ``path`` and return it.

    Images are resized to 28-56 pixels a side: 1-4 image tokens each (patch 14, 2×2 merge), so tests stay fast."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    path = Path(path)
    tok = train_causal_tokenizer()
    tok.add_tokens(VISION_TOKENS, special_tokens=True)
    ids = dict(zip(VISION_TOKENS, tok.convert_tokens_to_ids(VISION_TOKENS)))
    head_dim = hidden_size // 4
    half = head_dim // 2  # M-RoPE splits the rotary half-dimension over (time, height, width)
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=hidden_size,
            intermediate_size=hidden_size * 2,
            num_hidden_layers=num_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [half - 2 * (half // 3), half // 3, half // 3],
            },
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=tok.bos_token_id,
            tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=1,
            embed_dim=32,
            hidden_size=hidden_size,
            num_heads=2,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    Qwen2VLForConditionalGeneration(config).save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels).save_pretrained(path)
    return path


def build_tiny_bert(path: str | Path, *, hidden_size: int = 64, num_layers: int = 2, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = Path(path)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        _training_texts(), trainers.WordPieceTrainer(vocab_size=1000, special_tokens=SPECIAL_BERT)
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = BertConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path
