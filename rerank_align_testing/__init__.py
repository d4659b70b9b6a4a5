"""Tiny local models, tokenizers and a synthetic learnability task, built in code (no hub access, docs/design.md §7)."""
