"""The Python API, and the composition root: the only place adapters are chosen.

>>> from targetrun import api                                    # doctest: +SKIP
>>> spec = api.load("Pipelinefile.yaml")                         # doctest: +SKIP
>>> summary = api.run(spec, params={"city": "paris"})            # doctest: +SKIP
>>> api.exit_code(summary)                                       # doctest: +SKIP
0

``load`` validates a Pipelinefile; ``plan`` decides without running; ``run`` runs and
returns a :class:`~targetrun.model.RunSummary`; ``status`` returns a
:class:`~targetrun.state.StatusReport`; ``history``, ``log_runs``, ``cache_entries``,
``clear_cache``, ``show`` and ``write_report`` read what runs left. The CLI is a thin
layer over these: it parses, calls one of them and renders the result (report/); only
this module opens state stores and storages for a command, and picks adapters by their
registry names. The clock and the lock lease are parameters (the CLI reads them from
``TARGETRUN_NOW`` and ``TARGETRUN_LOCK_LEASE`` once, in :mod:`targetrun.settings`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from targetrun import liveness, locate, scratch, settings, stopping
from targetrun.engine import Clock, Engine, Plan, Planner, RunRequest
from targetrun.checkpoints import CorruptCheckpoint, Expected, read_value
from targetrun.engine.recovery import holds, recover
from targetrun.errors import EXIT_BACKEND, EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE, SpecError, StorageError, TargetrunError, UsageError, check_known_tasks, did_you_mean
from targetrun.events import NullReporter, Reporter
from targetrun.executors import base as executors
from targetrun.executors.base import EXECUTORS, Executor, ExecutorOptions
from targetrun import redact
from targetrun.model import CacheEntry, Checkpoint, Location, PipelineSpec, PlannedTask, RunContext, RunSummary
from targetrun.resolve import INLINE, LOCAL, TaskRenderer, escapes_through_symlink, own_file, protocol, result_roots
from targetrun.envvars import expand_env
from targetrun.pipelinefile import load_pipeline
from targetrun.pipelinefile.values import check_param_name, check_param_value
from targetrun.serializers.base import SerializationError
from targetrun.storage.base import STORAGES, Storage
from targetrun.store.base import STORES, RunRecord, RunStatus, StateStore, StoreOptions, as_seen
from targetrun.store.rooted import RootedStore
from targetrun.templating import made_differently, param_text

if TYPE_CHECKING:  # imported where used: `run` needs neither (start-up time)
    from targetrun.certify import StatusWitness
    from targetrun.housekeeping import Collected
    from targetrun.replay import Ticket
    from targetrun.state import StatusReport

__all__ = ["load", "plan", "run", "run_dates", "status", "invalidate", "gc", "exit_code", "Backends", "Clock",
           "RunRequest"]
DEFAULT_KEEP_RUNS = 20  # what `targetrun gc` keeps when given no limit


def load(path: str | None = None, *, use_cache: bool = True, environ: Mapping[str, str] | None = None) -> PipelineSpec:
    """Find (``path`` may be a folder or None for the current one) and validate a Pipelinefile."""
    register_environment(environ)  # before the file is read: its errors may quote a value
    spec = load_pipeline(locate.pipelinefile(path), use_cache=use_cache)
    redact.register_spec(spec)
    return spec


def register_secrets(spec: PipelineSpec, environ: Mapping[str, str] | None = None) -> None:
    """Tell :mod:`targetrun.redact` every credential this process's environment and this
    pipeline's options hold (as written and with ``${VAR}`` expanded), so no output of
    this process shows them: not its streams, nor the logs and records of the tasks it runs."""
    register_environment(environ)
    redact.register_spec(spec)


def register_environment(environ: Mapping[str, str] | None = None) -> None:
    """Tell :mod:`targetrun.redact` the credentials of ``environ`` (this process's
    environment when not given), which a task -- or a library -- may print alone
    (``echo $GITHUB_TOKEN``). Every entry of this API passes here, through :func:`load`
    or :func:`backends`, so a Python caller is masked as the command line is. Run again
    on each call: a long-lived caller's environment may have gained a token since."""
    redact.register_environment(os.environ if environ is None else environ)


