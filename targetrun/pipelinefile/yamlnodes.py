"""YAML text -> plain Python values plus the line of every key, loaded safely.

PyYAML's parser (C version when available) gives events with marks; we build the
values straight from them, never holding the whole node tree (about 2 KB a task: 100,000
tasks took 210 MB more than their values), so that we can (a) remember the line of every
key for error messages, (b) refuse duplicate keys, non-standard tags and Python object
tags, (c) bound the work an alias-heavy document (the "billion laughs" shape) can cause,
and (d) refuse a mapping key that YAML 1.1 reads as a boolean or null (``yes:``,
``on:``, ``true:``, ``~:``), which would silently become a task named ``True`` or collide
with ``"True":``. The same loader reads ``-p`` values and ``--params-file`` (:func:`load_value`).

A first pass over the events (:func:`_survey`) checks the depth and sizes every alias; a
document whose aliases the events alone cannot settle (an alias to an anchor not closed
yet, one that expands past the limits, a repeated anchor, a second document) is composed
into nodes instead and built by :class:`_Builder`, whose rules both builders share
(:class:`_Rules`), so every document gets the same values, lines and errors either way.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
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
# Characters of scalar text (keys too) aliases may expand a document to: as much as a
# Pipelinefile could hold without them (locate.MAX_FILE_BYTES). Counting values alone let
# a 900 KB file alias a 900 KB string 2,000 times: 1.8 GB rendered and fingerprinted.
MAX_TEXT = 64 * 1024 * 1024
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


class LongKeyError(SpecError):
    """A ``key: value`` key past YAML's 1024 characters: YAML meant as YAML (a ``-p``
    value holding one is refused, not taken as text), which the parsers cannot read."""


def load_value(text: str, source: str, *, max_nodes: int = MAX_VALUE_NODES) -> Any:
    """One YAML value (a ``-p`` value, a params file) under the Pipelinefile's limits."""
    return load_document(text, source, max_nodes=max_nodes).value


def load_document(text: str, file: str, *, max_nodes: int = MAX_NODES) -> Document:
    try:
        survey = _survey_text(text, file, max_nodes)
        if survey.streamable:
            return _build_from_events(text, file, max_nodes)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        long_key = _long_simple_key(text, exc)
        if long_key is not None:
            raise LongKeyError(
                f"this key is {long_key[1]:,} characters long, and YAML reads a key written as "
                f"'key: value' only up to {MAX_SIMPLE_KEY} characters (quotes included)",
                file=file,
                line=long_key[0],
                hint="Use a shorter key, or write this one as an explicit key: '? ' and the key "
                     "on one line, ': ' and its value on the next.",
            ) from None
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
    return _build_from_nodes(node, survey.aliased, file, max_nodes)


MAX_SIMPLE_KEY = 1024  # YAML 1.1 §9.1.2 (and both PyYAML and libyaml): an implicit key's length
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # the breaks YAML counts lines by
_KEY_ENDS = {'"': re.compile(r'(?<!\\)"'), "'": re.compile("'")}


def _long_simple_key(text: str, exc: yaml.MarkedYAMLError) -> tuple[int, int] | None:
    """``(line, length)`` of the key that caused ``exc`` when it is a ``key: value`` key longer
    than YAML allows, else None. Both parsers stop reading a key at 1024 characters and then
    report the ':' after it as out of place ("mapping values are not allowed here", "did not
    find expected ',' or '}'", "could not find expected ':'"), which names neither the key
    nor the limit. The error's mark sits on that ':'; the key is what precedes it on the
    line: a quoted scalar back to its opening quote, or a plain one back to the indentation,
    a block indicator ('- ', '? ') or, inside brackets, the last flow indicator. A key
    measured shorter than it is (a plain block key holding ', ') keeps the parser's message."""
    mark = exc.problem_mark
    if mark is None:
        return None
    lines = _LINE_BREAK.split(text)
    if mark.line >= len(lines) or lines[mark.line][mark.column:mark.column + 1] != ":":
        return None
    row = lines[mark.line][:mark.column].rstrip(" \t")
    if row[-1:] in _KEY_ENDS:
        quote = row[-1]
        starts = [m.start() for m in _KEY_ENDS[quote].finditer(row, 0, len(row) - 1)]
        if quote == "'":  # '' inside a single-quoted scalar is one quote, not its start
            starts = [i for i in starts if not (i + 1 in starts or i - 1 in starts)]
        if not starts:
            return None
        start = starts[-1]
    else:
        flow = re.search(r"[\[{]", row) is not None
        start = max((row.rfind(c) + 1 for c in ",[{" if flow), default=0)
        while True:
            stripped = row[start:].lstrip(" \t")
            start = len(row) - len(stripped)
            if stripped[:2] not in ("- ", "? ", "-\t", "?\t"):
                break
            start += 2
    length = len(row) - start
    return (mark.line + 1, length) if length > MAX_SIMPLE_KEY else None


