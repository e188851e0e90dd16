"""The read-only status view: per task, its target, what exists, what would run and why.

Shares the planner's decisions with ``run`` (so ``status`` never disagrees with what
``run`` would do) and adds what a person wants to see: size and age of each existing
target, the task's last recorded run, and -- in the user's terms -- a local target as a
path relative to the Pipelinefile's folder, and when an existing output was made with
other parameter values or for another date than the ones asked about ("made with
city=berlin"), from what its checkpoint record says the run that wrote it asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple, Protocol

from targetrun.engine.decide import NOT_NEEDED
from targetrun.engine.plan import Plan
from targetrun.errors import StorageError
from targetrun import templating
from targetrun.model import Checkpoint, Decision, Location, PipelineSpec, PlannedTask, Reason, Stale
from targetrun.resolve import LOCAL
from targetrun.storage.base import Stat, Storage
from targetrun.store.base import LastRun, Recorded, StateStore

_NO_VALUES: Mapping[str, str] = MappingProxyType({})


class StatusRow(NamedTuple):  # one per task, 10,000 in a no-op: a tuple is made three times faster
    task: str
    target: str | None
    decision: Decision
    stat: Stat | None  # None: missing, or not looked at
    note: str = ""  # e.g. "cannot tell: ..." for a target nothing needs
    last: LastRun | None = None  # the task's most recent record
    path: str | None = None  # the target as the user wrote it: relative to the Pipelinefile's folder, or a URL
    made_with: Mapping[str, str] = _NO_VALUES  # recorded parameter values that differ from now
    made_for: str | None = None  # the recorded run date, when it differs from the one asked about
    stale: tuple[Stale, ...] = ()  # what differs from what made it (see targetrun.staleness)
    # whether the state store has a record of the existing target: False, it was made by
    # hand, by another tool, or its record was lost (what made it is unknown); None, no
    # target there to ask about
    recorded: bool | None = None
    # the size its record says was written, when the target now has another: rewritten since
    written: int | None = None
    # a target nothing needs that is missing: whether what it would be made from names
    # parameters or the date (so the command that makes it again takes the same -p, --date)
    templated: bool = False

    @property
    def made(self) -> str:
        """``made with city=berlin, for 2026-11-29``, or ``""`` when it was made as asked."""
        parts = [f"made with {', '.join(f'{k}={v}' for k, v in self.made_with.items())}"] if self.made_with else []
        if self.made_for:
            parts.append(f"for {self.made_for}" if parts else f"made for {self.made_for}")
        return ", ".join(parts)


@dataclass(frozen=True)
class StatusReport:
    pipeline: str
    run_date: str
    rows: tuple[StatusRow, ...]

    @property
    def would_run(self) -> tuple[StatusRow, ...]:
        return tuple(r for r in self.rows if r.decision.runs)


class Judge(Protocol):
    """Tells what is stale about an existing target (the planner: engine/plan.py)."""

    def stale_unneeded(self, existing: Iterable[str]) -> dict[str, tuple[Stale, ...]]: ...


def build_status(plan: Plan, storages: Callable[[str], Storage], store: StateStore | None,
                 judge: Judge) -> StatusReport:
    last = store.last_runs(plan.spec.name) if store is not None else {}
    stats, notes = _stats(storages, plan)
    standing = _standing(plan, stats)
    there = _there(plan, stats)
    asked = _asked(plan, store, standing, there)
    made = _made_differently(plan, standing, asked)
    stale = _stale_unneeded(plan, stats, judge)
    recorded = _recorded(plan, there, asked)
    rows = []
    shown = _displayer(plan.spec)
    # a row per task, 10,000 in a no-op: each lookup bound once
    decision_of, stat_of, note_of, last_of = plan.decisions.get, stats.get, notes.get, last.get
    made_of, stale_of, row, as_asked = made.get, stale.get, StatusRow, (_NO_VALUES, None)
    recorded_of = recorded.get
    for name, task in plan.tasks.items():
        target = task.target
        made_with, made_for = made_of(name, as_asked)
        decision = decision_of(name, NOT_NEEDED)
        stat, size = stat_of(name), recorded_of(name, _UNASKED)
        rows.append(row(name, target.url if target else None, decision, stat, note_of(name, ""), last_of(name),
                        shown(target) if target else None, made_with, made_for, decision.stale or stale_of(name, ()),
                        None if size is _UNASKED else size is not False,
                        size if stat is not None and type(size) is int and size != stat.size else None,
                        target is not None and stat is None and name not in plan.decisions and _templated(task, plan)))
    return StatusReport(plan.spec.name, f"{plan.context.date:%Y-%m-%d}", tuple(rows))



def display_path(spec: PipelineSpec, where: Location) -> str:
    """A location as the user wrote it: a local file relative to the Pipelinefile's folder
    (absolute when it is outside it), anything else as its URL.

    >>> spec = PipelineSpec("p", "/w/Pipelinefile.yaml", "/w", {})
    >>> display_path(spec, Location("local", "/w/out/a.json")), display_path(spec, Location("local", "/tmp/x"))
    ('out/a.json', '/tmp/x')
    >>> display_path(spec, Location("s3", "s3://b/k.json"))
    's3://b/k.json'
    """
    if where.result != LOCAL:
        return where.url
    inside = spec.root.rstrip(os.sep) + os.sep
    rest = where.url[len(inside):] if where.url.startswith(inside) and os.path.isabs(inside) else None
    if rest and f"{os.sep}." not in f"{os.sep}{rest}" and os.sep * 2 not in f"{os.sep}{rest}{os.sep}":
        return rest  # already normal and inside: relpath would return it too, after much more work
    relative = os.path.relpath(where.url, spec.root)
    return where.url if relative == ".." or relative.startswith(".." + os.sep) else relative


def _displayer(spec: PipelineSpec) -> Callable[[Location], str]:
    """:func:`display_path` for many locations: a local target already normal and inside
    the Pipelinefile's folder (the usual one) is cut without asking ``os.path`` again."""
    inside = spec.root.rstrip(os.sep) + os.sep
    cut = len(inside) if os.path.isabs(inside) else None

    sep, hidden, empty = os.sep, os.sep + ".", os.sep * 2

    def shown(where: Location) -> str:
        url = where.url
        if cut is not None and url.startswith(inside) and where.result == LOCAL:
            rest = url[cut:]
            # display_path's test, without making two strings: no part starts with "." and none is empty
            if rest and rest[0] != "." and rest[0] != sep and rest[-1] != sep and hidden not in rest \
                    and empty not in rest:
                return rest
        return display_path(spec, where)

    return shown


