"""YAML text -> plain Python values plus the line of every key, loaded safely.

PyYAML's composer (C version when available) gives nodes with marks; we build the
values ourselves so that we can (a) remember the line of every key for error messages,
(b) refuse duplicate keys, non-standard tags and Python object tags, (c) bound the
work an alias-heavy document (the "billion laughs" shape) can cause, and (d) refuse a
mapping key that YAML 1.1 reads as a boolean or null (``yes:``, ``on:``, ``true:``, ``~:``),
which would silently become a task named ``True`` or collide with ``"True":``.
The same loader reads ``-p`` values and ``--params-file`` (:func:`load_value`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from targetrun.errors import SpecError

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

MAX_NODES = 1_000_000  # values built, aliases counted each time they are used
MAX_VALUE_NODES = 100_000  # the same for one -p value or a params file
MAX_DEPTH = 64
_STANDARD_TAGS = frozenset(
    "tag:yaml.org,2002:" + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp")
)

Path = tuple[str, ...]


@dataclass
class Document:
    """The loaded values and where each key and value sits in the file."""

    file: str
    value: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


class YamlSyntaxError(SpecError):
    """The text is not YAML at all (as opposed to YAML that breaks a limit)."""


def load_value(text: str, source: str, *, max_nodes: int = MAX_VALUE_NODES) -> Any:
    """One YAML value (a ``-p`` value, a params file) under the Pipelinefile's limits."""
    return load_document(text, source, max_nodes=max_nodes).value


def load_document(text: str, file: str, *, max_nodes: int = MAX_NODES) -> Document:
    try:
        aliased = _check_depth(text, file)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc
        # "did not find expected ']'" is reported where the parser gave up; say where the
        # unclosed bracket, quote or block began, which is usually the line to fix.
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            problem = f"{problem} ({exc.context} that starts at line {exc.context_mark.line + 1})"
        raise YamlSyntaxError(
            f"this is not valid YAML: {problem}",
            file=file,
            line=line,
            hint="Check the indentation and quoting around that line.",
        ) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"this is not valid YAML: {exc}", file=file) from None
    except RecursionError:
        raise SpecError("the YAML nests too deeply", file=file) from None
    doc = Document(file, None)
    if node is None:
        return doc
    doc.lines[()] = node.start_mark.line + 1  # errors about the whole document name its first line, not a comment above it
    if aliased:
        _refuse_expansion(node, file, max_nodes)
    builder = _Builder(doc, max_nodes)
    doc.value = builder.build(node, (), 0)
    return doc


def _check_depth(text: str, file: str) -> bool:
    """Refuse deep nesting before composing: libyaml's composer recurses (100,000 nested
    brackets crash the process), while its event parser is a loop with a stack.

    The limit is targetrun's own and must not depend on the YAML library's: libyaml 0.2.5
    and later stop at 1,000 levels in the *scanner*, which reads ahead of the events we
    count, so a 100,000-level file fails there before we see level 65. When the fast parser
    fails, the pure-Python parser (a loop with a stack and no limit of its own) recounts up
    to the failure: if the document is already too deep there, that is the error to report;
    otherwise the library's own syntax error stands. Returns whether the text uses an alias."""
    try:
        return _count_depth(yaml.parse(text, Loader=_Loader), file)
    except SpecError:
        raise
    except yaml.YAMLError:
        if _Loader is not yaml.SafeLoader:
            try:
                _count_depth(yaml.parse(text, Loader=yaml.SafeLoader), file)
            except yaml.YAMLError:
                pass
        raise


def _count_depth(events: Iterator[yaml.Event], file: str) -> bool:
    depth = 0
    aliased = False
    for event in events:
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(f"the document nests deeper than {MAX_DEPTH} levels", file=file,
                                line=event.start_mark.line + 1 if event.start_mark else None,
                                hint="A Pipelinefile needs only a few levels.")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliased = True
    return aliased


class _TooDeep(Exception):
    pass