def validate(path: str | None = None) -> tuple[str, int, list[SpecError]]:
    """Everything ``run`` would refuse before running: the file's problems (all of them)
    and, for each well-formed Python task, its function -- imported, never called -- and
    its signature against ``args`` and ``needs``. Returns the file as messages name it,
    the number of tasks, and the problems in line order."""
    from targetrun.pipelinefile import check_file
    from targetrun.callables import resolve_callable

    register_environment()  # a problem may quote a value of the file that is a credential of the environment
    path = locate.pipelinefile(path)
    display, problems, tasks = check_file(path)
    root = os.path.dirname(os.path.abspath(path))
    for task in tasks.values():
        if task.run is not None:
            problems += resolve_callable(task, display, root)[1]
    return display, len(tasks), sorted(problems, key=lambda problem: problem.line or 0)


def run_context(
    spec: PipelineSpec,
    *,
    date: dt.date | dt.datetime | None = None,
    params: Mapping[str, object] | None = None,
    run_id: str | None = None,
) -> RunContext:
    """The template context of one run: the date, the parameters with overrides, an id."""
    return RunContext(spec.name, _run_date(date), merge_params(spec, params or {}), run_id or liveness.new_run_id())


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
        check_param_value(check_param_name(name), value)  # bounded before anything walks it
        if name not in spec.params:
            hint = did_you_mean(name, spec.params) or f"Declared parameters: {', '.join(spec.params) or 'none'}."
            raise UsageError(f"unknown parameter {name!r}", hint=hint + " Declare it under `params:` first.")
        params[name] = value
    redact.register_params(overrides)  # -p dsn=app:pw@db/x, -p db_password=pw: pw is masked from now on
    return params


@dataclass
class Backends:
    """The storages and state store one command uses; built lazily, closed together."""

    spec: PipelineSpec
    store_url: str | None = None
    store_options: StoreOptions | None = None  # None: as TARGETRUN_STORE_TIMEOUT says
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
            return STORAGES.get("inline")(self.store, kind, location, self.options)  # type: ignore[no-any-return]
        named = self.spec.results.get(key)
        proto = (protocol(named.url) if named else key) or key
        if proto in STORAGES and proto != "fsspec":
            return STORAGES.get(proto)(**(named.options if named else {}))  # type: ignore[no-any-return]
        if named is None:
            return STORAGES.get("fsspec")(proto, {})  # type: ignore[no-any-return]
        return STORAGES.get("fsspec")(proto, named.options, where=f"results.{key}.options",  # type: ignore[no-any-return]
                                      file=self.spec.path)

    @property
    def options(self) -> StoreOptions:
        if self.store_options is None:
            self.store_options = StoreOptions(settings.store_timeout())
        return self.store_options

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = open_store(self.spec, self.store_url, self.options)
        return self._store

    def close(self) -> None:
        try:
            if self._store is not None:
                self._store.close()
        finally:
            for storage in self._storages.values():
                storage.close()


def store_address(spec: PipelineSpec, url: str | None = None) -> tuple[str, str]:
    """Which state store a `cache:` value names (the registry entry serving its scheme),
    and its address as that store takes it (a URL, or a file path under the Pipelinefile's
    folder). ``${VAR}`` is taken from the environment, so no password needs to live in the file."""
    url = expand_env(url or spec.cache_url, "cache", file=spec.path)
    redact.register_url(url)
    kind = STORES.for_scheme(protocol(url) or "")
    if kind is None:
        raise SpecError(f"unknown state store {url!r}", file=spec.path, key="cache",
                        hint="Use a path (SQLite) or a redis://host:port/db URL.")
    store: type[StateStore] = STORES.get(kind)
    return kind, store.address(url, spec.root, file=spec.path)


