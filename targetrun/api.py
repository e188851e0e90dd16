"""The Python API, and the composition root: the only place adapters are chosen.

>>> from targetrun import api                                    # doctest: +SKIP
>>> spec = api.load("Pipelinefile.yaml")                         # doctest: +SKIP
>>> summary = api.run(spec, params={"city": "paris"})            # doctest: +SKIP
>>> api.exit_code(summary)                                       # doctest: +SKIP
0

``load`` validates a Pipelinefile; ``plan`` decides without running; ``run`` runs and
returns a :class:`~targetrun.model.RunSummary`; ``status`` returns a
:class:`~targetrun.state.StatusReport`. The CLI is a thin layer over these.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from targetrun import settings
from targetrun.engine import Clock, Engine, Plan, Planner, RunRequest
from targetrun.engine.recovery import recover
from targetrun.errors import EXIT_BACKEND, EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE, SpecError, UsageError, did_you_mean
from targetrun.events import NullReporter, Reporter
from targetrun.executors.base import EXECUTORS, Executor
from targetrun import redact
from targetrun.housekeeping import Collected, Policy, apply, collect
from targetrun.model import PipelineSpec, RunContext, RunSummary
from targetrun.resolve import INLINE, LOCAL, protocol
from targetrun.envvars import expand_env
from targetrun.spec import find_pipelinefile, load_pipeline, check_store_url
from targetrun.spec.values import check_param_name, check_param_value
from targetrun.state import StatusReport, build_status
from targetrun.storage.base import STORAGES, Storage
from targetrun.store.base import STORES, StateStore

__all__ = ["load", "plan", "run", "run_dates", "status", "invalidate", "gc", "exit_code", "Backends", "Clock",
           "RunRequest"]
DEFAULT_KEEP_RUNS = 20  # what `targetrun gc` keeps when given no limit


def load(path: str | None = None, *, use_cache: bool = True) -> PipelineSpec:
    """Find (``path`` may be a folder or None for the current one) and validate a Pipelinefile."""
    if path is None or os.path.isdir(path):
        path = find_pipelinefile(path)
    spec = load_pipeline(path, use_cache=use_cache)
    register_secrets(spec)
    return spec


def register_secrets(spec: PipelineSpec) -> None:
    """Tell :mod:`targetrun.redact` every credential this pipeline's options hold (as
    written and with ``${VAR}`` expanded), so no output of this process shows them."""
    redact.register_spec(spec)


def validate(path: str | None = None) -> tuple[str, int, list[SpecError]]:
    """Everything ``run`` would refuse before running: the file's problems (all of them)
    and, for each well-formed Python task, its function -- imported, never called -- and
    its signature against ``args`` and ``needs``. Returns the file as messages name it,
    the number of tasks, and the problems in line order."""
    from targetrun.spec import check_file
    from targetrun.spec.callables import resolve_callable

    if path is None or os.path.isdir(path):
        path = find_pipelinefile(path)
    display, problems, tasks = check_file(path)
    root = os.path.dirname(os.path.abspath(path))
    for task in tasks.values():
        if task.run is not None:
            problems += resolve_callable(task, display, root)[1]
    return display, len(tasks), sorted(problems, key=lambda problem: problem.line or 0)


def new_run_id(now: dt.datetime | None = None) -> str:
    when = now or dt.datetime.now(dt.timezone.utc)
    return f"{when:%Y%m%dT%H%M%S}-{os.urandom(3).hex()}"


def run_context(
    spec: PipelineSpec,
    *,
    date: dt.date | dt.datetime | None = None,
    params: Mapping[str, object] | None = None,
    run_id: str | None = None,
) -> RunContext:
    """The template context of one run: the date, the parameters with overrides, an id."""
    return RunContext(spec.name, _run_date(date), merge_params(spec, params or {}), run_id or new_run_id())


FIRST_DATE, LAST_DATE = dt.date(1000, 1, 2), dt.date(9998, 12, 30)


def _run_date(date: dt.date | dt.datetime | None) -> dt.datetime:
    """The run date in UTC; {yesterday} and {tomorrow} of it must be dates too."""
    if date is None:
        return dt.datetime.now(dt.timezone.utc)
    if isinstance(date, dt.datetime):
        when = date if date.tzinfo else date.replace(tzinfo=dt.timezone.utc)
    else:
        when = dt.datetime(date.year, date.month, date.day, tzinfo=dt.timezone.utc)
    if not FIRST_DATE <= when.date() <= LAST_DATE:
        raise UsageError(f"the run date {when.date().isoformat()} is out of range",
                         hint=f"Give a --date between {FIRST_DATE} and {LAST_DATE}.")
    return when


def merge_params(spec: PipelineSpec, overrides: Mapping[str, object]) -> dict[str, object]:
    params = dict(spec.params)
    for name, value in overrides.items():
        check_param_value(check_param_name(name), value)
        if name not in spec.params:
            hint = did_you_mean(name, spec.params) or f"Declared parameters: {', '.join(spec.params) or 'none'}."
            raise UsageError(f"unknown parameter {name!r}", hint=hint + " Declare it under `params:` first.")
        params[name] = value
    return params


@dataclass
class Backends:
    """The storages and state store one command uses; built lazily, closed together."""

    spec: PipelineSpec
    store_url: str | None = None
    _storages: dict[str, Storage] = field(default_factory=dict)
    _store: StateStore | None = None

    def storage(self, key: str) -> Storage:
        if key not in self._storages:
            self._storages[key] = self._make_storage(key)
        return self._storages[key]

    def _make_storage(self, key: str) -> Storage:
        if key == LOCAL:
            return STORAGES.get("local")()  # type: ignore[no-any-return]
        if key == INLINE:
            kind, location = store_address(self.spec, self.store_url)
            return STORAGES.get("inline")(self.store, kind, location)  # type: ignore[no-any-return]
        named = self.spec.results.get(key)
        proto = (protocol(named.url) if named else key) or key
        if proto in STORAGES and proto != "fsspec":
            return STORAGES.get(proto)(**(named.options if named else {}))  # type: ignore[no-any-return]
        return STORAGES.get("fsspec")(proto, named.options if named else {})  # type: ignore[no-any-return]

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = open_store(self.spec, self.store_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        for storage in self._storages.values():
            storage.close()


def store_address(spec: PipelineSpec, url: str | None = None) -> tuple[str, str]:
    """Which store kind a `cache:` value names, and its address (a URL or a file path).
    ``${VAR}`` is taken from the environment, so no password needs to live in the file."""
    url = expand_env(url or spec.cache_url, "cache", file=spec.path)
    redact.register_url(url)
    proto = protocol(url)
    if proto in ("redis", "rediss", "unix"):
        check_store_url(url, file=spec.path)
        return "redis", url
    if proto not in (None, "file", "sqlite"):
        raise SpecError(f"unknown state store {url!r}", file=spec.path, key="cache",
                        hint="Use a path (SQLite) or a redis://host:port/db URL.")
    path = url.split("://", 1)[1] if proto else url
    return "sqlite", os.path.join(spec.root, os.path.expanduser(path))


def open_store(spec: PipelineSpec, url: str | None = None) -> StateStore:
    kind, location = store_address(spec, url)
    return STORES.get(kind)(location)  # type: ignore[no-any-return]


@contextmanager
def backends(spec: PipelineSpec, store_url: str | None = None) -> Iterator[Backends]:
    register_secrets(spec)  # API callers may build a spec without load()
    opened = Backends(spec, store_url)
    try:
        yield opened
    finally:
        opened.close()


def make_executor(name: str = "inline", jobs: int = 1, scheduler: str | None = None) -> Executor:
    """An executor by registry name; a scheduler address implies dask."""
    if scheduler is not None:
        name = "dask"
    elif name == "inline" and jobs > 1:
        name = "threads"
    cls = EXECUTORS.get(name)
    if name == "inline":
        return cls()  # type: ignore[no-any-return]
    if name == "dask":
        return cls(max_workers=jobs, scheduler=scheduler)  # type: ignore[no-any-return]
    return cls(max_workers=jobs)  # type: ignore[no-any-return]


def lock_lease() -> float:
    """``TARGETRUN_LOCK_LEASE`` seconds (default 60): how long a lock or a heartbeat lasts."""
    return settings.lock_lease()


def trusting(trust: bool | None) -> bool:
    """``--trust``, else ``TARGETRUN_TRUST=1``: read pickles no run of this store recorded."""
    return trust if trust is not None else settings.trust()


def scheduler_address(spec: PipelineSpec, given: str | None = None) -> str | None:
    """``--scheduler``, else ``TARGETRUN_SCHEDULER``, else the Pipelinefile's ``scheduler:``."""
    return given or os.environ.get(settings.SCHEDULER) or spec.scheduler


