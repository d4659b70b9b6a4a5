"""The one data path (docs/design.md §2): BEIR folders and TREC runs in, group / list / preference records out."""

from rerank_align.data.beir import (
    Collection,
    load_beir,
    read_corpus,
    read_qrels,
    read_queries,
    read_run,
    write_run,
)
from rerank_align.data.builders import groups_from_run
from rerank_align.data.records import (
    read_group_records,
    read_jsonl,
    read_list_records,
    read_preference_records,
    validate_group,
    validate_list,
    validate_preference,
)

__all__ = [
    "Collection",
    "groups_from_run",
    "load_beir",
    "read_corpus",
    "read_group_records",
    "read_jsonl",
    "read_list_records",
    "read_preference_records",
    "read_qrels",
    "read_queries",
    "read_run",
    "validate_group",
    "validate_list",
    "validate_preference",
    "write_run",
]