def open_store(spec: PipelineSpec, url: str | None = None, options: StoreOptions | None = None) -> StateStore:
    """The state store a `cache:` value names, seen from this project: local locations in
    it are keyed relative to the Pipelinefile's folder (targetrun/store/rooted.py), so a
    moved or re-cloned project keeps its records."""
    kind, location = store_address(spec, url)
    store: type[StateStore] = STORES.get(kind)
    # the servers its result URLs and target URLs name with a password: the store keeps
    # locations without it, and what it gives back is reached with the Pipelinefile's
    logins = [*(root.url for root in result_roots(spec)), *(task.target for task in spec.tasks.values() if task.target)]
    return RootedStore(store.open(location, options or StoreOptions(settings.store_timeout())), spec.root, spec.name,
                       logins)


@contextmanager
def backends(spec: PipelineSpec, store_url: str | None = None) -> Iterator[Backends]:
    register_secrets(spec)  # API callers may build a spec without load()
    opened = Backends(spec, store_url)
    try:
        yield opened
    except BaseException:
        # What ended the command (a stop: 130/143; a fault) is what it reports: a store
        # that cannot take the writes it kept now (locked, gone) must not replace it.
        with contextlib.suppress(TargetrunError), stopping.hurried():
            opened.close()
        raise
    opened.close()


def make_executor(name: str = "inline", jobs: int = 1, scheduler: str | None = None,
                  scheduler_timeout: float | None = None) -> Executor:
    """An executor by registry name (built-in or plugin); a scheduler address implies dask."""
    options = ExecutorOptions(jobs, scheduler, settings.scheduler_timeout() if scheduler_timeout is None
                              else scheduler_timeout)
    name = executors.choose(name, options)
    return executors.create(EXECUTORS.get(name), options)


def trusting(trust: bool | None) -> bool:
    """``--trust``, else ``TARGETRUN_TRUST=1``: read pickles no run of this store recorded."""
    return trust if trust is not None else settings.trust()


def scheduler_address(spec: PipelineSpec, given: str | None = None) -> str | None:
    """``--scheduler``, else ``TARGETRUN_SCHEDULER``, else the Pipelinefile's ``scheduler:``
    (checked when the file loads) -- a well-formed one, or a UsageError naming where it came from."""
    for source, address in (("--scheduler", given), (settings.SCHEDULER, settings.scheduler())):
        if address:
            problem = settings.scheduler_problem(address)
            if problem is not None:
                raise UsageError(f"{source} {redact.clipped(address, 200)!r} is not a Dask scheduler address: it {problem}",
                                 hint=f"Write it as {settings.SCHEDULER_FORM}.")
            return address
    return spec.scheduler


def settle(opened: Backends, clock: Clock | None = None, lease: float | None = None) -> None:
    """Resolve checkpoint writes that a run which is gone left half-way (engine/recovery.py),
    before anything is decided or read: the project's own outputs stay trusted. The local
    temporary files of dead processes go too (targetrun/scratch.py)."""
    recover(opened.store, opened.storage, _now(clock), _lease(lease), spec=opened.spec)
    scratch.sweep_once()


def check_shared_storage(the_plan: Plan) -> None:
    """Workers elsewhere cannot write this machine's folders: refuse before anything runs."""
    for name in the_plan.order:
        checkpoint = the_plan.tasks[name].checkpoint
        if checkpoint is not None and checkpoint.result in (LOCAL, INLINE, "memory"):
            raise UsageError(
                f"task {name!r} writes to {checkpoint.url}, which workers on a remote Dask scheduler cannot reach",
                hint="Give it shared storage (result: s3://... or gs://...), or run without a scheduler "
                     "(--scheduler, TARGETRUN_SCHEDULER and the Pipelinefile's scheduler: name one).",
            )