def _build_from_events(text: str, file: str, max_nodes: int) -> Document:
    doc = Document(file, None)
    loader = _Loader(text)
    try:
        _EventBuilder(doc, max_nodes, loader).document()
    finally:
        loader.dispose()
    return doc


def _build_from_nodes(node: yaml.Node | None, aliased: bool, file: str, max_nodes: int) -> Document:
    doc = Document(file, None)
    if node is None:
        return doc
    doc.lines[()] = node.start_mark.line + 1  # errors about the whole document name its first line, not a comment above it
    if aliased:
        _refuse_expansion(node, file, max_nodes)
    builder = _Builder(doc, max_nodes)
    doc.value = builder.build(node, (), 0)
    return doc


def _survey_text(text: str, file: str, max_nodes: int = MAX_NODES) -> _Survey:
    """Refuse deep nesting before building: libyaml's composer recurses (100,000 nested
    brackets crash the process), while its event parser is a loop with a stack.

    The limit is targetrun's own and must not depend on the YAML library's: libyaml 0.2.5
    and later stop at 1,000 levels in the *scanner*, which reads ahead of the events we
    count, so a 100,000-level file fails there before we see level 65. When the fast parser
    fails, the pure-Python parser (a loop with a stack and no limit of its own) recounts up
    to the failure: if the document is already too deep there, that is the error to report;
    otherwise the library's own syntax error stands. Returns what the events tell about the
    document's aliases (:func:`_survey`)."""
    try:
        return _survey(_parse(text, _Loader), file, max_nodes)
    except SpecError:
        raise
    except yaml.YAMLError:
        if _Loader is not yaml.SafeLoader:
            try:
                _survey(_parse(text, yaml.SafeLoader), file, max_nodes)
            except yaml.YAMLError:
                pass
        raise


