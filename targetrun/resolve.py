"""Where things live: result locations, rendered targets, default checkpoint places.

Pure path arithmetic (no I/O). A task's target is relative to its result location
(``result:``, default the Pipelinefile's folder); a rendered target that climbs out of it
(``../../etc/passwd``) or is absolute is refused unless the Pipelinefile sets
``allow_outside_targets: true``. A target written as a full URL (``s3://b/k.json``)
names its own location.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
from collections.abc import Mapping

from targetrun import templating
from targetrun.errors import SpecError
from targetrun.model import Location, PipelineSpec, RunContext, TaskSpec
from targetrun.serializers.base import file_suffix, for_suffix, split_suffix, with_compression

LOCAL = "local"
INLINE = "inline"  # values kept in the state store (result: inline)
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
CHECKPOINT_DIR = ".targetrun/results"


def protocol(url: str) -> str | None:
    """The URL scheme, or None for a plain path.

    >>> protocol("s3://b/k"), protocol("raw/x.json"), protocol("file:///tmp/x")
    ('s3', None, 'file')
    """
    match = _URL.match(url)
    return match.group(1).lower() if match else None


def default_context(spec: PipelineSpec, date: dt.datetime | None = None, run_id: str = "check") -> dict[str, object]:
    when = date or dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return templating.base_context(RunContext(spec.name, when, spec.params, run_id))


def result_base(spec: PipelineSpec, result: str) -> Location:
    """The folder or URL prefix a result reference points at.

    A local folder is made absolute against the Pipelinefile's folder; the Location's
    ``result`` names the storage that serves it: ``local``, a name under ``results:``,
    or a URL protocol.
    """
    if result == INLINE:
        return Location(INLINE, f"inline://{spec.name}")
    named = spec.results.get(result)
    url = named.url if named else result
    proto = protocol(url)
    if proto is None or proto == "file":
        path = url[len("file://") :] if proto == "file" else url
        return Location(LOCAL, os.path.normpath(os.path.join(spec.root, os.path.expanduser(path))))
    key = named.name if named and named.options else proto
    return Location(key, url.rstrip("/"))


def resolve_target(spec: PipelineSpec, task: TaskSpec, context: Mapping[str, object]) -> Location:
    """Render a task's target and place it in its result location."""
    return Placer(spec).target(task, context)


def place(spec: PipelineSpec, result: str, rendered: str, *, what: str) -> Location:
    return Placer(spec).place(result, rendered, what=what)