def settle(opened: Backends, clock: Clock | None = None) -> None:
    """Resolve checkpoint writes that a run which is gone left half-way (engine/recovery.py),
    before anything is decided or read: the project's own outputs stay trusted."""
    recover(opened.store, opened.storage, (clock or Clock()).now(), lock_lease())


def check_shared_storage(the_plan: Plan) -> None:
    """Workers elsewhere cannot write this machine's folders: refuse before anything runs."""
    for name in the_plan.order:
        checkpoint = the_plan.tasks[name].checkpoint
        if checkpoint is not None and checkpoint.result in (LOCAL, INLINE, "memory"):
            raise UsageError(
                f"task {name!r} writes to {checkpoint.url}, which workers on a remote Dask scheduler cannot reach",
                hint="Give it shared storage (result: s3://... or gs://...), or run without --scheduler.",
            )


def plan(spec: PipelineSpec, request: RunRequest, context: RunContext, opened: Backends, *, use_store: bool = True,
         clock: Clock | None = None) -> Plan:
    store = opened.store if use_store else None
    return Planner(spec, context, opened.storage, store, now=(clock or Clock()).now()).plan(request)


def run(
    spec: PipelineSpec | str | None = None,
    tasks: Sequence[str] = (),
    *,
    date: dt.date | dt.datetime | None = None,
    **options: Any,
) -> RunSummary:
    """Run a pipeline for one date: decide, run what must run, checkpoint, record.

    Options are those of :func:`run_dates`.
    """
    return run_dates(spec, tasks, dates=[date], **options)[0]


