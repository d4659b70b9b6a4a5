"""Listwise data: list records from labels and list preferences from permutations."""