def _refuse_expansion(root: yaml.Node, file: str, max_nodes: int) -> None:
    """Refuse a document whose aliases expand it past ``max_nodes`` values *before*
    building any of it, naming the line where the builder would have crossed the limit.

    Why: the builder counts every value it makes, so an alias bomb was refused only after a
    million values were built (over a second of CPU for 40 bytes of YAML). Each node's
    expanded size is computed once (aliases share nodes), so this costs one visit per
    distinct node. A document nested past the depth limit through aliases (or recursive
    ones, ``&a [*a]``) is left to the builder, which reports the depth where it is."""
    sizes: dict[int, int] = {}
    try:
        total = _expanded_size(root, 0, sizes, max_nodes + 1)
    except _TooDeep:
        return
    if total <= max_nodes:
        return
    node, allowed = root, max_nodes
    while allowed > 0:  # walk the build order to the value that would be one too many
        allowed -= 1
        for child in _children(node):
            if sizes[id(child)] > allowed:
                node = child
                break
            allowed -= sizes[id(child)]
    raise SpecError(
        f"the document expands to more than {max_nodes:,} values (are YAML aliases multiplying it?)",
        file=file,
        line=node.start_mark.line + 1,
        hint="Pipelinefiles must not use aliases to build huge documents.",
    )


def _expanded_size(node: yaml.Node, depth: int, sizes: dict[int, int], cap: int) -> int:
    """How many values building ``node`` makes, counted like :class:`_Builder` (mapping
    keys too), saturating at ``cap``."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    known = sizes.get(id(node))
    if known is not None:
        return known
    total = 1
    for child in _children(node):
        total = min(cap, total + _expanded_size(child, depth + 1, sizes, cap))
    sizes[id(node)] = total
    return total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class _Builder:
    def __init__(self, doc: Document, max_nodes: int = MAX_NODES) -> None:
        self.doc = doc
        self.max_nodes = max_nodes
        self.count = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > self.max_nodes:
            raise SpecError(
                f"the document expands to more than {self.max_nodes:,} values (are YAML aliases multiplying it?)",
                file=self.doc.file,
                line=node.start_mark.line + 1,
                hint="Pipelinefiles must not use aliases to build huge documents.",
            )
        if depth > MAX_DEPTH:
            raise SpecError(
                f"the document nests deeper than {MAX_DEPTH} levels",
                file=self.doc.file,
                line=node.start_mark.line + 1,
            )
        if node.tag not in _STANDARD_TAGS:
            raise SpecError(
                f"the YAML tag {node.tag!r} is not allowed",
                file=self.doc.file,
                line=node.start_mark.line + 1,
                key=".".join(path) or None,
                hint="Pipelinefiles are loaded safely: use plain strings, numbers, lists and mappings.",
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, path + (str(i),), depth + 1) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        names: set[str] = set()
        for key_node, value_node in self._pairs(node, path):
            key = self.build(key_node, path, depth + 1)
            if isinstance(key, (list, dict)):
                raise SpecError(
                    "a mapping key must be a plain name, not a list or mapping",
                    file=self.doc.file,
                    line=key_node.start_mark.line + 1,
                )
            name = str(key)
            line = key_node.start_mark.line + 1
            if isinstance(key, bool) or key is None:
                raise SpecError(
                    f"the key {key_node.value!r} is read by YAML as {'the boolean ' + str(key).lower() if key is not None else 'null'}, "
                    "not as a name",
                    file=self.doc.file,
                    line=line,
                    key=".".join(path + (str(key_node.value),)) or None,
                    hint=f'Quote it to use it as a name: "{key_node.value}":',
                )
            if name in names:  # 1: and "1": would be one task, one parameter
                first = self.doc.lines.get(path + (name,))
                raise SpecError(
                    f"the key {name!r} appears twice (first at line {first})",
                    file=self.doc.file,
                    line=line,
                    key=".".join(path + (name,)),
                    hint="Remove or rename one of them.",
                )
            names.add(name)
            self.doc.lines[path + (name,)] = line
            result[key] = self.build(value_node, path + (name,), depth + 1)
        return result

    def _pairs(self, node: yaml.MappingNode, path: Path) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError(
                    "YAML merge keys (<<) are not supported",
                    file=self.doc.file,
                    line=key_node.start_mark.line + 1,
                    key=".".join(path) or None,
                    hint="Use `defaults:` for values every task shares.",
                )
            yield key_node, value_node

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            text = str(node.value)
            shown = text if len(text) <= 60 else f"{text[:24]}...{text[-12:]} ({len(text):,} characters)"
            reason = str(exc) if len(str(exc)) <= 200 else f"{str(exc)[:120]}..."
            if "integer string conversion" in reason:  # Python's own limit, with advice meant for programmers
                reason = f"a number of more than {sys.get_int_max_str_digits():,} digits is more than targetrun reads"
            raise SpecError(
                f"cannot read the value {shown!r}: {reason}",
                file=self.doc.file,
                line=node.start_mark.line + 1,
                key=".".join(path) or None,
            ) from None
