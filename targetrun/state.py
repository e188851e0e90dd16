"""The read-only status view: per task, its target, what exists, what would run and why.

Shares the planner's decisions with ``run`` (so ``status`` never disagrees with what
``run`` would do) and adds what a person wants to see: size and age of each existing
target, and the task's last recorded run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from targetrun.engine.plan import Plan
from targetrun.errors import StorageError
from targetrun.model import Decision, Location
from targetrun.storage.base import Stat, Storage
from targetrun.store.base import StateStore, TaskRecord


@dataclass(frozen=True)
class StatusRow:
    task: str
    target: str | None
    decision: Decision
    stat: Stat | None  # None: missing, or not looked at
    note: str = ""  # e.g. "cannot tell: ..." for a target nothing needs
    last: TaskRecord | None = None


@dataclass(frozen=True)
class StatusReport:
    pipeline: str
    run_date: str
    rows: tuple[StatusRow, ...]

    @property
    def would_run(self) -> tuple[StatusRow, ...]:
        return tuple(r for r in self.rows if r.decision.runs)


def build_status(plan: Plan, storages: Callable[[str], Storage], store: StateStore | None) -> StatusReport:
    last = store.last_task_records(plan.spec.name) if store is not None else {}
    stats = _stats(storages, plan)
    rows = []
    for name, task in plan.tasks.items():
        target = task.target
        stat, note = stats.get(name, (None, ""))
        rows.append(StatusRow(name, target.url if target else None, plan.decision(name), stat, note, last.get(name)))
    return StatusReport(plan.spec.name, f"{plan.context.date:%Y-%m-%d}", tuple(rows))


def _stats(storages: Callable[[str], Storage], plan: Plan) -> dict[str, tuple[Stat | None, str]]:
    """Size and age of every target, a listing per prefix. A target nothing needs that
    cannot be looked at is shown as "cannot tell"; a needed one already stopped the plan."""
    by_storage: dict[str, list[tuple[str, Location]]] = {}
    for name, task in plan.tasks.items():
        if task.target is not None:
            by_storage.setdefault(task.target.result, []).append((name, task.target))
    found: dict[str, tuple[Stat | None, str]] = {}
    for key, members in by_storage.items():
        storage = storages(key)
        unknown = []
        for name, loc in members:
            known, stat = plan.checker.known_stat(key, loc.url) if plan.checker else (False, None)
            if known:
                found[name] = (stat, "")
            else:
                unknown.append((name, loc))
        try:
            stats = storage.stat_many([loc.url for _, loc in unknown])
            found.update((name, (stats[loc.url], "")) for name, loc in unknown)
        except StorageError:
            for name, loc in unknown:
                found[name] = _stat(storage, loc, needed=name in plan.decisions)
    return found


def _stat(storage: Storage, target: Location, *, needed: bool) -> tuple[Stat | None, str]:
    try:
        return storage.info(target.url), ""
    except StorageError as exc:
        if needed:
            raise
        return None, f"cannot tell: {exc.message}"