def plan(spec: PipelineSpec, request: RunRequest, context: RunContext, opened: Backends, *, use_store: bool = True,
         clock: Clock | None = None) -> tuple[Plan, Planner]:
    """The plan, and the planner that made it (a run asks it to decide mapped tasks'
    children; ``status`` asks it what is stale about targets the plan did not need)."""
    store = opened.store if use_store else None
    planner = Planner(spec, context, opened.storage, store, now=(clock or Clock()).now())
    return planner.plan(request), planner


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
    scheduler_timeout: float | None = None,
    rebuild_stale: bool = False,
    ticket: Ticket | None = None,
) -> list[RunSummary]:
    """Run a pipeline once per date (a backfill), all dates sharing one executor.

    ``executor`` is a registry name (inline, threads, processes, dask) or an executor
    object the caller owns; ``scheduler`` (or TARGETRUN_SCHEDULER, or the Pipelinefile's
    ``scheduler:``) runs the tasks on an existing Dask cluster. Without ``keep_going``,
    the dates after a failed one are not run. ``ticket``: the command line of a run that
    may leave a no-op certificate for the next identical one (:mod:`targetrun.certify`).
    """
    spec = spec if isinstance(spec, PipelineSpec) else load(spec)
    request = RunRequest(tuple(tasks), tuple(force), force_all, dry_run, keep_going, resume, verify, trusting(trust),
                         rebuild_stale=rebuild_stale, report_stale=dry_run)
    address = scheduler_address(spec, scheduler)
    summaries: list[RunSummary] = []
    with backends(spec, store_url) as opened:

        def plan_for(when: dt.date | dt.datetime | None) -> tuple[Plan, Planner]:
            the_plan, planner = plan(spec, request, run_context(spec, date=when, params=params), opened, clock=clock)
            if address is not None and not dry_run:
                check_shared_storage(the_plan)
            return the_plan, planner

        if resume is not None and opened.store.run(resume) is None:
            raise UsageError(f"--resume {resume!r}: the state store has no such run",
                             hint="See `targetrun history` for run ids, or give --resume alone for the latest failed run.")
        if not dry_run:
            settle(opened, clock, lock_lease)
        # before any executor starts: a bad file or target costs no cluster (and dropped once run:
        # a backfill holds one date's plan at a time)
        first: tuple[Plan, Planner] | None = plan_for(dates[0])
        pool = make_executor(executor, jobs, address, scheduler_timeout) if isinstance(executor, str) else executor
        try:
            engine = Engine(storages=opened.storage, store=opened.store, executor=pool,
                            reporter=reporter or NullReporter(), clock=clock,
                            lock_lease=_lease(lock_lease))
            for when in dates:
                the_plan, planner = first if first is not None else plan_for(when)
                first = None
                summaries.append(engine.run(the_plan, request, planner))
                if ticket is not None and len(dates) == 1:
                    from targetrun.certify import certify

                    certify(ticket, the_plan, planner, summaries[-1], opened.store)
                if not summaries[-1].ok and not keep_going:
                    break
            if isinstance(executor, str):
                # Within the try: a stop while the workers are told to go, or waited for, has
                # them ended too -- an idle worker process would wait for work forever,
                # holding the run's stdout and stderr open.
                pool.shutdown()
        except BaseException:  # stopped (a signal) or broken: do not wait for running tasks
            if isinstance(executor, str):
                pool.shutdown(wait=False)
            raise
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
    lock_lease: float | None = None,
    witness: StatusWitness | None = None,
) -> StatusReport:
    """What exists, what would run and why -- without running anything. ``witness``: told
    the store before planning reads it, and the plan (the CLI certifies its table with it:
    targetrun/status_replay.py)."""
    spec = spec if isinstance(spec, PipelineSpec) else load(spec)
    context = run_context(spec, date=date, params=params)
    request = RunRequest(tuple(tasks), verify=verify, trust=trusting(trust), report_stale=True)
    with backends(spec, store_url) as opened:
        settle(opened, clock, lock_lease)
        if witness is not None:
            witness.before(opened.store)
        the_plan, planner = plan(spec, request, context, opened, clock=clock)
        if witness is not None:
            witness.after(the_plan)
        from targetrun.state import build_status

        return build_status(the_plan, opened.storage, opened.store, planner)


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
    check_task(spec, task)
    context = run_context(spec, date=date, params=params)
    removed: list[str] = []
    with backends(spec, store_url) as opened:
        every = _invalidated(spec, TaskRenderer.for_run(spec, context), task)
        doomed: list[tuple[Storage, str]] = []
        for planned in every:  # each checked before anything is touched
            if planned.target is not None:
                storage = opened.storage(planned.target.result)
                url = planned.target.url
                if storage.exists(url):
                    _check_removable(storage, url, opened.store.checkpoint(url))
                    doomed.append((storage, url))
        for storage, url in doomed:
            storage.remove(url)  # first: a record left without its target only has the next run rewrite it
            removed.append(f"target {url}")
        try:
            for planned in every:
                if planned.target is not None:
                    opened.store.forget_checkpoint(planned.target.url)
            for key in dict.fromkeys(planned.cache_key for planned in every if planned.cache_key):
                count = opened.store.delete_cache(key=key)
                if count:
                    removed.append(f"{count} cache entr{'y' if count == 1 else 'ies'} under {key!r}")
        except TargetrunError as exc:
            if removed:  # say what did happen: the error alone reads as if nothing had
                exc.message = (f"{' and '.join(removed)} already removed, but its records were not: {exc.message}; "
                               f"run `targetrun invalidate {task}` again to remove them")
            raise
    return removed


