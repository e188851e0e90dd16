"""Strict rendering of Pipelinefile templates (Python format strings, as in Prefect 1).

A template such as ``raw/{params.city}/{date:%Y-%m-%d}.json`` names context keys
(DESIGN.md §2). Templates are checked when the file loads -- :func:`check` names the
unknown key and the keys that exist -- and rendered per run with :func:`render`.

The renderer is not ``str.format``: ``str.format`` resolves ``{a.b}`` with ``getattr``,
so ``{params.x.__class__}`` or a parameter named ``__init__`` would walk from a value to
module globals and ``os.environ``. Here :meth:`string.Formatter.parse` only splits the
text, and :func:`resolve` looks each field up itself:

* the first name must be a context key (``date``, ``params``, ...);
* ``params.NAME`` / ``parameters[NAME]`` / ``needs.NAME`` take one name, never a dunder;
* after that only ``[i]`` on a list and ``[key]`` on a mapping -- no attribute access;
* no ``!r`` conversions, no nested ``{}`` in a format spec, and a width or precision
  of at most :data:`MAX_WIDTH` (``{today:>100000000}`` would print 100 MB).

Two refinements over plain rendering:

* :func:`render_value` returns the raw object when a string is exactly one field
  (``"{params.cities}"`` is the list, ``"{params.n}"`` the int), so ``args`` and
  ``foreach`` keep their types;
* :func:`render_shell` shell-quotes every substituted value, and refuses a placeholder
  that sits where a quoted word would not stay one word (inside quotes, a heredoc,
  backticks, a comment, after ``\\`` or ``$``): see :mod:`targetrun.shellcheck`.

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import re
import shlex
import string
from _string import formatter_field_name_split  # type: ignore[import-not-found]
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from targetrun import dateformat, redact
from targetrun.errors import TemplateError, did_you_mean
from targetrun.model import RunContext, TaskSpec
from targetrun.shellcheck import check_shell

DATE_KEYS = (
    "date",
    "today",
    "yesterday",
    "tomorrow",
    "today_nodash",
    "yesterday_nodash",
    "tomorrow_nodash",
)
BASE_KEYS = frozenset(
    DATE_KEYS
    + ("params", "parameters", "flow_name", "task_name", "task_full_name", "run_id", "task_run_count")
)
MAPPED_KEYS = frozenset(("item", "map_index"))
SHELL_KEYS = frozenset(("output", "needs"))
NAMESPACE_KEYS = frozenset(("params", "parameters", "needs"))
# Keys whose value is a list or mapping only sometimes (an item of a mapped task, a
# parameter): indexing them is checked against the value, when it is known.
INDEXABLE_KEYS = frozenset(("item",)) | NAMESPACE_KEYS
MAX_WIDTH = 4096  # the widest field and the longest precision a format spec may ask for

_FORMATTER = string.Formatter()
# The format-spec mini-language (https://docs.python.org/3/library/string.html#formatspec).
_SPEC = re.compile(
    r"(?:(?P<fill>.)?[<>=^])?[-+ ]?z?#?0?(?P<width>\d+)?[,_]?(?:\.(?P<precision>\d+))?[bcdeEfFgGnosxX%]?",
    re.DOTALL,
)

Step = tuple[bool, "str | int"]  # (is an attribute `.name`, the name or index)


class Namespace(Mapping[str, Any]):
    """``params``/``needs`` in templates: ``{params.city}`` and ``{parameters[city]}``.

    A plain read-only mapping; :func:`resolve` looks names up in it, never ``getattr``.
    """

    __slots__ = ("_kind", "_values")

    def __init__(self, kind: str, values: Mapping[str, Any]) -> None:
        self._kind = kind
        self._values = values

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Namespace, (self._kind, dict(self._values)))


def _split(name: str) -> tuple[str, tuple[Step, ...]]:
    """A field name as its first name and the ``.attr`` / ``[index]`` steps after it.

    >>> _split("params.xs[0]")
    ('params', ((True, 'xs'), (False, 0)))
    """
    if name == "" or name.isdigit():
        raise ValueError("positional fields such as {} or {0} are not allowed; name a key")
    try:
        first, rest = formatter_field_name_split(name)
        steps = tuple((bool(is_attr), key) for is_attr, key in rest)
    except ValueError as exc:
        raise ValueError(f"the field {{{name}}} is malformed ({exc})") from None
    return str(first), steps


def fields(template: str) -> list[tuple[str, tuple[str, ...], str]]:
    """The fields a template names: (first name, attribute/index chain, format spec).

    >>> fields("raw/{params.city}/{date:%Y}.json")
    [('params', ('city',), ''), ('date', (), '%Y')]
    >>> fields("{{literal}}"), fields("out/a.txt")
    ([], [])
    >>> fields("a}b")
    Traceback (most recent call last):
    ...
    ValueError: Single '}' encountered in format string
    """
    if "{" not in template and "}" not in template:  # a plain path or command: nothing to parse
        return []
    return list(_parsed_fields(template))


@functools.lru_cache(maxsize=1024)
def _parsed_fields(template: str) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """:func:`fields`, parsed once per template text: the tasks of a pipeline share a few
    (every task of a fan-out runs the same command), and a run asks for each task's twice
    (what it is made with, and whether its command writes ``{output}``)."""
    found: list[tuple[str, tuple[str, ...], str]] = []
    for _, name, spec, conversion in _FORMATTER.parse(template):
        if name is None:
            continue
        first, steps = _plain_field(name, spec, conversion)
        found.append((first, tuple(str(key) for _, key in steps), spec or ""))
    return tuple(found)


def _plain_field(name: str, spec: str | None, conversion: str | None) -> tuple[str, tuple[Step, ...]]:
    """Split a field; refuse a conversion (``!r``) or a nested field in its spec (ValueError)."""
    first, steps = _split(name)
    if conversion:
        raise ValueError(f"the conversion !{conversion} in {{{name}!{conversion}}} is not supported; remove it")
    if spec and ("{" in spec or "}" in spec):
        raise ValueError(f"the format spec of {{{name}}} holds another field; nested fields are not supported")
    return first, steps


def check(
    template: str,
    allowed: frozenset[str],
    *,
    params: Mapping[str, object],
    needs: frozenset[str] = frozenset(),
    items: list[object] | None = None,
) -> None:
    """Raise :class:`TemplateError` (without file/line; the caller adds them) if a
    template names a key the context will not have, or reads beyond it.

    ``items`` are the items of a mapped task when the Pipelinefile lists them, so that
    ``{item[0]}`` can be checked against them.

    >>> check("{params.city}/{today}", BASE_KEYS, params={"city": "x"})
    >>> check("{flow_nme}", BASE_KEYS, params={})
    Traceback (most recent call last):
    ...
    targetrun.errors.TemplateError: unknown template key 'flow_nme'; did you mean 'flow_name'?
    >>> check("{params.x.__class__}", BASE_KEYS, params={"x": "a"})
    Traceback (most recent call last):
    ...
    targetrun.errors.TemplateError: {params.x.__class__} reads the attribute '__class__' of a value; templates may read only the documented keys (params.NAME, then [index] on a list or [key] on a mapping)
    """
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"cannot parse template {template!r}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        try:
            first, steps = _plain_field(name, spec, conversion)
        except ValueError as exc:
            raise TemplateError(f"cannot parse template {template!r}: {exc}") from None
        if first not in allowed:
            raise TemplateError(
                f"unknown template key {first!r}",
                hint=did_you_mean(first, allowed) or f"Available keys: {', '.join(sorted(allowed))}.",
            )
        known: Mapping[str, object] = params if first != "needs" else dict.fromkeys(needs, "")
        value = _check_steps(name, first, steps, known, items)
        if spec and _is_date(value):
            _check_date_spec(name, spec)
        elif spec:
            _check_spec(name, spec, strict=value is not _UNKNOWN)


_UNKNOWN = object()  # a value known only when the run renders it
# What the other keys hold (text, unless listed), for checking a template at load time.
_SAMPLES: dict[str, object] = {"date": dt.datetime(2000, 1, 1), "map_index": 0, "task_run_count": 1}


def _check_steps(name: str, first: str, steps: tuple[Step, ...], known: Mapping[str, object],
                 items: list[object] | None) -> object:
    """Check a field's steps against what the file declares; return the value if known."""
    if first in NAMESPACE_KEYS:
        if not steps:
            raise TemplateError(f"{{{first}}} names no {('upstream' if first == 'needs' else 'parameter')}",
                                hint=f"Name one, e.g. {{{first}.NAME}}.")
        _, key = steps[0]
        _check_name(name, key)
        if not isinstance(key, str) or not key:
            raise TemplateError(f"{{{name}}} must name a {first} entry, as in {{{first}.NAME}}")
        if key not in known:
            _unknown_name(first, key, known)
        value: object = known[key] if first != "needs" else _UNKNOWN
        rest = steps[1:]
    elif first == "item" and items is not None:
        for item in items:
            _check_rest(name, item, steps)
        return _UNKNOWN
    else:
        value = _UNKNOWN if first in INDEXABLE_KEYS else _SAMPLES.get(first, "")
        rest = steps
    return _check_rest(name, value, rest)