def _standing(plan: Plan, stats: Mapping[str, Stat | None]) -> dict[str, str]:
    """By task, the checkpoint location of each whose existing output stands (skipped,
    cache hit, or an existing target nothing needs): what "made with" describes."""
    decision_of = plan.decisions.get
    standing: dict[str, str] = {}
    for name, task in plan.tasks.items():
        decision = decision_of(name) or NOT_NEEDED
        if decision.runs or task.checkpoint is None:
            continue
        if decision.reason is Reason.NOT_NEEDED and not stats.get(name):
            continue  # nothing there to describe
        standing[name] = task.checkpoint.url
    return standing


def _there(plan: Plan, stats: Mapping[str, Stat | None]) -> dict[str, str]:
    """By task, the target of each whose target exists: what "recorded" describes."""
    return {name: task.target.url for name, task in plan.tasks.items()
            if task.target is not None and stats.get(name) is not None}


def _asked(plan: Plan, store: StateStore | None, standing: Mapping[str, str],
           there: Mapping[str, str]) -> Mapping[str, Recorded]:
    """What the store says of the records planning did not read that "made with" and
    "recorded" describe: one question for both (a round trip, and each record decoded at
    most once -- only those that kept parameter values or a date, on SQLite and Redis).
    A record planning read (Plan.records) tells both already; a None there is a record
    with nothing to judge -- no parameter values, no date -- but its size is not known."""
    if store is None:
        return {}
    read = plan.records
    unread = [url for url in standing.values() if url not in read]
    unread.extend(url for url in there.values() if read.get(url) is None)
    return store.recorded_for_status(list(dict.fromkeys(unread))) if unread else {}


