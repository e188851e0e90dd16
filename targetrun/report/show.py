"""``targetrun show TASK``: print a task's checkpointed value, or where it lives.

The value is read through :func:`~targetrun.checkpoints.read_value`, like every other
read: a pickle is loaded only if this state store recorded it and its sha256 matches, a
recorded checkpoint that differs is refused (exit 2), with ``--trust`` too (trust lifts
only the refusal of data nobody recorded).

A task without a target keeps one value per run (under ``.targetrun/results/RUN_ID/``):
``show`` prints the newest one made with the parameter values and date asked for
(``-p``, ``--date``), as its checkpoint record says.
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
from targetrun.model import Checkpoint, Location, PipelineSpec, RunContext
from targetrun.serializers.base import SerializationError
from targetrun.templating import made_differently, param_text


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
            checkpoint = _made_as_asked(opened.store.task_checkpoints(spec.name, task), task, context)
            where = Location(checkpoint.storage, checkpoint.location)
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


def _made_as_asked(checkpoints: list[Checkpoint], task: str, context: RunContext) -> Checkpoint:
    """The newest checkpoint of a task without a target made with the parameter values and
    date asked for (``-p``, ``--date``; the defaults and today otherwise). A record from
    before targetrun kept what a checkpoint was made with matches any."""
    for checkpoint in checkpoints:
        if made_differently(checkpoint.made_with, checkpoint.made_for, context) == ({}, None):
            return checkpoint
    if not checkpoints:
        raise UsageError(f"task {task!r} has no target and no recorded checkpoint yet", hint="Run it first.")
    made_with, made_for = made_differently(checkpoints[0].made_with, checkpoints[0].made_for, context)
    asked = [f"{name}={param_text(name, context.params[name])}" for name in made_with if name in context.params]
    asked += [f"--date {context.date:%Y-%m-%d}"] if made_for else []
    latest = [f"{name}={text}" for name, text in made_with.items()] + ([f"--date {made_for}"] if made_for else [])
    raise UsageError(f"task {task!r} has no recorded checkpoint made with {' '.join(asked)} "
                     f"(the latest, of run {checkpoints[0].run_id}, was made with {' '.join(latest)})",
                     hint=f"Run `targetrun run {task}` with those values first, or ask for the ones it was made with.")


def _format(value: object) -> str:
    if isinstance(value, str):
        return value.rstrip("\n")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace").rstrip("\n")
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return pprint.pformat(value)