def _check_rest(name: str, value: object, steps: tuple[Step, ...]) -> object:
    for is_attr, key in steps:
        if is_attr:
            raise _attribute_error(name, str(key))
        _check_name(name, key)
        if value is _UNKNOWN:
            continue
        value = _index(name, value, key)
    return value


def _check_name(name: str, key: str | int) -> None:
    if isinstance(key, str) and key.startswith("__"):
        raise TemplateError(f"{{{name}}} names {key!r}; dunder names are not template keys",
                            hint="Templates read only the documented keys.")


def _unknown_name(first: str, key: str, names: Mapping[str, object]) -> None:
    hint = did_you_mean(key, names)
    if first == "needs":
        hint = hint or f"This task needs: {', '.join(sorted(names)) or 'nothing'}."
        raise TemplateError(f"{{needs.{key}}} names {key!r}, which this task does not need", hint=hint)
    hint = hint or f"Declared parameters: {', '.join(sorted(names)) or 'none'}."
    raise TemplateError(f"{{{first}.{key}}} names the undeclared parameter {key!r}", hint=hint)


def _attribute_error(name: str, key: str) -> TemplateError:
    return TemplateError(
        f"{{{name}}} reads the attribute {key!r} of a value; templates may read only the documented keys "
        "(params.NAME, then [index] on a list or [key] on a mapping)"
    )


