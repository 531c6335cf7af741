"""YAML read with its line numbers kept, so a problem found by validation can name the line
of the key it is about."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Document:
    """One YAML file: its data and its node tree (for line numbers)."""

    def __init__(self, text: str) -> None:
        # A safe loader: a repository file is data; no tag may construct Python objects. Parsed
        # once, by libyaml where PyYAML has it (every Runtime loads the repository: the pure
        # Python parser, twice, was 100 ms of each), and the data is built from that tree.
        loader = _SafeLoader(text)
        try:
            self.node = loader.get_single_node()
            self.data: Any = loader.construct_document(self.node) if self.node else None
        finally:
            loader.dispose()

    def line(self, loc: Sequence[Any]) -> int | None:
        """The 1-based line of the deepest key or item of ``loc`` that exists."""
        node = self.node
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = next((kv for kv in node.value if kv[0].value == str(part)), None)
                if found is None:
                    break
                line, node = found[0].start_mark.line + 1, found[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line


def syntax_line(exc: yaml.YAMLError) -> int | None:
    """The 1-based line a YAML syntax error points at."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None
