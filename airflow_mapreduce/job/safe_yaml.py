"""PyYAML's SafeLoader with bounds, so that no file can make loading hang or crash.

A job file is a few dozen lines. A hostile or broken one must fail fast with its line:
an alias bomb ("billion laughs") expands to billions of nodes from a few hundred bytes,
a recursive alias makes a cycle, and thousands of nested brackets exhaust Python's
recursion limit in everything that walks the document. The composer counts while it
builds the node graph, before anything walks it.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_FILE_BYTES = 256 * 1024
"""Job files are a few KiB; pure-Python PyYAML reads 256 KiB in well under a second."""
MAX_DEPTH = 50
"""Nesting of mappings and lists; the deepest real job (a pod affinity) has about 11."""
MAX_ALIASES = 50
"""Uses of *alias: job files barely need them (defaults.yaml shares settings instead)."""
MAX_NODES = 10_000
"""Values in the document with every alias expanded; real jobs have a few hundred."""


class YamlProblem(yaml.MarkedYAMLError):
    """A document this loader refuses: `problem` is the whole message, `problem_mark` where."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that bounds depth, aliases and expanded size while composing, and leaves
    dates as text: pydantic parses them and, for 2024-13-01, says where and what is wrong
    instead of PyYAML's bare ValueError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._nodes = 0
        self._path: list[str] = []
        self._anchor_sizes: dict[str, int] = {}  # expanded nodes under each finished anchor
        self._started: list[int] = []  # node counts where the anchors being composed began

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        self._path.append(_path_part(parent, index))
        try:
            if isinstance(event, yaml.AliasEvent):
                self._count_alias(event)
            else:
                self._enter(event)
            node = super().compose_node(parent, index)
        finally:
            self._path.pop()
        if not isinstance(event, yaml.AliasEvent):
            self._depth -= 1
            if (anchor := getattr(event, "anchor", None)) is not None:
                self._anchor_sizes[anchor] = self._nodes - self._started.pop()
        return node

    def _enter(self, event: yaml.Event) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._fail(
                f"nested more than {MAX_DEPTH} levels deep; job files need a few levels: "
                "flatten the value",
                event.start_mark,
            )
        if getattr(event, "anchor", None) is not None:
            self._started.append(self._nodes)
        self._count(1, event.start_mark)

    def _count_alias(self, event: yaml.AliasEvent) -> None:
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            self._fail(
                f"more than {MAX_ALIASES} aliases (*{event.anchor}); write the values out, "
                "or share settings through defaults.yaml",
                event.start_mark,
            )
        if event.anchor in self.anchors and event.anchor not in self._anchor_sizes:
            self._fail(
                f"alias *{event.anchor} is inside the value it names (a recursive alias); "
                "a job file is a tree: write the value out",
                event.start_mark,
            )
        # An undefined anchor counts nothing here: PyYAML reports it.
        self._count(self._anchor_sizes.get(event.anchor or "", 0), event.start_mark)

    def _count(self, nodes: int, mark: Any) -> None:
        self._nodes += nodes
        if self._nodes > MAX_NODES:
            self._fail(
                f"the document expands to more than {MAX_NODES} values (aliases count each "
                "time they are used); a job file needs a few hundred: write less, or fewer "
                "aliases",
                mark,
            )

    def _fail(self, message: str, mark: Any) -> None:
        dotted = ".".join(part for part in self._path if part)
        raise YamlProblem(problem=f"{dotted or '(top level)'}: {message}", problem_mark=mark)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's own: int of 5,000 digits, !!timestamp abc...
            reason = "more than 4300 digits" if "int_max_str_digits" in str(exc) else exc
            raise YamlProblem(
                problem=f"not valid YAML: cannot read this value ({reason}); write a plain "
                "number or text, without a !! tag",
                problem_mark=node.start_mark,
            ) from exc


BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _path_part(parent: yaml.Node | None, index: Any) -> str:
    """The field name of the node being composed, as in error messages (tags.0)."""
    if parent is None:
        return ""
    if isinstance(index, yaml.ScalarNode):  # a mapping's value, under its key
        return str(index.value)
    if isinstance(index, int):  # an item of a list
        return str(index)
    return "(key)"  # a mapping's key is being composed