def _invalidated(spec: PipelineSpec, renderer: TaskRenderer, name: str) -> list[PlannedTask]:
    """The task as ``invalidate`` removes it: itself, or every child of a mapped task whose
    items are known without running anything (a list, a parameter); one mapping over
    another task's value is refused (UsageError): its children are not known."""
    from targetrun.engine.mapping import static_items

    task = spec.tasks[name]
    if task.foreach is None:
        return [renderer.render(task)]
    try:
        items = static_items(task.foreach, renderer.base, renderer.budget)
    except ValueError as exc:
        raise UsageError(f"cannot invalidate {name!r}: {exc}", hint="Check the values that fill its foreach.") from None
    if items is None:
        upstream = renderer.render(task).mapped_upstream
        raise UsageError(f"cannot invalidate {name!r}: it maps over the value of {upstream!r}, so its children are not "
                         "known without reading it",
                         hint=f"Run `targetrun run --force {name}` to remake them, or delete their targets yourself.")
    return [renderer.render(task, index, item) for index, item in enumerate(items)]


def _check_removable(storage: Storage, url: str, record: Checkpoint | None) -> None:
    """Remove only what targetrun wrote: a file whose bytes are still those its record names."""
    if storage.is_folder(url):
        raise UsageError(f"not removing {url}: it is a folder, and invalidate removes only files targetrun wrote",
                         hint="Delete it yourself if you mean to.")
    if record is None:
        raise UsageError(f"not removing {url}: no checkpoint record in the state store says targetrun wrote it",
                         hint="Delete it yourself if you mean to; `targetrun run --force TASK` rewrites it.")
    if not holds(storage, url, record):
        raise UsageError(f"not removing {url}: its bytes are no longer the ones targetrun wrote there",
                         hint="Something else replaced it; delete it yourself if you mean to.")


def gc(
    spec: PipelineSpec,
    *,
    keep_runs: int | None = None,
    older_than: float | None = None,
    dry_run: bool = False,
    store_url: str | None = None,
    clock: Clock | None = None,
    lock_lease: float | None = None,
) -> Collected:
    """Prune old runs' records, logs and values without a target, and stale spec caches
    (see :mod:`targetrun.housekeeping`); with neither limit, keep the last 20 runs."""
    from targetrun.housekeeping import Policy, apply, collect

    if keep_runs is None and older_than is None:
        keep_runs = DEFAULT_KEEP_RUNS
    now = (clock or Clock()).now()
    with backends(spec, store_url) as opened:
        if not dry_run:
            settle(opened, clock, lock_lease)  # a write a dead run left half-way is resolved, not pruned
        found = collect(spec, opened.store, Policy(keep_runs, older_than), now, _lease(lock_lease))
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