def _index(name: str, value: object, key: str | int) -> object:
    """``value[key]`` for a list (by position) or a mapping (by key); nothing else."""
    if isinstance(value, (list, tuple)):
        if not isinstance(key, int):
            raise TemplateError(f"{{{name}}} indexes a list with {key!r}; use a position such as [0]")
        if key >= len(value):
            raise TemplateError(f"{{{name}}}: the list has {len(value)} item{'s' if len(value) != 1 else ''}, "
                                f"so [{key}] is out of range")
        return value[key]
    if isinstance(value, Mapping):
        for candidate in (key, str(key)):
            if candidate in value:
                return value[candidate]
        raise TemplateError(f"{{{name}}}: the mapping has no key {key!r}",
                            hint=did_you_mean(str(key), [str(k) for k in value]) or None)
    raise TemplateError(f"{{{name}}} indexes a {type(value).__name__}; [..] works only on a list or a mapping")


def _is_date(value: object) -> bool:
    return isinstance(value, dt.date)  # a datetime is a date too: its spec is pendulum's or strftime's


def _check_date_spec(name: str, spec: str) -> None:
    try:
        dateformat.check(spec)
    except ValueError as exc:
        hint = ("Use strftime codes such as %Y, %m, %d, %-d or %G-W%V, and write %% for a '%' itself."
                if "%" in spec else
                "Write literal text in [brackets] (`{date:YYYY-MM-DD[T]HH}`), or use strftime "
                "codes (`{date:%G-W%V}`): a spec with a '%' is strftime's.")
        raise TemplateError(f"{{{name}:{spec}}}: {exc}", hint=hint) from None