class Placer:
    """Places rendered paths in result locations; remembers each result's base."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self._bases: dict[str, Location] = {}

    def base(self, result: str) -> Location:
        if result not in self._bases:
            self._bases[result] = result_base(self.spec, result)
        return self._bases[result]

    def target(self, task: TaskSpec, context: Mapping[str, object]) -> Location:
        assert task.target is not None
        rendered = templating.render(task.target, context) if "{" in task.target else task.target
        return self.place(task.result, rendered, what="target")

    def place(self, result: str, rendered: str, *, what: str) -> Location:
        if not rendered.strip():
            raise SpecError(f"the {what} renders to an empty path")
        if "://" in rendered and (proto := protocol(rendered)) is not None:
            return _absolute_url(self.spec, rendered, proto)
        base = self.base(result)
        relative = _relative(rendered)
        if relative is None and not self.spec.allow_outside_targets:
            raise SpecError(
                f"the {what} {rendered!r} points outside its result location {base.url}",
                hint="Keep targets relative and inside it, or set `allow_outside_targets: true` at the top of the file.",
            )
        if relative in (".", ""):
            raise SpecError(f"the {what} {rendered!r} names the result folder itself, not a file inside it")
        if relative is None:  # allowed to leave the result location
            relative = posixpath.normpath(rendered)
        if base.result == LOCAL:
            joined = os.path.normpath(os.path.join(base.url, relative)) if relative.startswith(("/", "..")) else f"{base.url.rstrip('/')}/{relative}"
            return Location(LOCAL, joined)
        return Location(base.result, f"{base.url}/{relative.lstrip('/')}")


def _relative(rendered: str) -> str | None:
    """The normalised relative path, or None if it is absolute or climbs out.

    >>> _relative("a/b.txt"), _relative("a/../b.txt"), _relative("../x"), _relative("/etc/passwd")
    ('a/b.txt', 'b.txt', None, None)
    """
    path = rendered.replace("\\", "/")
    if path.startswith("/"):
        return None
    if "//" in path or "/." in f"/{path}" or path.endswith("/"):
        path = posixpath.normpath(path)
    if path == ".." or path.startswith("../"):
        return None
    return path


def _absolute_url(spec: PipelineSpec, url: str, proto: str) -> Location:
    if proto == "file":
        return Location(LOCAL, os.path.normpath(url[len("file://") :]))
    for named in spec.results.values():
        if named.options and url.startswith(named.url.rstrip("/") + "/"):
            return Location(named.name, url)
    return Location(proto, url)


def default_checkpoint(spec: PipelineSpec, task: TaskSpec, serializer: str, run_id: str, suffix: str = "") -> Location:
    """Where a task with no target keeps its value: under ``.targetrun/results/RUN_ID/``."""
    name = f"{task.name}{suffix}{file_suffix(serializer)}"
    base = result_base(spec, task.result)
    if base.result == LOCAL:
        return Location(LOCAL, os.path.join(base.url, CHECKPOINT_DIR, run_id, name))
    return Location(base.result, f"{base.url}/{CHECKPOINT_DIR}/{run_id}/{name}")


def infer_serializer(task: TaskSpec, target: str | None) -> str:
    """The serializer reference of a task: its own key, else what the serializer classes
    in the registry claim for its target's suffix, else ``defaults:``.

    The registry is the one table (:func:`targetrun.serializers.base.for_suffix`): a
    Python task's value is written in the format its suffix names (``.parquet``,
    ``.csv``, ``.npy``...), and a suffix several formats claim (``.json``) becomes the rule
    ``by-suffix`` that picks by the value. A Python task's ``.txt`` target gets the rule
    ``text-or-json``. A compression suffix after it (``.gz``, ``.bz2``, ``.xz``, ``.zst``)
    compresses whatever format a Python task writes. A shell task's file is read back by
    the few formats that claim command output (``.txt``, ``.json``, ``.pkl``), else as
    bytes -- and as bytes when compressed, as before.

    >>> from targetrun.model import TaskSpec
    >>> infer_serializer(TaskSpec("a", run="m:f"), "x.pkl"), infer_serializer(TaskSpec("a", run="m:f"), "x.csv")
    ('pickle', 'csv')
    >>> infer_serializer(TaskSpec("a", run="m:f"), "x.json.gz"), infer_serializer(TaskSpec("a", run="m:f"), "x.dat")
    ('by-suffix+gz {"suffix":".json"}', 'pickle')
    >>> infer_serializer(TaskSpec("a", shell="echo"), "x.csv"), infer_serializer(TaskSpec("a", shell="echo"), None)
    ('bytes', 'bytes')
    >>> infer_serializer(TaskSpec("a", run="m:f", default_serializer="json"), "x.txt")
    'text-or-json'
    >>> infer_serializer(TaskSpec("a", shell="echo"), "x.txt"), infer_serializer(TaskSpec("a", run="m:f", serializer="text"), "x.txt")
    ('text', 'text')
    >>> infer_serializer(TaskSpec("a", shell="echo"), "x.json.gz"), infer_serializer(TaskSpec("a", run="m:f", serializer="csv"), "x.csv.zst")
    ('bytes', 'csv+zst')

    """
    suffix, compression = split_suffix(target or "")
    if task.shell is not None:
        if task.serializer:
            return task.serializer
        found = None if compression else for_suffix(suffix, command_output=True)
        return found or task.default_serializer or ("json" if task.result == INLINE else "bytes")
    if task.serializer:
        return with_compression(task.serializer, compression)
    found = for_suffix(suffix, command_output=False)
    if found is None:
        found = task.default_serializer or ("json" if task.result == INLINE else "pickle")
    return with_compression(found, compression)
