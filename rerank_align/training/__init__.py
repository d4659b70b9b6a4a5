"""Trainers (DESIGN §4): thin subclasses of transformers / TRL trainers that score through the contract."""
