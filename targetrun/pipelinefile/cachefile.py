"""The spec cache's file format: a validated :class:`PipelineSpec` as JSON.

The cache lives in the project's ``.targetrun/pipelinefile/`` folder, where anyone who can write a
file could plant one. It used to be a pickle, and loading a pickle runs code chosen by
whoever wrote it. JSON cannot: decoding builds only the values JSON has, plus the model's
own frozen dataclasses and enums, named from a fixed table (:data:`CLASSES`). A file that
does not decode into exactly that shape is a cache miss, and the Pipelinefile is parsed.

Values JSON lacks are tagged objects whose tag key is a NUL character: tuples, dates,
mappings with keys that are not strings (or that are the tag key), model objects and
enums. Anything else in a spec cannot be cached (:class:`TypeError` on write), which
costs only the next load its parse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
from collections.abc import Callable
from typing import Any

from targetrun.model import CachePolicy, PipelineSpec, ResultLocation, TaskSpec, Validator

TAG = "\0"
CLASSES: dict[str, type] = {cls.__name__: cls for cls in (PipelineSpec, TaskSpec, CachePolicy, ResultLocation)}
ENUMS: dict[str, type[Validator]] = {"Validator": Validator}


def dumps(spec: PipelineSpec) -> bytes:
    """The cache file's bytes (TypeError: the spec holds a value this format has no tag for)."""
    return json.dumps(_encode(spec), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes) -> PipelineSpec:
    """The spec back (ValueError: not a spec cache file of this shape).

    Decoding makes ~10 objects per task, none of them in a cycle: the cyclic garbage
    collector is paused meanwhile, or it would walk the growing heap again every 700
    allocations (a fifth of the load of a 10,000-task file).
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        spec = json.loads(data, object_hook=_decode)
    except (TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise ValueError(f"not a spec cache file: {exc}") from None
    finally:
        if paused:
            gc.enable()
    if not isinstance(spec, PipelineSpec):
        raise ValueError("not a spec cache file: it does not hold a pipeline")
    return spec


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [_encode(v) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and k != TAG for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {TAG: "dict", "v": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, Validator):
        return {TAG: type(value).__name__, "v": value.value}
    if dataclasses.is_dataclass(value) and CLASSES.get(type(value).__name__) is type(value):
        # Fields left at their defaults are not written: a task is then a third of the
        # bytes, and the reader (the class's own constructor) fills them in again.
        fields = {f.name: _encode_tasks(v) if f.name == "tasks" and type(value) is PipelineSpec else _encode(v)
                  for f in dataclasses.fields(value) if f.init and not _is_default(f, v := getattr(value, f.name))}
        return {TAG: type(value).__name__, **fields}
    raise TypeError(f"a {type(value).__name__} cannot be stored in the spec cache")


def _encode_tasks(tasks: Any) -> Any:
    """A pipeline's tasks as one table: the names of the fields some task sets, then one
    row of values per task. Parsing rows is faster than parsing 10,000 objects that repeat
    their keys, and the reader builds each task from its row at once."""
    if not isinstance(tasks, dict) or not tasks or \
            not all(type(task) is TaskSpec and task.name == name for name, task in tasks.items()):
        return _encode(tasks)
    used = [f for f in dataclasses.fields(TaskSpec) if f.init and
            (f.name == "name" or any(not _is_default(f, getattr(task, f.name)) for task in tasks.values()))]
    return {TAG: "TaskTable", "fields": [f.name for f in used],
            "rows": [[_encode(getattr(task, f.name)) for f in used] for task in tasks.values()]}


def _is_default(field: dataclasses.Field[Any], value: Any) -> bool:
    """Whether ``value`` is what the class would fill in for ``field`` (same type too:
    ``0`` is not ``False``)."""
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return False
    return type(value) is type(default) and bool(value == default)


def _decode(obj: dict[str, Any]) -> Any:
    """JSON's object hook: a tagged object back to its value (inner objects come first)."""
    tag = obj.get(TAG)
    if tag is None:
        return obj
    if tag == "tuple":
        return tuple(obj["v"])
    if tag == "dict":
        return {_key(k): v for k, v in obj["v"]}
    if tag == "datetime":
        return dt.datetime.fromisoformat(obj["v"])
    if tag == "date":
        return dt.date.fromisoformat(obj["v"])
    if tag in ENUMS:
        return ENUMS[tag](obj["v"])
    if tag == "TaskTable":
        return _task_table(obj["fields"], obj["rows"])
    cls = CLASSES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ValueError(f"unknown tag {tag!r}")
    fields = dict(obj)
    del fields[TAG]
    return _build(cls, fields)