def run_dates(
    spec: PipelineSpec | str | None = None,
    tasks: Sequence[str] = (),
    *,
    dates: Sequence[dt.date | dt.datetime | None] = (None,),
    force: Sequence[str] = (),
    force_all: bool = False,
    dry_run: bool = False,
    keep_going: bool = False,
    resume: str | None = None,
    verify: bool = False,
    trust: bool | None = None,
    params: Mapping[str, object] | None = None,
    executor: str | Executor = "inline",
    jobs: int = 1,
    scheduler: str | None = None,
    reporter: Reporter | None = None,
    clock: Clock | None = None,
    store_url: str | None = None,
    lock_lease: float | None = None,
) -> list[RunSummary]:
    """Run a pipeline once per date (a backfill), all dates sharing one executor.

    ``executor`` is a registry name (inline, threads, processes, dask) or an executor
    object the caller owns; ``scheduler`` (or TARGETRUN_SCHEDULER, or the Pipelinefile's
    ``scheduler:``) runs the tasks on an existing Dask cluster. Without ``keep_going``,
    the dates after a failed one are not run.
    """
    spec = spec if isinstance(spec, PipelineSpec) else load(spec)
    request = RunRequest(tuple(tasks), tuple(force), force_all, dry_run, keep_going, resume, verify, trusting(trust))
    address = scheduler_address(spec, scheduler)
    summaries: list[RunSummary] = []
    with backends(spec, store_url) as opened:

        def plan_for(when: dt.date | dt.datetime | None) -> Plan:
            the_plan = plan(spec, request, run_context(spec, date=when, params=params), opened, clock=clock)
            if address is not None and not dry_run:
                check_shared_storage(the_plan)
            return the_plan

        if not dry_run:
            settle(opened, clock)
        first = plan_for(dates[0])  # before any executor starts: a bad file or target costs no cluster
        pool = make_executor(executor, jobs, address) if isinstance(executor, str) else executor
        try:
            engine = Engine(storages=opened.storage, store=opened.store, executor=pool,
                            reporter=reporter or NullReporter(), clock=clock,
                            lock_lease=lock_lease or settings.lock_lease())
            for index, when in enumerate(dates):
                summaries.append(engine.run(first if index == 0 else plan_for(when), request))
                if not summaries[-1].ok and not keep_going:
                    break
        except BaseException:  # stopped (a signal) or broken: do not wait for running tasks
            if isinstance(executor, str):
                pool.shutdown(wait=False)
            raise
        if isinstance(executor, str):
            pool.shutdown()
    return summaries


