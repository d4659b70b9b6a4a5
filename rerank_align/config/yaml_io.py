"""YAML for recipes, suites and overrides with YAML 1.2 scalars.

PyYAML implements YAML 1.1, where ``no``, ``off``, ``yes`` and ``on`` are booleans and ``2e-5`` is a string, so
``eval_strategy: no`` would reach transformers as ``False`` and ``learning_rate: 2e-5`` as text. This loader keeps
the safe loader and resolves only ``true``/``false`` as booleans and any decimal or exponent number as a float.

Two more guards, both failing as ordinary YAML errors (the callers name the file and line):

- a key given twice in one mapping is an error naming both lines (PyYAML silently keeps the last one, so a
  second ``training:`` block would replace the whole first one);
- aliases are bounded: a document whose aliases would expand to more than :data:`MAX_EXPANDED_NODES` nodes (a
  "billion laughs" alias bomb) fails while still a small node graph, before anything expands it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from rerank_align.errors import RerankAlignError

_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"


MAX_ALIASES = 1_000
MAX_EXPANDED_NODES = 1_000_000


class Yaml12Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 core-schema booleans and floats, no duplicate keys, bounded aliases."""

    def compose_document(self) -> Any:
        self._aliases = 0
        node = super().compose_document()
        _check_expansion(node)
        return node

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases (*name)", event.start_mark
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {first.line + 1}, again at line "
                        f"{key_node.start_mark.line + 1}; keep one)",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _check_expansion(node: Any) -> None:
    """Count the nodes the document would have with every alias expanded (memoised, so linear in the graph)."""
    if node is None:
        return
    sizes: dict[int, int] = {}

    def size(n: Any) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        sizes[key] = 1  # a recursive alias counts once (the safe constructor builds it as a cycle)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        if total > MAX_EXPANDED_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes (an alias bomb?)",
                n.start_mark,
            )
        sizes[key] = total
        return total

    size(node)


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Yaml12Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`Yaml12Loader` (safe: plain data only)."""
    return yaml.load(text, Loader=Yaml12Loader)


def read_yaml_file(path: Path, what: str, error: type[RerankAlignError]) -> dict:
    """The mapping in a recipe or suite file (``what``: "recipe" / "suite"); every failure is one ``error`` naming
    the file (and the line, for a YAML error)."""
    if path.is_dir():
        raise error(
            f"is a folder, not a {what} file", where=str(path), hint=f"give the {what}'s .yaml file inside it"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} file not found", where=str(path)) from None
    except UnicodeDecodeError as e:
        raise error(
            f"{what} is not valid UTF-8 (byte {e.start})", where=str(path), hint="re-encode it as UTF-8"
        ) from None
    except PermissionError:
        raise error(f"{what} file is not readable", where=str(path), hint="check its permissions") from None
    try:
        data = load_yaml(text.removeprefix("\ufeff"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}" if mark else str(path)
        raise error(f"invalid YAML: {getattr(e, 'problem', e)}", where=loc) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"a {what} must be a mapping of sections", where=str(path))
    return data