def _check_spec(name: str, spec: str, *, strict: bool = True) -> None:
    """A standard format spec with a bounded width and precision (dates use strftime).

    Not ``strict``: the value is not known yet (an item) and may be a date, so only a
    spec that parses as a standard one is checked."""
    match = _SPEC.fullmatch(spec)
    if match is None and not strict:
        return
    if match is None:
        raise TemplateError(f"{{{name}:{spec}}} has an invalid format spec {spec!r}",
                            hint="Use a spec such as :>8, :05d or :.2f (dates take strftime codes such as %Y).")
    for part in ("width", "precision"):
        if match[part] is not None and int(match[part]) > MAX_WIDTH:
            raise TemplateError(f"{{{name}:{spec}}} asks for a {part} of {int(match[part]):,}, "
                                f"more than the {MAX_WIDTH:,} a template may use")


def resolve(name: str, context: Mapping[str, object]) -> object:
    """The value of one field, looked up by the rules above (never with ``getattr``).

    >>> resolve("params.xs[1]", {"params": Namespace("params", {"xs": ["a", "b"]})})
    'b'
    """
    try:
        first, steps = _split(name)
    except ValueError as exc:
        raise TemplateError(str(exc)) from None
    if first not in context:
        raise TemplateError(f"the template names {first!r}, which this run does not have")
    value = context[first]
    if first in NAMESPACE_KEYS:
        if not steps:
            raise TemplateError(f"{{{first}}} names no value", hint=f"Name one, e.g. {{{first}.NAME}}.")
        _, key = steps[0]
        _check_name(name, key)
        assert isinstance(value, Mapping)
        if not isinstance(key, str) or key not in value:
            raise TemplateError(f"{{{name}}} names {str(key)!r}, which this run does not have")
        value, steps = value[key], steps[1:]
    for is_attr, key in steps:
        if is_attr:
            raise _attribute_error(name, str(key))
        _check_name(name, key)
        value = _index(name, value, key)
    return value


def format_field(name: str, value: object, spec: str) -> str:
    """``format(value, spec)`` with the spec checked first; a date as Prefect 1's pendulum
    date renders (:mod:`targetrun.dateformat`: ISO 8601 alone, strftime with a '%',
    pendulum tokens without)."""
    if isinstance(value, dt.date):
        _check_date_spec(name, spec)
        try:
            return dateformat.render(value, spec)
        except (ValueError, OverflowError) as exc:
            raise TemplateError(f"cannot render template field {{{name}:{spec}}}: {exc}") from None
    if spec:
        _check_spec(name, spec)
    try:
        text = format(value, spec)
    except (ValueError, TypeError, OverflowError) as exc:  # {n:c} of a huge n overflows
        raise TemplateError(f"cannot render template field {{{name}:{spec}}}: {exc}") from None
    return _utf8_only(name, spec, text)