def status(
    spec: PipelineSpec | str | None = None,
    tasks: Sequence[str] = (),
    *,
    date: dt.date | dt.datetime | None = None,
    params: Mapping[str, object] | None = None,
    store_url: str | None = None,
    clock: Clock | None = None,
    verify: bool = False,
    trust: bool | None = None,
) -> StatusReport:
    """What exists, what would run and why -- without running anything."""
    spec = spec if isinstance(spec, PipelineSpec) else load(spec)
    context = run_context(spec, date=date, params=params)
    request = RunRequest(tuple(tasks), verify=verify, trust=trusting(trust))
    with backends(spec, store_url) as opened:
        settle(opened, clock)
        the_plan = plan(spec, request, context, opened, clock=clock)
        return build_status(the_plan, opened.storage, opened.store)


def invalidate(
    spec: PipelineSpec,
    task: str,
    *,
    date: dt.date | dt.datetime | None = None,
    params: Mapping[str, object] | None = None,
    store_url: str | None = None,
) -> list[str]:
    """Remove a task's target, its checkpoint record and its cache entries; say what went.

    Only a file that the state store has a checkpoint record for is removed -- something
    targetrun wrote there -- and never a folder: a target that is neither is refused
    (UsageError, exit 2) before anything is touched.
    """
    if task not in spec.tasks:
        raise UsageError(f"unknown task {task!r}", hint=did_you_mean(task, spec.tasks) or None)
    context = run_context(spec, date=date, params=params)
    removed: list[str] = []
    with backends(spec, store_url) as opened:
        planned = Planner(spec, context, opened.storage).render(spec.tasks[task])
        if planned.target is not None:
            storage = opened.storage(planned.target.result)
            url = planned.target.url
            if storage.exists(url):
                _check_removable(storage, url, opened.store.checkpoint(url) is not None)
                storage.remove(url)
                removed.append(f"target {url}")
            opened.store.forget_checkpoint(url)
        if planned.cache_key:
            count = opened.store.delete_cache(key=planned.cache_key)
            if count:
                removed.append(f"{count} cache entr{'y' if count == 1 else 'ies'} under {planned.cache_key!r}")
    return removed


def _check_removable(storage: Storage, url: str, recorded: bool) -> None:
    if storage.is_folder(url):
        raise UsageError(f"not removing {url}: it is a folder, and invalidate removes only files targetrun wrote",
                         hint="Delete it yourself if you mean to.")
    if not recorded:
        raise UsageError(f"not removing {url}: no checkpoint record in the state store says targetrun wrote it",
                         hint="Delete it yourself if you mean to; `targetrun run --force TASK` rewrites it.")


def gc(
    spec: PipelineSpec,
    *,
    keep_runs: int | None = None,
    older_than: float | None = None,
    dry_run: bool = False,
    store_url: str | None = None,
    clock: Clock | None = None,
) -> Collected:
    """Prune old runs' records, logs and values without a target, and stale spec caches
    (see :mod:`targetrun.housekeeping`); with neither limit, keep the last 20 runs."""
    if keep_runs is None and older_than is None:
        keep_runs = DEFAULT_KEEP_RUNS
    now = (clock or Clock()).now()
    with backends(spec, store_url) as opened:
        if not dry_run:
            settle(opened, clock)  # a write a dead run left half-way is resolved, not pruned
        found = collect(spec, opened.store, Policy(keep_runs, older_than), now, lock_lease())
        if not dry_run:
            apply(found, spec, opened.store, opened.storage)
    return found


def exit_code(summary: RunSummary | Sequence[RunSummary]) -> int:
    """0: every requested task satisfied; 1: a task failed; 2: a value did not fit its
    target's format or a format's library is missing; 3: a backend failed a task."""
    summaries = [summary] if isinstance(summary, RunSummary) else list(summary)
    if any(s.backend_failed for s in summaries):
        return EXIT_BACKEND
    if any(s.usage_failed for s in summaries):
        return EXIT_USAGE
    return EXIT_OK if all(s.ok for s in summaries) else EXIT_TASK_FAILED
