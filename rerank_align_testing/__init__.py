"""Tiny local models, tokenizers and a synthetic learnability task, built in code (no hub access, DESIGN §7)."""
