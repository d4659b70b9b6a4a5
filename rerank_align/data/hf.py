"""Rows from wherever a training set lives: a JSONL / JSON / parquet / arrow file, a folder written by
``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict), or a Hugging Face hub id.

Every row comes with its location for error messages: ``file:line`` for JSONL, ``<source> [split] row N``
(0-based, as ``dataset[N]``) for the rest. A hub id that is not cached while the hub is offline is answered in one
line naming the dataset and the command that caches it, never with a traceback.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rerank_align.data.jsonl import read_jsonl
from rerank_align.errors import InputError

# owner/name (the hub's repository id syntax); a path that exists always wins over this reading
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow", ".gz", ".tsv", ".csv", ".txt", ".run")


def hub_offline() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def looks_like_hub_id(source: str | os.PathLike) -> bool:
    """``owner/name`` that is not a local path, has no file suffix and whose ``owner`` is not a local folder."""
    s = str(source)
    if Path(s).exists() or not _HUB_ID.match(s) or s.lower().endswith(_FILE_SUFFIXES):
        return False
    # "data/msmarco-passage" under an existing local folder "data" is a missing path, not the hub user "data"
    return not Path(s.split("/")[0]).is_dir()


def hub_miss_error(
    dataset: str, exc: BaseException | None = None, *, config: str | None = None
) -> InputError:
    """The one-line answer to a hub dataset that cannot be loaded."""
    name = f"{dataset}" + (f" (config {config!r})" if config else "")
    if hub_offline():
        return InputError(
            f"dataset {name} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1)",
            where=dataset,
            hint=f"cache it once with network access: HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 python -c "
            f"\"import datasets; datasets.load_dataset('{dataset}'"
            + (f", '{config}'" if config else "")
            + ')"; or convert it to a local file with `rerank-align data convert`',
        )
    reason = f": {type(exc).__name__}: {str(exc).splitlines()[0][:200]}" if exc is not None else ""
    return InputError(
        f"cannot load dataset {name} from the Hugging Face hub{reason}",
        where=dataset,
        hint="check the id, the config name and your network / HF_TOKEN",
    )


def _saved_dataset_dir(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def pick_split(obj: Any, source: str, split: str) -> Any:
    """A DatasetDict → its ``split``; a Dataset is returned as it is."""
    import datasets

    if isinstance(obj, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = list(obj.keys())
        if split not in obj:
            raise InputError(
                f"no split {split!r} (splits: {', '.join(splits)})",
                where=source,
                hint="set data.split / --split to one of them",
            )
        return obj[split]
    return obj


def load_dataset_object(source: str, split: str = "train", config: str | None = None) -> Any:
    """A ``datasets.Dataset`` for a saved folder, a parquet / arrow file or a hub id."""
    import datasets

    path = Path(source)
    if path.is_dir() and _saved_dataset_dir(path):
        return pick_split(datasets.load_from_disk(str(path)), source, split)
    if path.is_dir():
        files = sorted(str(p) for p in path.glob("*.parquet"))
        if not files:
            raise InputError(
                "folder is neither a saved dataset (save_to_disk) nor a folder of parquet files", where=source
            )
        return datasets.Dataset.from_parquet(files)
    if path.is_file() and path.suffix == ".parquet":
        return datasets.Dataset.from_parquet(str(path))
    if path.is_file() and path.suffix == ".arrow":
        return datasets.Dataset.from_file(str(path))
    if not looks_like_hub_id(source):
        raise InputError("file not found", where=source, hint="check the path in the recipe or command")
    try:
        obj = datasets.load_dataset(source, config)
    except Exception as e:  # noqa: BLE001 - every hub failure becomes one line naming the dataset
        raise hub_miss_error(source, e, config=config) from None
    return pick_split(obj, source, split)


def _json_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """A ``.json`` file: a JSON array of objects (rank_llm's training files), else JSON lines."""
    with open(path, encoding="utf-8") as fh:
        head = fh.read(1)
        while head and head.isspace():
            head = fh.read(1)
    if head != "[":
        yield from ((f"{path}:{n}", obj) for n, obj in read_jsonl(path))
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"invalid JSON ({e})", where=str(path)) from None
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", where=f"{path} row {i}")
        yield f"{path} row {i}", obj


def iter_rows(
    source: str | os.PathLike, split: str = "train", config: str | None = None
) -> Iterator[tuple[str, dict]]:
    """``(location, row)`` pairs of a training set, in file order."""
    source = str(source)
    path = Path(source)
    if path.is_file() and path.suffix not in (".json", ".parquet", ".arrow"):  # JSONL: file:line errors
        for lineno, obj in read_jsonl(path):
            yield f"{path}:{lineno}", obj
        return
    if path.is_file() and path.suffix == ".json":
        yield from _json_rows(path)
        return
    ds = load_dataset_object(source, split, config)
    label = f"{source} [{split}]" if not path.exists() or path.is_dir() else source
    for i, row in enumerate(ds):
        yield f"{label} row {i}", dict(row)


def first_row(source: str | os.PathLike, split: str = "train", config: str | None = None) -> tuple[str, dict]:
    for loc, row in iter_rows(source, split, config):
        return loc, row
    raise InputError("no rows", where=str(source), hint="the training set is empty")