# -- reading what runs left (history, logs, cache, show, report) -------------------------
#
# The CLI's read-only commands: each opens the state store here, so the command line only
# parses and renders, and report/ only renders what these return.


def _lease(given: float | None) -> float:
    return settings.lock_lease() if given is None else given


def _now(clock: Clock | None) -> float:
    return (clock or Clock()).now()


def history(spec: PipelineSpec, limit: int = 20, *, clock: Clock | None = None, lock_lease: float | None = None,
            store_url: str | None = None) -> list[RunRecord]:
    """Recent runs, newest first, as a user should see them (a run whose process is gone has died)."""
    now, lease = _now(clock), _lease(lock_lease)
    with backends(spec, store_url) as opened:
        return [as_seen(run, now, lease) for run in opened.store.runs(spec.name, limit)]


def latest_failed_run(spec: PipelineSpec, *, clock: Clock | None = None, lock_lease: float | None = None,
                      store_url: str | None = None) -> str:
    """The id of the newest run that failed, was interrupted, broke or died (``--resume``)."""
    for record in history(spec, 50, clock=clock, lock_lease=lock_lease, store_url=store_url):
        if record.status in (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.BROKEN, RunStatus.DIED):
            return record.run_id
    raise UsageError("--resume: there is no failed or interrupted run to resume", hint="See `targetrun history`.")


def check_task(spec: PipelineSpec, task: str, *, children: bool = False) -> None:
    """``task`` (with ``children``, or a mapped child ``task[3]``) is one of the Pipelinefile's,
    else exit 2 with did-you-mean."""
    check_known_tasks([task], spec.tasks, children=children)


def log_runs(spec: PipelineSpec, task: str, *, store_url: str | None = None) -> tuple[list[str], int | None]:
    """Where to look for ``task``'s latest log: run ids, the run of its latest record first,
    and that record's attempt count (None when no record says)."""
    check_task(spec, task, children=True)
    with backends(spec, store_url) as opened:
        latest = opened.store.last_task_records(spec.name).get(task)
        runs = [r.run_id for r in opened.store.runs(spec.name, limit=200)]
    if latest is not None and latest.attempts > 0:
        return [latest.run_id] + [r for r in runs if r != latest.run_id], latest.attempts
    return runs, None


def cache_entries(spec: PipelineSpec, *, every: bool = False, store_url: str | None = None) -> list[CacheEntry]:
    """The cache entries of this pipeline (``every``: of every pipeline sharing the store)."""
    with backends(spec, store_url) as opened:
        return opened.store.list_cache(None if every else spec.name)


def clear_cache(spec: PipelineSpec, *, key: str | None = None, task: str | None = None, every: bool = False,
                expired: bool = False, clock: Clock | None = None, store_url: str | None = None) -> int:
    """Delete cache entries (this pipeline's, under ``key``, of ``task``, or the expired
    ones); targets are not touched. Returns how many went."""
    if task is not None:
        check_task(spec, task)
    with backends(spec, store_url) as opened:
        return opened.store.delete_cache(key=key, task=task, pipeline=None if every or key else spec.name,
                                         expired_before=_now(clock) if expired else None)


@dataclass(frozen=True)
class Shown:
    """What ``targetrun show`` prints: where a task's value is, and the value (when read)."""

    location: str
    value: object = None


