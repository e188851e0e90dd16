"""Strict rendering of Pipelinefile templates (Python format strings, as in Prefect 1).

A template such as ``raw/{params.city}/{date:%Y-%m-%d}.json`` names context keys
(DESIGN.md §2). Templates are checked when the file loads -- :func:`check` names the
unknown key and the keys that exist -- and rendered per run with :func:`render`.

Two refinements over plain ``str.format``:

* :func:`render_value` returns the raw object when a string is exactly one field
  (``"{params.cities}"`` is the list, ``"{params.n}"`` the int), so ``args`` and
  ``foreach`` keep their types;
* :func:`render_shell` shell-quotes every substituted value, so a parameter such as
  ``x; rm -rf /`` reaches the command as one quoted word.

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shlex
import string
from _string import formatter_field_name_split  # type: ignore[import-not-found]
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from targetrun.errors import TemplateError, did_you_mean
from targetrun.model import RunContext, TaskSpec

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

_FORMATTER = string.Formatter()


class Namespace(Mapping[str, Any]):
    """``params``/``needs`` in templates: ``{params.city}`` and ``{parameters[city]}``."""

    __slots__ = ("_kind", "_values")

    def __init__(self, kind: str, values: Mapping[str, Any]) -> None:
        self._kind = kind
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # no lookups for dunders (pickle probes them before __init__ state exists)
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __format__(self, spec: str) -> str:
        return format(dict(self._values), spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Namespace, (self._kind, dict(self._values)))


def fields(template: str) -> list[tuple[str, tuple[str, ...], str]]:
    """The fields a template names: (first name, attribute/index chain, format spec).

    >>> fields("raw/{params.city}/{date:%Y}.json")
    [('params', ('city',), ''), ('date', (), '%Y')]
    >>> fields("{{literal}}")
    []
    """
    found: list[tuple[str, tuple[str, ...], str]] = []
    for _, name, spec, _ in _FORMATTER.parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError("positional fields such as {} or {0} are not allowed; name a key")
        first, rest = formatter_field_name_split(name)
        found.append((str(first), tuple(str(part) for _, part in rest), spec or ""))
        if spec and "{" in spec:
            found.extend(fields(spec))
    return found


def check(
    template: str,
    allowed: frozenset[str],
    *,
    params: Mapping[str, object],
    needs: frozenset[str] = frozenset(),
) -> None:
    """Raise :class:`TemplateError` (without file/line; the caller adds them) if a
    template names a key the context will not have.

    >>> check("{params.city}/{today}", BASE_KEYS, params={"city": "x"})
    >>> check("{flow_nme}", BASE_KEYS, params={})
    Traceback (most recent call last):
    ...
    targetrun.errors.TemplateError: unknown template key 'flow_nme'; did you mean 'flow_name'?
    """
    try:
        named = fields(template)
    except ValueError as exc:
        raise TemplateError(f"cannot parse template {template!r}: {exc}") from None
    for first, chain, _ in named:
        if first not in allowed:
            raise TemplateError(
                f"unknown template key {first!r}",
                hint=did_you_mean(first, allowed) or f"Available keys: {', '.join(sorted(allowed))}.",
            )
        if first in NAMESPACE_KEYS:
            _check_namespace(first, chain, params if first != "needs" else dict.fromkeys(needs))


def _check_namespace(first: str, chain: tuple[str, ...], names: Mapping[str, object]) -> None:
    if not chain:
        return
    if chain[0] not in names:
        hint = did_you_mean(chain[0], names)
        if first == "needs":
            hint = hint or f"This task needs: {', '.join(sorted(names)) or 'nothing'}."
            raise TemplateError(f"{{needs.{chain[0]}}} names {chain[0]!r}, which this task does not need", hint=hint)
        hint = hint or f"Declared parameters: {', '.join(sorted(names)) or 'none'}."
        raise TemplateError(f"{{{first}.{chain[0]}}} names the undeclared parameter {chain[0]!r}", hint=hint)


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


def render(template: str, context: Mapping[str, object]) -> str:
    """Render strictly: a missing key or a bad format spec raises :class:`TemplateError`.

    >>> render("{a}-{b:>3}", {"a": 1, "b": "x"})
    '1-  x'
    """
    try:
        return template.format_map(context)
    except (KeyError, AttributeError, IndexError) as exc:
        raise TemplateError(f"template {template!r} names {exc} which this run does not have") from None
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"cannot render template {template!r}: {exc}") from None


def render_value(value: object, context: Mapping[str, object]) -> object:
    """Render strings (a lone field keeps its type), recurse into lists and dicts.

    >>> render_value({"n": "{n}", "s": "n={n}", "l": ["{n}"]}, {"n": 3})
    {'n': 3, 's': 'n=3', 'l': [3]}
    """
    if isinstance(value, str):
        lone = lone_field(value)
        if lone is not None:
            try:
                return _FORMATTER.get_field(lone, (), context)[0]
            except (KeyError, AttributeError, IndexError) as exc:
                raise TemplateError(f"template {value!r} names {exc} which this run does not have") from None
        return render(value, context)
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
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
    parsed = list(_FORMATTER.parse(template))
    if len(parsed) != 1:
        return None
    literal, name, spec, conversion = parsed[0]
    if literal or name is None or spec or conversion:
        return None
    return name


class _ShellFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        return shlex.quote(format(value, format_spec))


_SHELL = _ShellFormatter()


def render_shell(template: str, context: Mapping[str, object]) -> str:
    """Render a shell command, quoting every substituted value.

    >>> render_shell("echo {x} > {output}", {"x": "a; rm -rf /", "output": "o.txt"})
    "echo 'a; rm -rf /' > o.txt"
    """
    try:
        return _SHELL.vformat(template, (), context)
    except (KeyError, AttributeError, IndexError) as exc:
        raise TemplateError(f"shell command {template!r} names {exc} which this run does not have") from None
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"cannot render shell command {template!r}: {exc}") from None


# -- what a value was made with (status: "made with city=berlin") --------------------

_TEXT_LIMIT = 60  # longer parameter values are shortened, with a digest so they stay distinct


def task_templates(task: TaskSpec) -> list[str]:
    """The templates a task's *value* depends on: target, shell command, cache key and
    args (strings anywhere inside). ``foreach`` is left out: a mapped child depends on its
    own item, not on the whole list."""
    found = [t for t in (task.target, task.shell, task.cache.key if task.cache else None) if t]
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
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) <= _TEXT_LIMIT:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{text[:40]}… ({digest})"


_SECRET_NAME = re.compile(r"pass|secret|token|key|credential|auth|private", re.IGNORECASE)


def param_text(name: str, value: object) -> str:
    """What the store keeps and ``status`` shows of a parameter's value: :func:`value_text`,
    or for a name that looks like a credential only a digest, so a secret passed with
    ``-p`` never lands in the store or in output.

    >>> param_text("city", "berlin"), param_text("api_token", "s3cr3t").startswith("*** (")
    ('berlin', True)
    """
    if _SECRET_NAME.search(name):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        return f"*** ({hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:12]})"
    return value_text(value)


def made_with(task: TaskSpec, run: RunContext) -> tuple[dict[str, str], str | None]:
    """What a value of ``task`` made in ``run`` depends on, in the user's terms: the text of
    each parameter its templates name, and the run date if they name a date key."""
    names, dated = used_keys(task_templates(task), run.params)
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