def _parse(text: str, loader_class: type) -> Iterator[yaml.Event]:
    loader = loader_class(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    finally:
        loader.dispose()


@dataclass
class _Survey:
    """What one pass over the events tells: whether the document uses an alias, and
    whether :class:`_EventBuilder` can build it. It cannot when settling an alias needs the
    node tree: an alias to an anchor not closed yet (``&a [*a]``, refused for its depth
    where the builder reaches it) or never defined, an anchor named twice, a second document
    (the composer's errors), or aliases that expand the document past ``max_nodes`` values
    or :data:`MAX_DEPTH` levels (refused at the very value where building would cross)."""

    aliased: bool = False
    streamable: bool = True


@dataclass
class _Sized:
    """A node being surveyed: the values building it makes (counted like the builders,
    keys too) and how many levels sit below it."""

    anchor: str | None
    size: int = 1
    height: int = 0
    text: int = 0  # characters of its scalars (keys too), aliases expanded

    def add(self, size: int, height: int, text: int) -> None:
        self.size += size
        self.height = max(self.height, height + 1)
        self.text += text


def _survey(events: Iterator[yaml.Event], file: str, max_nodes: int) -> _Survey:
    survey = _Survey()
    open_nodes = [_Sized(None, size=0)]  # the stream itself, then each collection open here
    closed: dict[str, tuple[int, int, int]] = {}  # anchor -> (size, height, text)
    documents = 0
    expanded = 0  # characters of scalar text so far, aliases expanded
    too_much_text: int | None = None  # the line of the alias that took it past MAX_TEXT
    for event in events:
        if isinstance(event, yaml.ScalarEvent):  # most events: kept short
            if event.anchor is not None:
                survey.streamable &= _new_anchor(event.anchor, open_nodes, closed)
                closed[event.anchor] = (1, 0, len(event.value))
            parent = open_nodes[-1]
            parent.size += 1
            parent.height = parent.height or 1
            parent.text += len(event.value)
            expanded += len(event.value)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(open_nodes) > MAX_DEPTH:
                raise SpecError(f"the document nests deeper than {MAX_DEPTH} levels", file=file,
                                line=event.start_mark.line + 1 if event.start_mark else None,
                                hint="A Pipelinefile needs only a few levels.")
            survey.streamable &= _new_anchor(event.anchor, open_nodes, closed)
            open_nodes.append(_Sized(event.anchor))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            node = open_nodes.pop()
            if node.anchor is not None:
                closed[node.anchor] = (node.size, node.height, node.text)
            open_nodes[-1].add(node.size, node.height, node.text)
        elif isinstance(event, yaml.AliasEvent):
            survey.aliased = True
            size, height, text = closed.get(_alias_name(event), (max_nodes + 1, MAX_DEPTH + 1, 0))
            survey.streamable &= _alias_name(event) in closed and len(open_nodes) - 1 + height <= MAX_DEPTH
            open_nodes[-1].add(size, height, text)
            expanded += text
            if expanded > MAX_TEXT and too_much_text is None:  # (an alias the events cannot size: the composer's error)
                too_much_text = event.start_mark.line + 1 if event.start_mark else None
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            survey.streamable &= documents == 1
    survey.streamable &= not survey.aliased or open_nodes[0].size <= max_nodes
    if too_much_text is not None and open_nodes[0].size <= max_nodes:  # (too many values: that refusal first)
        raise SpecError(
            f"the document expands to more than {MAX_TEXT // (1024 * 1024)} MiB of text (are YAML aliases "
            "multiplying a long value?)", file=file, line=too_much_text,
            hint="Pipelinefiles must not use aliases to build huge documents.")
    return survey


def _alias_name(event: yaml.AliasEvent) -> str:
    assert event.anchor is not None  # the parser gives every alias its name
    return event.anchor


def _new_anchor(anchor: str | None, open_nodes: list[_Sized], closed: dict[str, tuple[int, int, int]]) -> bool:
    """Whether ``anchor`` names no other node (the composer refuses a second one)."""
    return anchor is None or (anchor not in closed and all(node.anchor != anchor for node in open_nodes))


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


class _Rules:
    """What both builders check and make, node by node and key by key: the count of values
    (keys too), the depth, the tags, the keys, the scalars."""

    def __init__(self, doc: Document, max_nodes: int = MAX_NODES) -> None:
        self.doc = doc
        self.max_nodes = max_nodes
        self.count = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def _enter(self, tag: str, line: int, path: Path, depth: int) -> None:
        self.count += 1
        if self.count > self.max_nodes:
            raise SpecError(
                f"the document expands to more than {self.max_nodes:,} values (are YAML aliases multiplying it?)",
                file=self.doc.file,
                line=line,
                hint="Pipelinefiles must not use aliases to build huge documents.",
            )
        if depth > MAX_DEPTH:
            raise SpecError(
                f"the document nests deeper than {MAX_DEPTH} levels",
                file=self.doc.file,
                line=line,
            )
        if tag not in _STANDARD_TAGS:
            raise SpecError(
                f"the YAML tag {tag!r} is not allowed",
                file=self.doc.file,
                line=line,
                key=".".join(path) or None,
                hint="Pipelinefiles are loaded safely: use plain strings, numbers, lists and mappings.",
            )

    def _refuse_merge_key(self, tag: str, line: int, path: Path) -> None:
        if tag == "tag:yaml.org,2002:merge":
            raise SpecError(
                "YAML merge keys (<<) are not supported",
                file=self.doc.file,
                line=line,
                key=".".join(path) or None,
                hint="Use `defaults:` for values every task shares.",
            )

    def _key_name(self, key: Any, text: Any, line: int, path: Path, names: set[str]) -> str:
        """The name under which ``key`` (written ``text``) is kept, once it is known to be
        a plain name that no earlier key of the mapping has."""
        if isinstance(key, (list, dict)):
            raise SpecError(
                "a mapping key must be a plain name, not a list or mapping",
                file=self.doc.file,
                line=line,
            )
        name = str(key)
        if isinstance(key, bool) or key is None:
            raise SpecError(
                f"the key {text!r} is read by YAML as {'the boolean ' + str(key).lower() if key is not None else 'null'}, "
                "not as a name",
                file=self.doc.file,
                line=line,
                key=".".join(path + (str(text),)) or None,
                hint=f'Quote it to use it as a name: "{text}":',
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
        return name

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag == _STR:  # what SafeConstructor makes of it (most scalars), without its bookkeeping
            return node.value
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
        finally:  # the constructor remembers every node it made; each of ours is made once
            self.constructor.constructed_objects.pop(node, None)


_STR = "tag:yaml.org,2002:str"


class _Builder(_Rules):
    """Builds the values of a composed node tree (the way for documents :func:`_survey`
    finds the events cannot settle)."""

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self._enter(node.tag, node.start_mark.line + 1, path, depth)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, path + (str(i),), depth + 1) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        names: set[str] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            self._refuse_merge_key(key_node.tag, line, path)
            key = self.build(key_node, path, depth + 1)
            name = self._key_name(key, key_node.value, line, path, names)
            self.doc.lines[path + (name,)] = line
            result[key] = self.build(value_node, path + (name,), depth + 1)
        return result


@dataclass
class _Anchored:
    """A value built under an anchor, to give again at each alias: the line of its node
    (where an alias used as a key is said to be), for a scalar its text (an alias key is
    checked as the node it names), and the lines of the keys below it, relative to it."""

    value: Any
    line: int
    text: str | None = None
    lines: list[tuple[Path, int]] = field(default_factory=list)


class _EventBuilder(_Rules):
    """Builds the values straight from the parser's events, in the order :class:`_Builder`
    walks the nodes. Only for documents :func:`_survey` found streamable: every alias names
    a closed anchor, and no alias makes the document too big or too deep."""

    def __init__(self, doc: Document, max_nodes: int, loader: Any) -> None:
        super().__init__(doc, max_nodes)
        self.loader = loader
        self._next: Callable[[], Any] = loader.get_event
        self.anchors: dict[str, _Anchored] = {}
        # One string per distinct key text: 100,000 tasks repeat `shell:` and `target:`, and
        # the parser makes a new string at each (~11 MB for the document, and its specs).
        self.keys: dict[str, str] = {}
        self.recording: list[tuple[int, list[tuple[Path, int]]]] = []  # anchored collections being built

    def document(self) -> None:
        event = self._next()
        while not isinstance(event, (yaml.DocumentStartEvent, yaml.StreamEndEvent)):
            event = self._next()
        if isinstance(event, yaml.StreamEndEvent):
            return
        root = self._next()
        self.doc.lines[()] = root.start_mark.line + 1  # errors about the whole document name its first line
        self.doc.value = self._node(root, (), 0)

    def _tag(self, event: Any) -> str:
        tag: str | None = event.tag
        if tag is None or tag == "!":  # as the composer resolves it
            kind = (yaml.ScalarNode if isinstance(event, yaml.ScalarEvent)
                    else yaml.MappingNode if isinstance(event, yaml.MappingStartEvent) else yaml.SequenceNode)
            value = event.value if isinstance(event, yaml.ScalarEvent) else None
            tag = self.loader.resolve(kind, value, event.implicit)
        assert tag is not None
        return tag

    def _node(self, event: Any, path: Path, depth: int) -> Any:
        if isinstance(event, yaml.AliasEvent):
            return self._alias(self.anchors[_alias_name(event)], path)
        return self._tagged_node(event, self._tag(event), path, depth)

    def _tagged_node(self, event: Any, tag: str, path: Path, depth: int) -> Any:
        line = event.start_mark.line + 1
        self._enter(tag, line, path, depth)
        if isinstance(event, yaml.ScalarEvent):
            value = event.value if tag == _STR else self._scalar(_scalar_node(event, tag), path)
            if event.anchor is not None:
                self.anchors[event.anchor] = _Anchored(value, line, event.value)
            return value
        if event.anchor is None:
            return self._collection(event, path, depth)
        anchored = _Anchored(None, line)
        self.recording.append((len(path), anchored.lines))
        anchored.value = self._collection(event, path, depth)
        self.recording.pop()
        self.anchors[event.anchor] = anchored
        return anchored.value

    def _collection(self, event: Any, path: Path, depth: int) -> Any:
        if isinstance(event, yaml.MappingStartEvent):
            return self._mapping(path, depth)
        items: list[Any] = []
        child = self._next()
        while not isinstance(child, yaml.SequenceEndEvent):
            items.append(self._node(child, path + (str(len(items)),), depth + 1))
            child = self._next()
        return items

    def _mapping(self, path: Path, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        names: set[str] = set()
        key_event = self._next()
        while not isinstance(key_event, yaml.MappingEndEvent):
            if isinstance(key_event, yaml.AliasEvent):
                anchored = self.anchors[_alias_name(key_event)]
                line, text = anchored.line, anchored.text  # a merge key was refused where it was anchored
                key = self._alias(anchored, path)
            else:
                line, tag = key_event.start_mark.line + 1, self._tag(key_event)
                text = key_event.value if isinstance(key_event, yaml.ScalarEvent) else None
                self._refuse_merge_key(tag, line, path)
                key = self._tagged_node(key_event, tag, path, depth + 1)
                if type(key) is str:
                    key = self.keys.setdefault(key, key)
            name = self._key_name(key, text, line, path, names)
            self._set_line(path + (name,), line)
            result[key] = self._node(self._next(), path + (name,), depth + 1)
            key_event = self._next()
        return result

    def _set_line(self, path: Path, line: int) -> None:
        self.doc.lines[path] = line
        for start, lines in self.recording:
            lines.append((path[start:], line))

    def _alias(self, anchored: _Anchored, path: Path) -> Any:
        """A copy of the anchored value, as :class:`_Builder` builds one at each alias. It
        is not counted: the survey found that the whole document, aliases expanded, fits
        under the limits, so no count can cross them."""
        for below, line in anchored.lines:
            self._set_line(path + below, line)
        return _copy(anchored.value)


def _scalar_node(event: Any, tag: str) -> yaml.ScalarNode:
    """The node the composer would have made of a scalar event, for the constructor."""
    start: Any = event.start_mark  # libyaml's marks, shaped as PyYAML's
    end: Any = event.end_mark
    return yaml.ScalarNode(tag, event.value, start, end, event.style)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value  # scalars (str, int, float, bool, None, dates) do not change