def show(
    spec: PipelineSpec,
    task: str,
    *,
    date: dt.date | dt.datetime | None = None,
    params: Mapping[str, object] | None = None,
    location_only: bool = False,
    trust: bool | None = None,
    clock: Clock | None = None,
    lock_lease: float | None = None,
    store_url: str | None = None,
) -> Shown:
    """A task's checkpointed value, read like every other read (see :mod:`targetrun.checkpoints`):
    a pickle only if this store recorded it and its sha256 matches; a recorded checkpoint
    that differs is refused (exit 2), with ``trust`` too. A task without a target keeps one
    value per run: the newest one made with the parameter values and date asked for."""
    check_task(spec, task, children=True)
    context = run_context(spec, date=date, params=params)
    with backends(spec, store_url) as opened:
        settle(opened, clock, lock_lease)
        planned = _shown_task(spec, TaskRenderer.for_run(spec, context), task)
        name = planned.spec.name
        where, codec = planned.target, planned.serializer
        if where is None and planned.is_gather:
            raise UsageError(f"task {task!r} is mapped (foreach): each of its children ({task}[0], {task}[1], ...) "
                             "has a value of its own, and the task none besides them",
                             hint=f"`targetrun show {task}[0]` shows one; `targetrun status {task}` lists the "
                                  "children and their targets; a task that needs it receives the list of their values.")
        if where is None:
            checkpoint = _made_as_asked(opened.store.task_checkpoints(spec.name, task), task, context)
            where, codec = Location(checkpoint.storage, checkpoint.location), checkpoint.serializer
        if location_only:
            return Shown(where.url)
        if where.result == LOCAL:
            _refuse_outside(spec, spec.tasks[name].result, where.url, name)
        written = opened.store.checkpoint(where.url)
        codec = written.serializer if written else codec  # as it was written, never by a guess
        try:
            value = read_value(opened.storage(where.result), where.url, codec, expected=Expected.of(written),
                               trust=trusting(trust), task=task)
        except FileNotFoundError:
            raise UsageError(f"{where.url} does not exist", hint=f"Run `targetrun run {name}` first.") from None
        except CorruptCheckpoint as exc:
            raise UsageError(f"{exc}; refusing to show it", hint=f"Run `targetrun run {name}` to rebuild it.") from None
        except SerializationError as exc:
            raise UsageError(f"cannot read {where.url} as {codec}: {exc}") from None
        return Shown(where.url, value)


def _shown_task(spec: PipelineSpec, renderer: TaskRenderer, name: str) -> PlannedTask:
    """The task ``show`` reads: ``name`` itself, or the child ``name[N]`` of a mapped task
    whose items are known without running anything (a list, a parameter)."""
    from targetrun.engine.mapping import static_items

    parent, bracket, rest = name.partition("[")
    task = spec.tasks[parent]
    if not bracket:
        return renderer.render(task)
    if not rest.endswith("]") or not rest[:-1].isdigit() or not rest[:-1].isascii():
        raise UsageError(f"{name!r} is not a child of {parent!r}", hint=f"Name one as {parent}[0], {parent}[1], ...")
    index = int(rest[:-1])
    if task.foreach is None:
        raise UsageError(f"task {parent!r} is not mapped (no foreach): it has no children",
                         hint=f"Name it alone: `targetrun show {parent}`.")
    try:
        items = static_items(task.foreach, renderer.base, renderer.budget)
    except ValueError as exc:
        raise UsageError(f"cannot show {name!r}: {exc}", hint="Check the values that fill its foreach.") from None
    if items is None:
        raise UsageError(f"cannot show {name!r}: {parent!r} maps over the value of "
                         f"{renderer.render(task).mapped_upstream!r}, so its children are not known without reading it",
                         hint=f"A task that needs {parent!r} receives the list of their values.")
    if index >= len(items):
        raise UsageError(f"{name!r}: {parent!r} has {len(items)} child{'' if len(items) == 1 else 'ren'} "
                         f"({parent}[0] to {parent}[{len(items) - 1}])" if items else f"{parent!r} has no children",
                         hint="Check the values that fill its foreach (-p, --params-file).")
    return renderer.render(task, index, items[index])