def _task_table(fields: Any, rows: Any) -> dict[str, TaskSpec]:
    """The tasks of a table (see :func:`_encode_tasks`), by name, each filled as the
    class's own ``__init__`` would fill it, without calling it: a frozen dataclass's
    ``__init__`` sets each of its ~20 fields by name through ``object.__setattr__``, while
    each slot's own setter is a third cheaper. A table of another shape is a ValueError (a
    cache miss).

    What tasks share is kept once, as parsing the Pipelinefile keeps it: a string tasks
    share (a templated command, a serializer: JSON makes a copy a row, ~60 bytes each a
    task that a plan of 100,000 tasks keeps all run long), the lines of keys written alike
    (``field_offsets``) and, for a field the table leaves out, its default."""
    every = dataclasses.fields(TaskSpec)
    position = {f.name: i for i, f in enumerate(every) if f.init}
    if type(fields) is not list or type(rows) is not list or not all(type(name) is str for name in fields) \
            or len(set(fields)) != len(fields) or "name" not in fields or not set(fields) <= position.keys():
        raise ValueError("a task table without the expected columns")
    named, width = fields.index("name"), len(fields)
    places = [position[name] for name in fields]
    # the defaults, one value for every task (a factory's empty mapping too: a spec is never changed)
    template = [f.default if f.default is not dataclasses.MISSING else _made(f) for f in every]
    setters = [getattr(TaskSpec, f.name).__set__ for f in every]  # the slots' own
    offsets_at = fields.index("field_offsets") if "field_offsets" in fields else -1
    shared: dict[Any, Any] = {}
    same = shared.setdefault
    new = object.__new__
    tasks: dict[str, TaskSpec] = {}
    for row in rows:
        if type(row) is not list or len(row) != width or type(row[named]) is not str:
            raise ValueError("a task table row of another shape")
        values = template.copy()
        for i, value in enumerate(row):
            if type(value) is str and i != named:  # a task's name is its own
                value = same(value, value)
            elif i == offsets_at and type(value) is dict:
                value = same(tuple(value.items()), value)
            values[places[i]] = value
        task = new(TaskSpec)
        for put, value in zip(setters, values):
            put(task, value)
        tasks[row[named]] = task
    if len(tasks) != len(rows):
        raise ValueError("a task table naming a task twice")
    return tasks


def _made(field: dataclasses.Field[Any]) -> Any:
    """What a field's default factory makes (None for a field without a default: ``name``)."""
    factory = field.default_factory
    return None if factory is dataclasses.MISSING else factory()


def _build(cls: type, fields: dict[str, Any]) -> Any:
    """``cls(**fields)``, as the class's own ``__init__`` would fill it, without calling it:
    a frozen dataclass's ``__init__`` sets each of its ~20 fields through
    ``object.__setattr__``, most of a cached load's time. The same checks hold: a field
    the class does not have, or a required one missing, is a TypeError (a cache miss)."""
    if cls not in _SHAPES:
        _SHAPES[cls] = _shape(cls)
    shape = _SHAPES[cls]
    if shape is None:
        return cls(**fields)
    if not shape.names.issuperset(fields) or not shape.required.issubset(fields):
        wrong = sorted(set(fields) - shape.names) or sorted(shape.required - set(fields))
        raise TypeError(f"{cls.__name__} has no field or lacks {wrong[0]!r}")
    state = dict(shape.defaults)
    for name, factory in shape.factories:
        state[name] = factory()
    state.update(fields)
    obj: Any = object.__new__(cls)
    obj.__dict__.update(state)
    return obj


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What :func:`_build` needs of a dataclass."""

    names: frozenset[str]
    required: frozenset[str]
    defaults: dict[str, Any]
    factories: tuple[tuple[str, Callable[[], Any]], ...]


_SHAPES: dict[type, _Shape | None] = {}


def _shape(cls: type) -> _Shape | None:
    """A dataclass's field names, the required ones, the plain defaults and the default
    factories; None for a class :func:`_build` cannot fill itself (one with ``__slots__``,
    ``__post_init__`` or a field left out of ``__init__``: its ``__init__`` does more)."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__slots__") or hasattr(cls, "__post_init__"):
        return None
    fields = dataclasses.fields(cls)
    if not all(f.init for f in fields):
        return None
    missing = dataclasses.MISSING
    return _Shape(
        names=frozenset(f.name for f in fields),
        required=frozenset(f.name for f in fields if f.default is missing and f.default_factory is missing),
        defaults={f.name: f.default for f in fields if f.default is not missing},
        factories=tuple((f.name, f.default_factory) for f in fields if f.default_factory is not missing),
    )


def _key(key: Any) -> Any:
    """A mapping key: lists decoded from JSON are unhashable, so a key is never one."""
    if isinstance(key, (list, dict)):
        raise ValueError("a mapping key that is a list or mapping")
    return key
