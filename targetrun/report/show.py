"""``targetrun show TASK``: print a task's checkpointed value, or where it lives.

The value is read through :func:`~targetrun.checkpoints.read_value`, like every other
read: a pickle is loaded only if this state store recorded it and its sha256 matches, a
recorded checkpoint that differs is refused (exit 2), with ``--trust`` too (trust lifts
only the refusal of data nobody recorded).
"""

from __future__ import annotations

import datetime as dt
import json
import pprint
from collections.abc import Mapping
from typing import TextIO

from targetrun import api
from targetrun.checkpoints import CorruptCheckpoint, Expected, read_value
from targetrun.engine.plan import Planner
from targetrun.errors import UsageError, did_you_mean
from targetrun.model import Location, PipelineSpec
from targetrun.serializers.base import SerializationError


def show_value(
    spec: PipelineSpec,
    task: str,
    out: TextIO,
    *,
    date: dt.datetime | None,
    params: Mapping[str, object],
    location_only: bool,
    trust: bool = False,
) -> None:
    if task not in spec.tasks:
        raise UsageError(f"unknown task {task!r}", hint=did_you_mean(task, spec.tasks) or None)
    context = api.run_context(spec, date=date, params=params)
    with api.backends(spec) as opened:
        api.settle(opened)
        planned = Planner(spec, context, opened.storage).render(spec.tasks[task])
        where = planned.target
        codec = planned.serializer
        if where is None:
            record = opened.store.last_task_records(spec.name).get(task)
            checkpoint = opened.store.run_checkpoints(record.run_id).get(task) if record else None
            if checkpoint is None:
                raise UsageError(f"task {task!r} has no target and no recorded checkpoint yet", hint="Run it first.")
            where = Location(planned.checkpoint.result if planned.checkpoint else "local", checkpoint.location)
            codec = checkpoint.serializer
        if location_only:
            out.write(where.url + "\n")
            return
        written = opened.store.checkpoint(where.url)
        codec = written.serializer if written else codec  # as it was written, never by a guess
        expected = Expected.of(written)
        try:
            value = read_value(opened.storage(where.result), where.url, codec, expected=expected, trust=trust, task=task)
        except FileNotFoundError:
            raise UsageError(f"{where.url} does not exist", hint=f"Run `targetrun run {task}` first.") from None
        except CorruptCheckpoint as exc:
            raise UsageError(f"{exc}; refusing to show it",
                             hint=f"Run `targetrun run {task}` to rebuild it.") from None
        except SerializationError as exc:
            raise UsageError(f"cannot read {where.url} as {codec}: {exc}") from None
        out.write(_format(value) + "\n")


def _format(value: object) -> str:
    if isinstance(value, str):
        return value.rstrip("\n")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace").rstrip("\n")
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return pprint.pformat(value)