def _refuse_outside(spec: PipelineSpec, result: str, url: str, task: str) -> None:
    """A target replaced by a symlink out of its result location is not shown: it would
    print a file of someone else's choosing."""
    real = escapes_through_symlink(spec, result, url)
    if real is not None and os.path.isfile(real):  # (a link to a device or FIFO is refused as one: exit 3)
        raise UsageError(f"not showing {url}: it is a symlink to {real}, outside its result location",
                         hint=f"A target stays inside its result location; remove the link and run "
                              f"`targetrun run {task}` to rebuild it.")


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


DEFAULT_HISTORY = 30  # runs the report's history strip shows


def write_report(spec: PipelineSpec, path: str, run_ids: Sequence[str] = (), last: int = DEFAULT_HISTORY, *,
                 clock: Clock | None = None, lock_lease: float | None = None, store_url: str | None = None) -> str:
    """Gather the runs' records (nothing runs, no checkpoint is read), render the HTML and
    write it atomically (a temporary sibling, then rename). Returns the path written."""
    from targetrun.runview import choose_runs, collect
    from targetrun.report.html import render_report

    what = own_file(spec, path)
    if what is not None:
        raise UsageError(f"not writing the report to {path}: it is {what}",
                         hint="Give -o (or --report) a path of its own, such as targetrun-report.html.")
    now, lease = _now(clock), _lease(lock_lease)
    with backends(spec, store_url) as opened:
        _not_a_target(opened.store, path)
        runs = choose_runs(opened.store, spec.name, run_ids, now, lease)
        recent = [as_seen(r, now, lease) for r in opened.store.runs(spec.name, last)]
        data = collect(spec, opened.store, runs, recent, now)
    page = render_report(data).encode("utf-8")
    _write_output_file(path, page)
    return path


def _not_a_target(store: StateStore, path: str) -> None:
    """Refuse to write a report over a checkpoint a run recorded (``-o out/data.csv``): the
    target would hold HTML under a record of other bytes, its value lost."""
    for candidate in dict.fromkeys((os.path.normpath(os.path.abspath(path)), os.path.realpath(path))):
        checkpoint = store.checkpoint(candidate)
        if checkpoint is not None:
            raise UsageError(f"not writing the report to {path}: it is the target of task {checkpoint.task!r}",
                             hint="Give -o (or --report) a path of its own, such as targetrun-report.html.")


def _unwritable(what: str, exc: OSError, hint: str) -> TargetrunError:
    """A file the user named that cannot be written: the disk refusing it (full, over
    quota, read-only) is the disk's, exit 3 with what to do -- not a wrong path (exit 2,
    "give a writable file path", when the path was fine)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(f"{what}: the disk is full ({exc.strerror})",
                            hint="Make room on that disk, or give a path on another one.")
    if exc.errno == errno.EROFS:
        return StorageError(f"{what}: {exc.strerror}", hint="Give a path on a writable disk.")
    return UsageError(f"{what}: {exc.strerror or exc}", hint=hint)


def _write_output_file(path: str, data: bytes) -> None:
    """Write a file the user named: a regular file (or a new one, in an existing folder) is
    replaced atomically (a temporary sibling, then rename); anything else that is there -- a
    device such as /dev/stdout, a pipe, a symlink -- is written *into*, never replaced."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # made only below the current folder, never anywhere else
        if os.path.commonpath([folder, os.getcwd()]) != os.getcwd():
            raise UsageError(f"cannot write {path}: the folder {folder} does not exist",
                             hint="Create the folder first, or give another path.")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise _unwritable(f"cannot write {path}", exc, "Give a writable file path.") from None
    try:
        if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
            with open(path, "wb") as f:
                f.write(data)
            return
    except OSError as exc:
        raise _unwritable(f"cannot write {path}", exc, "Give a writable file path.") from None
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "xb") as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise _unwritable(f"cannot write the report to {path}", exc, "Give a writable file path.") from None
    finally:  # a failed write, or a stop (Ctrl-C) before the rename, leaves no temporary file behind
        if os.path.lexists(temporary):
            with contextlib.suppress(OSError):
                os.remove(temporary)

