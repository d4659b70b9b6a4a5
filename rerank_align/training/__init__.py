"""Trainers (docs/design.md §4): thin subclasses of transformers / TRL trainers that score through the contract."""