def _utf8_only(name: str, spec: str, text: str) -> str:
    """``text``, if it is UTF-8. Values are checked as they arrive, but ``{n:c}`` makes a
    character of any int below 0x110000 -- 55296 is a lone surrogate, which no file name,
    command line or state store can hold, and each fails on it in its own way."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        field = f"{{{name}:{spec}}}" if spec else f"{{{name}}}"
        raise TemplateError(f"{field} renders to {ascii(text)[:80]}, which is not UTF-8 text (it holds a lone "
                            "surrogate)", hint="Check the value that fills it; `:c` takes a code point that is "
                            "not between 0xD800 and 0xDFFF.") from None
    return text


def _render(template: str, context: Mapping[str, object], quote: bool, budget: RenderBudget | None) -> str:
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"cannot parse template {template!r}: {exc}") from None
    out: list[str] = []
    size = 0
    own = _command_limit() if quote else MAX_RENDERED  # (only a shell command is quoted)
    limit = own if budget is None else min(own, budget.left)
    for literal, name, spec, conversion in parsed:
        out.append(literal)
        size += len(literal)
        if size > limit:  # a long literal, rendered once more for each of many mapped children
            raise _too_long(None, len(literal), template, own if size > own else None, quote)
        if name is None:
            continue
        if conversion or (spec and ("{" in spec or "}" in spec)):
            raise TemplateError(f"template {template!r}: conversions and nested fields are not supported")
        text = format_field(name, resolve(name, context), spec or "")
        if quote:
            if size + len(text) > limit:  # (before quoting copies it: quoting only adds)
                raise _too_long(name, len(text), template, own if size + len(text) > own else None, quote)
            if "\0" in text:
                raise TemplateError(f"{{{name}}} renders to text with a NUL byte, which no shell command can hold")
            text = shlex.quote(text)
        size += len(text)
        if size > limit:
            raise _too_long(name, len(text), template, own if size > own else None, quote)
        out.append(text)
    if budget is not None:
        budget.left -= size
    return "".join(out)


# As much text as one template may render to, the limit YAML aliases have (yamlnodes.MAX_TEXT):
# a large value named many times in one small template (`{params.s} {params.s} ...`) built
# gigabytes before any check of the result could refuse it -- the memory, not the check, gave out.
MAX_RENDERED = 64 * 1024 * 1024
# As much text as every template a run renders and keeps may add up to (RenderBudget): each
# within its 64 MiB, eight arguments or a task mapped over twenty items built gigabytes. A
# run of 100,000 tasks renders a few tens of MB; a value named alone costs nothing (it is
# the value itself, not a copy).
MAX_RENDERED_IN_ALL = 256 * 1024 * 1024


class RenderBudget:
    """What the templates one run renders and keeps (every task's target, arguments, cache
    key, deps, foreach items: :class:`targetrun.resolve.TaskRenderer`) may add up to; each
    render takes its size from ``left``, and one that would go below zero is refused."""

    __slots__ = ("left",)

    def __init__(self, size: int = MAX_RENDERED_IN_ALL) -> None:
        self.left = size


@functools.cache
def _command_limit() -> int:
    """As many characters as a command line may hold here (ARG_MAX, arguments and
    environment together; 2 MiB on Linux by default): a longer one cannot start (E2BIG),
    so it is not built -- one is rendered per task as it starts, several at once with -j."""
    try:
        return min(MAX_RENDERED, max(os.sysconf("SC_ARG_MAX"), 4096))
    except (ValueError, OSError):
        return MAX_RENDERED


def _too_long(name: str | None, each: int, template: str, limit: int | None, command: bool) -> TemplateError:
    """``name``: the field whose text went over (None: the template's literal text);
    ``limit``: the template's own limit it went over (None: the run's budget)."""
    if limit is None:
        what = f"the run's templates together render to more than {MAX_RENDERED_IN_ALL // (1024 * 1024)} MiB of text"
    elif command:
        what = (f"the command renders to more than {limit:,} characters, more than a command line can hold on this "
                "system (ARG_MAX)")
    else:
        what = f"the template renders to more than {limit // (1024 * 1024)} MiB of text"
    if name is None:
        detail = f"its literal text is {each:,} characters"
    else:
        uses = sum(1 for _, field, _, _ in _FORMATTER.parse(template) if field == name)
        detail = f"{{{name}}} is {each:,} characters, named {uses:,} time{'s' if uses != 1 else ''}"
    hint = ("Pass a large value through a file (a target the command reads as {needs.TASK}, or a dep) and name "
            "the file in the template, not the value.")
    if limit is None:
        hint = ("A run keeps at most this much rendered text: name a large value alone (`x: \"{params.big}\"` passes "
                "the value itself, not a copy) or through a file, or run fewer tasks at once (fewer foreach items, "
                "fewer dates).")
    return TemplateError(f"{what} ({detail})", hint=hint)


def date_values(date: dt.datetime) -> dict[str, object]:
    """The date keys for one run date (Prefect's ``today``/``yesterday``/...).

    >>> date_values(dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc))["yesterday_nodash"]
    '20261031'
    """
    day = dt.timedelta(days=1)
    values: dict[str, object] = {"date": date}
    for key, when in (("today", date), ("yesterday", date - day), ("tomorrow", date + day)):
        values[key] = when.strftime("%Y-%m-%d")
        values[f"{key}_nodash"] = when.strftime("%Y%m%d")
    return values


def base_context(run: RunContext) -> dict[str, object]:
    """The context shared by every task of a run; task keys are added per task."""
    params = Namespace("params", run.params)
    context = date_values(run.date)
    context.update(
        params=params,
        parameters=params,
        flow_name=run.flow_name,
        run_id=run.run_id,
        task_run_count=1,
    )
    return context


def task_context(base: Mapping[str, object], task_name: str, **extra: object) -> dict[str, object]:
    context = dict(base)
    context["task_name"] = task_name
    context["task_full_name"] = task_name
    context.update(extra)
    return context


def render(template: str, context: Mapping[str, object], budget: RenderBudget | None = None) -> str:
    """Render strictly: a missing key or a bad format spec raises :class:`TemplateError`.
    ``budget``: the run's, which the rendered text is taken from (None: this template's
    own limit only -- text that is used and dropped, as a command line).

    >>> render("{a}-{b:>3}", {"a": 1, "b": "x"})
    '1-  x'
    """
    return _render(template, context, False, budget)


def render_value(value: object, context: Mapping[str, object], budget: RenderBudget | None = None) -> object:
    """Render strings (a lone field keeps its type), recurse into lists and dicts.

    >>> render_value({"n": "{n}", "s": "n={n}", "l": ["{n}"]}, {"n": 3})
    {'n': 3, 's': 'n=3', 'l': [3]}
    """
    if isinstance(value, str):
        lone = lone_field(value)
        if lone is not None:
            return resolve(lone, context)
        return render(value, context, budget)
    if isinstance(value, list):
        return [render_value(v, context, budget) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context, budget) for k, v in value.items()}
    return value


def has_fields(value: object) -> bool:
    """Whether rendering ``value`` could change it (a string with a brace, anywhere inside).

    >>> has_fields({"a": 1, "b": ["x", "{y}"]}), has_fields({"a": "plain"})
    (True, False)
    """
    if isinstance(value, str):
        return "{" in value or "}" in value
    if isinstance(value, dict):
        return any(has_fields(v) for v in value.values())
    if isinstance(value, list):
        return any(has_fields(v) for v in value)
    return False


def lone_field(template: str) -> str | None:
    """The field name when ``template`` is exactly one field (``"{params.xs}"``), else None."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError:
        return None
    if len(parsed) != 1:
        return None
    literal, name, spec, conversion = parsed[0]
    if literal or name is None or spec or conversion:
        return None
    return name


