"""A chat template for tiny test tokenizers: ChatML with a default system message, the format of SmolLM2-Instruct's
own template (``<|im_start|>role\\ncontent<|im_end|>\\n`` per message, ``<|im_start|>assistant\\n`` to answer)."""

from __future__ import annotations

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_chat_llama(path, *, hidden_size: int = 64, num_layers: int = 2, seed: int = 0):
    """A tiny ``LlamaForCausalLM`` (SmolLM2's architecture, tied embeddings) with the tiny byte-level tokenizer and
    :data:`CHATML`, saved to ``path``; for smoke runs of the SmolLM2 paths."""
    from rerank_align_testing.tiny import build_tiny_causal

    return build_tiny_causal(path, arch="llama", hidden_size=hidden_size, num_layers=num_layers, seed=seed)