def _made_differently(plan: Plan, standing: Mapping[str, str],
                      asked: Mapping[str, Recorded]) -> dict[str, tuple[Mapping[str, str], str | None]]:
    """For each task whose existing output stands: the recorded parameter values and date
    that differ from the ones asked about. Records from before targetrun kept them say
    nothing. Only records that kept them can differ: those planning read say so already
    (Plan.records); the store selected the others (:func:`_asked`)."""
    read = plan.records
    kept: dict[str, Checkpoint] = {}  # by task: a record that kept them
    for name, url in standing.items():
        if url not in read:
            if (answer := asked.get(url)) is not None and answer.made is not None:
                kept[name] = answer.made
        elif (record := read[url]) is not None and (record.made_with or record.made_for):
            kept[name] = record
    found: dict[str, tuple[Mapping[str, str], str | None]] = {}
    for name, record in kept.items():
        if record.made_with or record.made_for:
            made_with, made_for = templating.made_differently(record.made_with, record.made_for, plan.context)
            if made_with or made_for:
                found[name] = (made_with, made_for)
    return found


_UNASKED = object()  # no target there: nothing asked


def _templated(task: PlannedTask, plan: Plan) -> bool:
    """Whether a task's templates name a parameter or the date (its mapped list included)."""
    named, dated = templating.made_with(task.spec, plan.context)
    listed, list_dated = templating.list_made_with(task.spec, plan.context) if task.spec.foreach else ({}, None)
    return bool(named or dated or listed or list_dated)


def _recorded(plan: Plan, there: Mapping[str, str], asked: Mapping[str, Recorded]) -> dict[str, object]:
    """For each task whose target exists: the size its record says was written (False: no
    record; None: a record without a size to compare, as a folder's). A record planning
    decoded tells; the store told the rest (:func:`_asked`)."""
    read = plan.records
    return {name: ((record.size if record.content_hash else None) if (record := read.get(url)) is not None
                   else answer.size if (answer := asked.get(url)) is not None else False)
            for name, url in there.items()}


def _stale_unneeded(plan: Plan, stats: Mapping[str, Stat | None], judge: Judge) -> dict[str, tuple[Stale, ...]]:
    """What is stale about existing targets the plan did not need to look at."""
    return judge.stale_unneeded(name for name in plan.tasks if name not in plan.decisions and stats.get(name))


def _stats(storages: Callable[[str], Storage], plan: Plan) -> tuple[dict[str, Stat | None], dict[str, str]]:
    """Size and age of every target by task (None: missing), a listing per prefix; and a
    note for a target nothing needs that cannot be looked at ("cannot tell: ..."; a
    needed one already stopped the plan)."""
    by_storage: dict[str, tuple[list[str], list[str]]] = {}  # by storage: task names, and their targets
    for name, task in plan.tasks.items():
        if task.target is not None:
            names, urls = by_storage.setdefault(task.target.result, ([], []))
            names.append(name)
            urls.append(task.target.url)
    stats: dict[str, Stat | None] = {}
    notes: dict[str, str] = {}
    for key, (names, urls) in by_storage.items():
        storage = storages(key)
        known = plan.checker.known_stats(key, urls) if plan.checker else {}
        if known:  # a listing with sizes (object stores): only the rest is asked
            stats.update((name, known[url]) for name, url in zip(names, urls) if url in known)
            rest = [(name, url) for name, url in zip(names, urls) if url not in known]
            names, urls = [name for name, _ in rest], [url for _, url in rest]
        try:
            found = storage.stat_many(urls)
            stats.update(zip(names, map(found.__getitem__, urls)))
        except StorageError:
            for name, url in zip(names, urls):
                stats[name], note = _stat(storage, url, needed=name in plan.decisions)
                if note:
                    notes[name] = note
    return stats, notes


def _stat(storage: Storage, url: str, *, needed: bool) -> tuple[Stat | None, str]:
    try:
        return storage.info(url), ""
    except StorageError as exc:
        if needed:
            raise
        return None, f"cannot tell: {exc.message}"