def names_a_field(template: str) -> bool:
    """Whether a template has a field at all (``{{`` and ``}}`` are text).

    >>> names_a_field("out/{{x}}.txt"), names_a_field("out/{x}.txt")
    (False, True)
    """
    try:
        return any(name is not None for _, name, _, _ in _FORMATTER.parse(template))
    except ValueError:
        return False


def literal_prefix(template: str) -> str:
    """The text before a template's first field (what no value can change).

    >>> literal_prefix("s3://b/raw/{params.x}/k"), literal_prefix("{{a}}/x")
    ('s3://b/raw/', '{a}/x')
    """
    prefix: list[str] = []
    try:
        for literal, name, _, _ in _FORMATTER.parse(template):
            prefix.append(literal)
            if name is not None:
                break
    except ValueError:
        return ""
    return "".join(prefix)


def render_shell(template: str, context: Mapping[str, object]) -> str:
    """Render a shell command, quoting every substituted value.

    The command is checked first (:func:`targetrun.shellcheck.check_shell`): a quoted
    value is one word only where the shell reads a bare word.

    >>> render_shell("echo {x} > {output}", {"x": "a; rm -rf /", "output": "o.txt"})
    "echo 'a; rm -rf /' > o.txt"
    """
    check_shell(template)
    return _render(template, context, True, None)


# -- what a value was made with (status: "made with city=berlin") --------------------

_TEXT_LIMIT = 60  # longer parameter values are shortened, with a digest so they stay distinct


def task_templates(task: TaskSpec) -> list[str]:
    """The templates a task's *value* depends on: target, shell command, cache key, deps
    (the files it reads: ``data/{params.which}.csv``) and args (strings anywhere inside).
    ``foreach`` is left out: a mapped child depends on its own item, not on the whole list."""
    found = [t for t in (task.target, task.shell, task.cache.key if task.cache else None) if t]
    found += [dep for dep in task.deps if "{" in dep]
    stack: list[object] = [task.args] if task.templated_args else []
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return found


# strftime codes that print the day or something coarser (ISO weeks, the century, ...)
_DAY_CODES = frozenset("aAbBhdeDFmyYCjUWGVuwxnt%")
_CODE = re.compile(r"%(.?)", re.DOTALL)
_PER_RUN_KEYS = frozenset(("run_id", "task_run_count"))


def varies_within_a_day(template: str) -> bool:
    """Whether two runs of one date can render ``template`` differently: it names the
    run's id or attempt count, or the run time finer than its day (``{date:%H}``; and
    ``{date}`` alone, which prints the time).

    >>> [varies_within_a_day(t) for t in ("out/{date:%Y-%m-%d}.json", "{today}/{params.x}", "{date:%H}", "{date}", "{run_id}")]
    [False, False, True, True, True]
    """
    if "{" not in template:
        return False
    try:
        named = fields(template)
    except ValueError:
        return True  # not a template: cannot tell
    for first, chain, spec in named:
        if first in _PER_RUN_KEYS:
            return True
        if first != "date":
            continue
        pendulum = dateformat.finer_than_a_day(spec)
        if chain or not spec or pendulum or (pendulum is None and any(c not in _DAY_CODES for c in _CODE.findall(spec))):
            return True
    return False


def used_keys(templates: Iterable[str], params: Iterable[str]) -> tuple[tuple[str, ...], bool]:
    """The parameters some template names, and whether one names a date key.

    >>> used_keys(["raw/{params.city}/x.json", "{parameters[n]}", "{yesterday}"], ["city", "n", "x"])
    (('city', 'n'), True)
    >>> used_keys(["{params}"], ["a", "b"])
    (('a', 'b'), False)
    """
    declared = list(params)
    names: set[str] = set()
    dated = False
    for template in templates:
        try:
            named = fields(template)
        except ValueError:
            continue  # not a template (checked at load): names nothing
        for first, chain, _ in named:
            if first in DATE_KEYS:
                dated = True
            elif first in ("params", "parameters"):
                names.update(chain[:1] if chain else declared)
    return tuple(name for name in declared if name in names), dated


def value_text(value: object) -> str:
    """A parameter value as a person passes it with ``-p``: strings bare, anything else as
    JSON; a long value is cut, with a digest of the whole so two values never read alike.

    >>> value_text("berlin"), value_text(3), value_text(["a", "b"])
    ('berlin', '3', '["a", "b"]')
    >>> len(value_text("x" * 500)) < 80
    True
    """
    text = value if isinstance(value, str) else _json(value, ascii=False)
    if len(text) <= _TEXT_LIMIT:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{text[:40]}… ({digest})"


def _json(value: object, *, ascii: bool) -> str:
    """A parameter value as JSON text, keys sorted. YAML lets one mapping mix key types
    (`{0: a, b: c}`), which Python cannot sort: those are sorted as the text JSON writes
    them, so the text stays one per value instead of failing the run after its task ran.

    >>> _json({0: "a", "b": 1}, ascii=True)
    '{"0": "a", "b": 1}'
    """
    try:
        return json.dumps(value, ensure_ascii=ascii, sort_keys=True, default=str)
    except TypeError:
        return json.dumps(_keys_as_text(value), ensure_ascii=ascii, sort_keys=True, default=str)


def _keys_as_text(value: object) -> object:
    if isinstance(value, Mapping):
        return {key if isinstance(key, str) else json.dumps(key, default=str): _keys_as_text(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_keys_as_text(item) for item in value]
    return value


_SECRET_NAME = re.compile(r"pass|secret|token|key|credential|auth|private", re.IGNORECASE)


def param_text(name: str, value: object) -> str:
    """What the store keeps and ``status`` shows of a parameter's value: :func:`value_text`,
    or for a name that looks like a credential only a digest, so a secret passed with
    ``-p`` never lands in the store or in output. A value of any name holding a password
    as URL userinfo (``postgres://app:PW@db/x``, ``app:PW@db``) keeps its password
    masked, and a digest of the whole value tells two passwords apart.

    >>> param_text("city", "berlin"), param_text("api_token", "s3cr3t").startswith("*** (")
    ('berlin', True)
    >>> param_text("db", "app:s3cr3t@db.internal/sales")
    '***@db.internal/sales (9dd423b9662e)'
    """
    if _SECRET_NAME.search(name):
        return f"*** ({_digest(value)})"
    # Masked by the value's own shape, never by secrets this process happens to know: the
    # text recorded in one run is compared with the text of the next. Masked before it is cut.
    whole = value if isinstance(value, str) else _json(value, ascii=False)
    shown = _shapes_masked(whole)
    return value_text(value) if shown == whole else f"{value_text(shown)} ({_digest(value)})"


def _digest(value: object) -> str:
    """A short sha256 of a value that is shown masked: two secrets are told apart, neither
    shown. (Only for those: every task's parameters pass through :func:`param_text`.)"""
    text = value if isinstance(value, str) else _json(value, ascii=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


@functools.lru_cache(maxsize=4096)
def _shapes_masked(text: str) -> str:
    """:func:`targetrun.redact.redact_shapes`, once per distinct value (10,000 tasks share a few)."""
    return redact.redact_shapes(text)


def made_with(task: TaskSpec, run: RunContext) -> tuple[dict[str, str], str | None]:
    """What a value of ``task`` made in ``run`` depends on, in the user's terms: the text of
    each parameter its templates name, and the run date if they name a date key."""
    names, dated = used_keys(task_templates(task), run.params)
    return {name: param_text(name, run.params[name]) for name in names}, (f"{run.date:%Y-%m-%d}" if dated else None)


def list_made_with(task: TaskSpec, run: RunContext) -> tuple[dict[str, str], str | None]:
    """What the list a mapped task maps over is made with: the parameters (and the date)
    its ``foreach`` names. A child depends on its own item only (:func:`task_templates`),
    but a task that reads the mapped task reads the whole list, so it records these too:
    another list then makes it stale. A long value is kept as :func:`value_text` keeps it
    (its start and a digest of the whole), never 10,000 items in every record downstream."""
    foreach = task.foreach
    templates = [foreach] if isinstance(foreach, str) else \
        [t for t in foreach if isinstance(t, str)] if isinstance(foreach, list) else []
    names, dated = used_keys(templates, run.params)
    return {name: param_text(name, run.params[name]) for name in names}, (f"{run.date:%Y-%m-%d}" if dated else None)


def made_differently(made: Mapping[str, str], made_for: str | None, run: RunContext) -> tuple[dict[str, str], str | None]:
    """Which recorded parameter values and date differ from the ones asked about now.

    >>> import datetime as dt
    >>> now = RunContext("p", dt.datetime(2026, 11, 30), {"city": "paris", "n": 1}, "r")
    >>> made_differently({"city": "berlin", "n": "1"}, "2026-11-29", now)
    ({'city': 'berlin'}, '2026-11-29')
    >>> made_differently({"city": "paris"}, None, now)
    ({}, None)
    """
    params = {name: text for name, text in made.items()
              if name not in run.params or param_text(name, run.params[name]) != text}
    day = made_for if made_for is not None and made_for != f"{run.date:%Y-%m-%d}" else None
    return params, day
