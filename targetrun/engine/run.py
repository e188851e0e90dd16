"""Running a plan: one scheduling loop over an executor's ``submit``.

The loop reads like the docs: tasks whose needs are done are *submitted*; each finished
attempt is either *recorded* (its checkpoint committed through
:mod:`~targetrun.engine.writes`, its record kept, its value kept for the tasks that need
it, dependents released) or *retried* after ``retry_delay`` (its inputs stay in memory),
or *failed* (its dependents are blocked; without ``keep_going`` nothing new starts).
Decisions, records and events all happen here, in the coordinating thread; workers only
run :func:`~targetrun.engine.work.execute`.

A submitted attempt is *queued* (TaskQueued); it is *running* (TaskStarted) when a worker
begins it: the worker's start notice comes back through the queue the loop already waits
on (or, when the worker is this very thread, is handled at once), so reporters are only
ever called from the coordinating thread. A finished attempt whose notice has not arrived
yet is announced as started first, so every attempt reads queued, started, then its end.
With the inline executor the loop's thread would only wait while a command runs (on
another core): a hook it runs then (:meth:`Engine._meanwhile`) does what the next start
need not wait for -- it keeps and commits the records of the successes before, works out
what the running task's record will say it was made from, and stages and claims the task
that waits for it alone. Between one command's exit and the next one's start there is
then one commit (the prepared record) and one rename.

While a run is on, this process's fds 1 and 2 point at the capture sink
(:mod:`targetrun.capture`): nothing a task or a library writes there reaches
targetrun's own stdout.
"""

from __future__ import annotations

import contextlib
import heapq
import pickle
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from targetrun import dag, fingerprint, liveness, stopping, templating
from targetrun.checkpoints import Expected, needs_record, verify_checkpoint
from targetrun.callables import running_tasks
from targetrun.capture import process_output, unattributed_output
from targetrun.engine.cache import new_entry, task_inputs
from targetrun.engine.decide import NOT_NEEDED, Facts, decide, needs_inputs
from targetrun.engine.locks import RunLocks
from targetrun.engine.mapping import as_items
from targetrun.engine.plan import Plan, RunRequest
from targetrun.engine.recovery import holds
from targetrun.engine.scope import Planning, RunScope
from targetrun.engine.writes import Writes
from targetrun.engine.work import (
    Attempt, CorruptInput, Input, Job, WorkError, WorkResult, Watched, execute, undo_lost, watch_target,
)
from targetrun.errors import EXIT_BACKEND, EXIT_USAGE, SpecError, SpecProblems, StorageError, TargetrunError
from targetrun.callables import resolve_callable
from targetrun.staleness import DepState
from targetrun.events import (
    Event,
    Reporter,
    RunFinished,
    RunOutput,
    RunStarted,
    TaskBlocked,
    TaskFailed,
    TaskGathered,
    TaskPlanned,
    TaskQueued,
    TaskRetrying,
    TaskSkipped,
    TaskStarted,
    TaskSucceeded,
    acts_on,
    wanted,
)
from targetrun.executors.base import Executor
from targetrun.model import (
    CacheEntry, Checkpoint, Decision, PipelineSpec, PlannedTask, Reason, RunSummary, Stale, TaskOutcome, TaskState,
)
from targetrun.redact import bounded, redact
from targetrun.resolve import default_checkpoint, infer_serializer
from targetrun.storage.base import Storage
from targetrun.store.base import RunRecord, RunStatus, StateStore, TaskRecord


WAKE_UP = 0.5  # seconds: the loop wakes at least this often (retries due, Ctrl-C)
KEPT_FOR = 0.005  # seconds the loop waits for an attempt to end before it commits what the store kept
RECORDS_AT_ONCE = 16  # successes recorded in one write, at most (see Engine._records_now)
ERROR_KEPT = 10_000  # characters of a task's error recorded and shown (its start; see redact.bounded)
DETAILS_KEPT = 20_000  # ... and of its traceback or last stderr lines, from the start and from the end each
AHEAD_PER_SLOT = 4  # ready tasks claimed ahead per attempt the executor keeps in flight (see _claim_ahead)


@dataclass
class Clock:
    """Wall time for records, monotonic time and sleep for delays; tests inject fakes."""

    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class _Start:
    """A worker began submission ``ticket`` of ``task``."""

    task: str
    ticket: int


@dataclass(frozen=True)
class _Unkept:
    """A success whose record the store has not been handed yet (see Engine._record)."""

    record: TaskRecord
    checkpoint: Checkpoint | None
    entry: CacheEntry | None
    staging: str | None


@dataclass(frozen=True)
class _Made:
    """A success about to be recorded (see Engine._record_all)."""

    name: str
    task: PlannedTask
    result: WorkResult
    staging: str | None
    checkpoint: Checkpoint | None
    entry: CacheEntry | None

    @property
    def moves(self) -> bool:
        """Whether a staged checkpoint is moved onto its target."""
        return self.task.checkpoint is not None and self.checkpoint is not None and self.staging is not None


@dataclass(frozen=True)
class _Making:
    """What a task's value is made from that its attempt does not change: its inputs'
    fingerprints and what they were made with (see Engine._made_meanwhile)."""

    inputs: dict[str, str]
    made: dict[str, str]
    made_for: str | None


@dataclass
class _Progress:
    """The loop's state, one run."""

    waiting: dict[str, int]  # upstream tasks of the run set still unfinished
    consumers: dict[str, int]  # downstream tasks still to start, per task with a value in memory
    dependents: dict[str, list[str]]  # within the run set
    ready: deque[str] = field(default_factory=deque)
    later: list[tuple[float, str]] = field(default_factory=list)  # heap of (due, task): retries, lock waits
    inflight: dict[Future[Any], str] = field(default_factory=dict)
    finished: queue.SimpleQueue[Future[Any] | _Start] = field(default_factory=queue.SimpleQueue)  # done-callbacks, starts
    announced: dict[str, tuple[int, bool]] = field(default_factory=dict)  # in flight: (ticket, TaskStarted emitted)
    tickets: int = 0  # submissions so far
    running: int = 0  # attempts announced as started and not yet ended
    deferred: deque[tuple[str, int]] = field(default_factory=deque)  # start notices while every worker looked busy
    values: dict[str, object] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, TaskOutcome] = field(default_factory=dict)
    records: dict[str, Checkpoint | None] = field(default_factory=dict)  # store records of checkpoints read
    rebuilt: set[str] = field(default_factory=set)  # skipped tasks rebuilt because a reader found them corrupt
    spared: set[str] = field(default_factory=set)  # tasks submitted again once: lost only with another's attempt
    contended: set[str] = field(default_factory=set)  # tasks whose lock another run held when they were due
    deps_read: dict[str, DepState] = field(default_factory=dict)  # deps fingerprinted before their task ran
    unkept: deque[_Unkept] = field(default_factory=deque)  # successes whose records wait for the next command
    making: dict[str, _Making] = field(default_factory=dict)  # worked out while the task's command ran
    watched: dict[str, Watched | None] = field(default_factory=dict)  # a target before an attempt elsewhere began
    early: set[str] = field(default_factory=set)  # staged and claimed while their last upstream ran
    succeeded: list[tuple[str, WorkResult, _Making | None]] = field(default_factory=list)  # not recorded yet
    stopping: bool = False
    ending: bool = False  # the run's end holds stops back (see Engine._end): it finishes whatever comes
    handing: str | None = None  # the task being submitted, its future not kept yet (see Engine._hand_over)
    request: RunRequest = field(default_factory=RunRequest)


class Engine:
    def __init__(
        self,
        *,
        storages: Callable[[str], Storage],
        store: StateStore,
        executor: Executor,
        reporter: Reporter,
        clock: Clock | None = None,
        lock_lease: float | None = None,
        lock_poll: float = 0.05,
    ) -> None:
        self.storages = storages
        self.store = store
        self.executor = executor
        self.reporter = reporter
        self._watching = False  # whether the executor's start notices reach the loop (see _watch_starts)
        self._begun: RunRecord | None = None  # the run's record as begun (written again if the store lost it)
        self._overlaps = False  # whether the executor runs our hook while a command runs (see _meanwhile)
        self._current: _Progress | None = None  # the run on, for _tell and that hook
        self._scope: RunScope | None = None  # and its scope, for that hook
        self.clock = clock or Clock()
        self.lock_lease = lock_lease or 60.0
        self.lock_poll = lock_poll

    # -- the run -------------------------------------------------------------------

    def run(self, plan: Plan, request: RunRequest, planning: Planning) -> RunSummary:
        """Run what ``plan`` says must run (``planning``: the planner that made it, which
        decides mapped tasks' children once their items are known)."""
        started = self.clock.now()
        if request.dry_run:
            return self._dry_run(plan, started, planning)
        # from the imports on: what tasks print is theirs, stdout stays ours; and a thread a
        # task started does not end the run with os._exit (callables.running_tasks)
        with process_output(), running_tasks(fresh=True):
            return self._run(RunScope(plan, planning), request, started)

    def _run(self, scope: RunScope, request: RunRequest, started: float) -> RunSummary:
        functions = self._preflight(scope)
        progress = self._progress(scope, request)
        self.locks = RunLocks(self.store, scope.run_id, self.lock_lease)
        self.writes = Writes(self.store, self.storages, scope.run_id)
        self._watching = False
        self._current, self._scope = progress, scope
        status = RunStatus.INTERRUPTED
        begun = False  # the run's record exists: from then on, however it ends, it is recorded
        ended: BaseException | None = None  # what ended the run, if it did not end by itself
        try:
            try:
                # A stop during the record's write is raised once it is written, and known so.
                with stopping.deferred():
                    # The record keeps the tasks named on the command line, not the sinks they default
                    # to: a run of a 10,000-task pipeline must not store 10,000 names, every time.
                    self._begun = RunRecord(scope.run_id, scope.spec.name, started,
                                            requested=tuple(dict.fromkeys(request.tasks)),
                                            owner=liveness.owner_id(), heartbeat=started)
                    self.store.begin_run(self._begun)
                    begun = True
                self._tell(RunStarted(scope.run_id, scope.spec.name, scope.plan.requested, len(scope.decisions),
                                      len(scope.order), date=f"{scope.context.date:%Y-%m-%d}"))
                self._report_skips(scope)
                self.locks.start()  # renews the run's heartbeat (and later its locks) from now on
                self._watching = self._watch_starts(scope, progress)
                self._overlaps = self._overlap()
                self._loop(scope, progress, functions)
                status = RunStatus.SUCCEEDED
            except BaseException as exc:
                status, ended = _ended_by(exc), exc
                raise
            finally:
                if begun:  # (a store that could not begin it has nothing to end)
                    with stopping.hurried(ended is not None):  # a stop or a fault: record what the store takes at once
                        summary = self._end(scope, progress, started, status, ended)
        except KeyboardInterrupt as stop:
            # The stop (a process gets one: a second exits at once) landed on the way into the
            # end, before the end holds stops back -- at the `finally`, or in _end's first
            # lines: the end is done all the same, as a stop's, and the stop raised once it is.
            # Else the run's locks stayed in the store, its last records unkept and the run 'running'.
            if begun and not progress.ending:
                with stopping.hurried():
                    self._end(scope, progress, started, status, ended or stop)
            raise
        return summary

    def _end(self, scope: RunScope, progress: _Progress, started: float, status: RunStatus,
             ended: BaseException | None) -> RunSummary:
        """The end of a run however it ends: staged writes removed, locks released, the run
        recorded -- as far as the store lets it when a stop or a fault ended it (``ended``)."""
        if self._watching:
            self.executor.watch_starts(None)  # type: ignore[attr-defined]
        if self._overlaps:
            self.executor.overlap(None)  # type: ignore[attr-defined]
            self._overlaps = False
        # (Successes still waiting for their records are not recorded now: nothing is committed
        # after a stop; their staging files go with the rest below, and the next run makes them.)
        summary = self._summary(scope, progress, started)
        if status is RunStatus.SUCCEEDED and not summary.ok:
            status = RunStatus.BROKEN if summary.backend_failed else RunStatus.FAILED
        if ended is not None:  # a stop or a fault: nothing runs on, nothing is waited for
            stopping.kill_commands()
            cut_short = self._may_still_write(progress)  # (their futures are done once their workers are gone)
            self.executor.shutdown(wait=False)
            # An attempt cut short elsewhere undoes nothing itself: a worker process ends at once
            # (its executor's shutdown returns once it has); a pool thread cannot be stopped, and
            # the command ends without waiting for it (cli.main).
            with stopping.deferred():
                for name in cut_short:
                    undo_lost(progress.watched.pop(name, None), scope.spec.root)
        # A run ended by a stop or a fault is recorded as far as the store lets it; a
        # store that fails now must not turn that stop (130) or fault into another error.
        # And a stop that arrives now is raised once the run is recorded, not before: a run
        # whose tasks are all done must not be left 'running' (to show as 'died').
        with contextlib.suppress(TargetrunError) if ended is not None else contextlib.nullcontext():
            with stopping.deferred():
                progress.ending = True  # from here on the end finishes, whatever stop comes
                self._keep_records(progress)
                self.writes.discard_all(self._may_still_write(progress), stopped=ended is not None)
                self.locks.release_all()
                with contextlib.suppress(TargetrunError):  # what `targetrun report` shows of skipped tasks
                    self.store.record_outcomes(scope.run_id, summary.outcomes, f"{scope.context.date:%Y-%m-%d}")
                self.store.finish_run(scope.run_id, status, summary.finished, _counts(summary))
                if ended is None:
                    self._record_again_if_lost(scope, summary, status)
            self._current = self._scope = None
            stray = unattributed_output()
            if stray.strip():
                self._tell(RunOutput(stray))
            self._tell(RunFinished(summary))
        return summary

    def _record_again_if_lost(self, scope: RunScope, summary: RunSummary, status: RunStatus) -> None:
        """A state store that restarted during the run (Redis without persistence) lost
        what the run had recorded before: the run's own record, and the records that vouch
        for the checkpoints it wrote -- which the next run would then refuse to load as
        untrusted, or take for files someone else wrote. Each checkpoint of this run whose
        record is gone is recorded again if its target still holds exactly the recorded
        bytes, and so is the run."""
        if not self.store.restarted_since_begin():
            return
        if self._begun is not None:  # (a heartbeat since may have left a record of that field alone)
            self.store.begin_run(self._begun)
            self.store.finish_run(scope.run_id, status, summary.finished, _counts(summary))
        written = [o.checkpoint for o in summary.outcomes
                   if o.checkpoint is not None and o.checkpoint.run_id == scope.run_id]
        there = self.store.checkpoints([c.location for c in written])
        for checkpoint in written:
            if checkpoint.location not in there and holds(self.storages(checkpoint.storage), checkpoint.location,
                                                          checkpoint):
                self.store.record_task(None, checkpoint, None)

    @staticmethod
    def _may_still_write(progress: _Progress) -> set[str]:
        """The tasks whose attempt may still write to its staging place: those in flight --
        an attempt whose future is done writes no more (the inline executor's always is) --
        and one being handed to the executor (see _hand_over)."""
        running = {name for future, name in progress.inflight.items() if not future.done()}
        return (running | {progress.handing}) if progress.handing is not None else running

    def _loop(self, scope: RunScope, progress: _Progress, functions: dict[str, Any]) -> None:
        succeeded = progress.succeeded  # their records are prepared in one write (see _records_now)
        starts: list[_Start] = []  # of one wake-up: told after its ends (never more shown running than workers)
        while progress.inflight or succeeded or (not progress.stopping and (progress.ready or progress.later)):
            stopping.deliver_lost()  # a stop something swallowed still ends the run (130), never a task
            self._submit_ready(scope, progress, functions)
            done = self._wait(progress)
            for future in done:
                if isinstance(future, _Start):
                    starts.append(future)
                    continue
                name = progress.inflight.pop(future)
                making = progress.making.pop(name, None)
                watched = progress.watched.pop(name, None)
                ticket = progress.announced.get(name, (0, True))[0]
                self._surely_started(scope, progress, name)
                try:
                    succeeded.append((name, future.result(), making))
                except CorruptInput as exc:
                    self._rebuild_input(scope, progress, name, exc)
                except WorkError as exc:
                    self._attempt_failed(scope, progress, name, exc)
                except Exception as exc:  # the executor lost the task (a worker died, ...)
                    lost = _lost(exc, getattr(self.executor, "explain_loss", None))
                    spared = self._spared(progress, name, exc, ticket)
                    with stopping.deferred():
                        said = undo_lost(watched, scope.spec.root)
                    if said:
                        lost.message = lost.message.rstrip(".") + said
                    if spared:
                        self._run_again(progress, name, lost)
                    else:
                        self._attempt_failed(scope, progress, name, lost)
            if succeeded and (not done or self._records_now(scope, progress)):
                self._record_all(scope, progress)
            for start in starts:
                self._started(scope, progress, start.task, start.ticket)
            starts.clear()
            self._worker_freed(scope, progress)
            self._release_due_retries(progress)

    def _records_now(self, scope: RunScope, progress: _Progress) -> bool:
        """Whether the successes not recorded yet are recorded at once, or wait for a few
        more (one write for all: on a run of many small commands, a commit per task is most
        of this thread's work). They wait only while more are running, nobody is shown tasks
        starting and ending (a live view, -v: a success is shown when recorded), no task
        waits for them to start (their records are what releases it) and there are fewer
        than :data:`RECORDS_AT_ONCE`; and never while the loop waits (see :meth:`_wait`). A
        stop meanwhile records none of them (nothing is committed after a stop)."""
        succeeded = progress.succeeded
        if (self._watching or progress.stopping or not progress.inflight or len(succeeded) >= RECORDS_AT_ONCE):
            return True
        freed: dict[str, int] = {}
        for name, _, _ in succeeded:
            for down in progress.dependents[name]:
                freed[down] = freed.get(down, 0) + 1
                if progress.waiting[down] <= freed[down]:
                    return True
        return False

    def _submit_ready(self, scope: RunScope, progress: _Progress, functions: dict[str, Any]) -> None:
        if len(progress.inflight) < self.executor.max_in_flight:
            self._claim_ahead(scope, progress)
        while progress.ready and not progress.stopping and len(progress.inflight) < self.executor.max_in_flight:
            name = progress.ready.popleft()
            if scope.tasks[name].is_gather:
                self._expand_or_gather(scope, progress, name)
                continue
            task = scope.tasks[name]
            if not (self._overlaps and task.spec.shell is not None):
                self._keep_records(progress)  # no command of its own to hide them behind: kept with its claim
            attempt = progress.attempts.get(name, 0) + 1
            if attempt == 1 and task.deps and self._fails_for_missing_deps(scope, progress, task):
                continue
            if task.checkpoint is not None and self._led_out(scope, progress, task):
                continue
            # Staged first: the record of the intent is kept by the store and commits with the
            # claim of the lock, one transaction (group commit); if it is not needed, it goes.
            # Not for a task that waits for another run's lock: each look would write an intent
            # and remove it again (and its staging file: a request, on an object store).
            staged = None
            claimed_ahead = name in progress.early  # its intent committed with its claim
            if claimed_ahead:  # staged and claimed before (_claim_early, _claim_ahead)
                progress.early.discard(name)
                staged = self.writes.staged(name)
            elif task.checkpoint is not None and name not in progress.contended:
                staged = self.writes.stage(name, task.checkpoint, attempt)
            if not self.locks.claim(name, _lock_name(task)):
                if staged is not None:
                    self.writes.forget(name)
                progress.contended.add(name)
                heapq.heappush(progress.later, (self.clock.monotonic() + self.lock_poll, name))  # another run has it
                continue
            if attempt == 1 and self._settled_meanwhile(scope, progress, name):
                if staged is not None:
                    self.writes.forget(name)
                continue
            if staged is None and task.checkpoint is not None:  # it waited: committed by the flush below
                staged = self.writes.stage(name, task.checkpoint, attempt)
            progress.attempts[name] = attempt
            progress.tickets += 1
            ticket = progress.tickets
            job = self._job(scope, progress, task, attempt, functions.get(task.spec.name), ticket, staged)
            self._tell(TaskQueued(name, attempt, scope.decision(name), _target(task)))
            progress.announced[name] = (ticket, False)
            if not claimed_ahead:
                self.store.flush()  # the intent of its write, at the latest (an inline executor runs it right here)
            future = self._hand_over(progress, name, job)
            if not self._watching:  # it cannot tell, or nobody asks: running once submitted
                self._started(scope, progress, name, ticket)
            future.add_done_callback(progress.finished.put)

    def _hand_over(self, progress: _Progress, name: str, job: Job) -> Future[Any]:
        """Submit an attempt, known to be in flight from the moment it may run elsewhere: a
        stop before its future was kept had the end forget its pending write while a worker
        still wrote there -- a staging file nobody removes. (An executor that runs it in this
        very thread, the inline one, is done with it whenever a stop can land here.)"""
        elsewhere = not getattr(self.executor, "runs_in_caller", False)
        if elsewhere:
            progress.handing = name
            progress.watched[name] = watch_target(job)  # its worker may die before it can undo its own
        future = self.executor.submit(execute, job)
        progress.inflight[future] = name
        progress.handing = None
        return future

    def _led_out(self, scope: RunScope, progress: _Progress, task: PlannedTask) -> bool:
        """A task whose target a symlink put since planning leads out of its result location
        fails before it runs, exit 2, as the plan would have refused it (DESIGN.md §3)."""
        try:
            scope.check_target_again(task)
        except SpecError as exc:
            progress.attempts[task.name] = progress.attempts.get(task.name, 0) + 1
            self._attempt_failed(scope, progress, task.name,
                                 WorkError(exc.format(), usage=True))
            return True
        return False

    def _fails_for_missing_deps(self, scope: RunScope, progress: _Progress, task: PlannedTask) -> bool:
        """Make's "No rule to make target": a task whose declared dep is not there fails
        before it runs (a file no task makes; no retry brings it), exit 2 -- the verdict
        status and --dry-run gave (the planner's one judgement, ``deps_verdict``), asked
        again with the deps as they are now: one may have appeared or gone since."""
        planned = scope.decision(task.name)
        try:
            decision = scope.deps_verdict(task, planned)
        except TargetrunError as exc:  # a FIFO or device named in deps (exit 2); a store that cannot tell (3)
            error = WorkError(exc.format(), backend=exc.exit_code == EXIT_BACKEND, usage=exc.exit_code != EXIT_BACKEND)
        else:
            if decision is not planned:
                scope.redecided(task.name, decision)
            if decision.reason is not Reason.DEPS_MISSING:
                unread = self._read_deps(scope, progress, task)
                if unread is None:
                    return False
                error = unread
            else:
                where = f"tasks.{task.spec.name}.deps"
                error = WorkError(f"{decision.detail}: nothing is there and no task makes it ({where} in "
                                  f"{scope.spec.path}). Create it, or correct the path; a value another task makes "
                                  "is read through `needs:`.", usage=True)
        progress.attempts[task.name] = 1
        self._attempt_failed(scope, progress, task.name, error)
        return True

    def _read_deps(self, scope: RunScope, progress: _Progress, task: PlannedTask) -> WorkError | None:
        """Fingerprint the deps as the task is about to read them: the record says what it
        read, not what is there once it ran (a dep rewritten meanwhile leaves it stale)."""
        try:
            _, deps = self._made_from(scope, task)
        except TargetrunError as exc:  # a FIFO or device in a folder dep (exit 2); a file that cannot be read (3)
            return WorkError(exc.format(), backend=exc.exit_code == EXIT_BACKEND, usage=exc.exit_code != EXIT_BACKEND)
        if deps is not None:
            progress.deps_read[task.name] = deps
        return None

    def _tell(self, event: Event) -> None:
        """Hand ``event`` to the reporter -- after the writes the store kept (group commit)
        have committed, when a reporter acts on it. A reporter may take any time (a console
        writing to a pipe nobody reads, a live view, an API caller's own code), and
        meanwhile another process must find what this run reports done recorded: a target
        in place with its record still kept is a pickle nobody recorded to a reader there
        (refused without --trust), and its lock still held."""
        if acts_on(self.reporter, event):
            if self._current is not None:
                self._keep_records(self._current)
            self.store.flush()
        self.reporter.handle(event)

    def _watch_starts(self, scope: RunScope, progress: _Progress) -> bool:
        """Have the executor's start notices reach this loop: through ``progress.finished``
        from other threads, at once from this one (an inline executor's worker is the loop).
        Only when a reporter shows tasks starting (``-v``, the live view): otherwise each
        notice would only wake this loop once more per task, for nothing."""
        watch = getattr(self.executor, "watch_starts", None)
        if watch is None or not wanted(self.reporter, TaskStarted):
            return False
        loop = threading.get_ident()

        def notice(task: str, ticket: int) -> None:
            if threading.get_ident() == loop:
                self._started(scope, progress, task, ticket)
            else:
                progress.finished.put(_Start(task, ticket))

        watch(notice)
        return True

    def _started(self, scope: RunScope, progress: _Progress, name: str, ticket: int, *, ending: bool = False) -> None:
        """Submission ``ticket`` of ``name`` began on a worker: it is running (once; a late
        notice of an attempt that is over, or of an earlier submission, is ignored).

        A worker begins its next task as soon as it has sent the last one's result, so a
        notice can overtake that result: while as many attempts are running as there are
        workers, the notice waits for the next result (never more shown running than
        workers)."""
        if progress.announced.get(name) != (ticket, False):
            return
        if not ending and progress.running >= self.executor.max_workers:
            progress.deferred.append((name, ticket))
            return
        progress.announced[name] = (ticket, True)
        progress.running += 1
        self._tell(TaskStarted(name, progress.attempts[name], scope.decision(name), _target(scope.tasks[name])))

    def _surely_started(self, scope: RunScope, progress: _Progress, name: str) -> None:
        """An attempt ended: if its start notice is still on its way, it started all the same."""
        ticket, _ = progress.announced.get(name, (0, True))
        self._started(scope, progress, name, ticket, ending=True)
        if progress.announced.pop(name, (0, False))[1]:
            progress.running -= 1

    def _worker_freed(self, scope: RunScope, progress: _Progress) -> None:
        """An attempt's end was reported: a start notice that waited for a worker is announced."""
        while progress.deferred and progress.running < self.executor.max_workers:
            self._started(scope, progress, *progress.deferred.popleft())

    def _expand_or_gather(self, scope: RunScope, progress: _Progress, name: str) -> None:
        """A mapped task whose needs are done: expand it if its items were pending, then,
        once no child is left to run, it is complete (its value is its children's)."""
        task = scope.tasks[name]
        if task.children is None:
            try:
                items = as_items(self._input(scope, progress, str(task.mapped_upstream), shell=False).load(),
                                 f"the value of {task.mapped_upstream!r}")
            except (ValueError, WorkError) as exc:
                error = WorkError(f"cannot map over {task.mapped_upstream!r}: {exc}")
                progress.attempts[name] = 1
                return self._attempt_failed(scope, progress, name, error)
            try:
                running = scope.expand(name, items)
            except SpecError as exc:  # a child's target cannot be rendered, or is another task's: exit 2
                progress.attempts[name] = 1
                return self._attempt_failed(scope, progress, name, WorkError(exc.format(), usage=True))
            self._adopt_children(scope, progress, name, running)
            if running:
                return
        children = scope.tasks[name].children or ()
        ran = sum(1 for c in children if progress.outcomes.get(c) and progress.outcomes[c].state is TaskState.SUCCEEDED)
        progress.outcomes[name] = TaskOutcome(name, TaskState.SUCCEEDED, scope.decision(name), None)
        self._tell(TaskGathered(name, len(children), ran))
        self._release(scope, progress, name)

    def _adopt_children(self, scope: RunScope, progress: _Progress, name: str, running: list[str]) -> None:
        """Children found during the run: report the skipped ones, queue the others."""
        for child in scope.tasks[name].children or ():
            if child not in running:
                decision = scope.decisions[child]
                progress.outcomes[child] = TaskOutcome(child, _skip_state(decision), decision, _target(scope.tasks[child]))
                self._tell(TaskSkipped(child, decision, _target(scope.tasks[child])))
        for child in running:
            progress.waiting[child] = 0
            progress.dependents[child] = [name]
            progress.ready.append(child)
        progress.waiting[name] = len(running)
        for up in dict.fromkeys(scope.tasks[name].spec.upstream):  # each child keeps the unmapped values alive
            if up in progress.consumers:
                progress.consumers[up] += len(running)

    def _wait(self, progress: _Progress) -> list[Future[Any] | _Start]:
        """What finished (or started) meanwhile, waiting for the first if nothing has. The
        writes the store kept (group commit) commit before any wait longer than a moment
        (:data:`KEPT_FOR`): a record is never held back for longer than the loop is busy,
        and an attempt that ends within that moment carries them with its own write."""
        self._keep_records(progress)
        if not progress.inflight:
            if progress.later and not progress.ready:
                self.store.flush()
                self.clock.sleep(max(0.0, progress.later[0][0] - self.clock.monotonic()))
            return []
        timeout = WAKE_UP
        if progress.later:
            timeout = min(timeout, max(0.0, progress.later[0][0] - self.clock.monotonic()))
        try:
            done: list[Future[Any] | _Start] = [progress.finished.get(timeout=min(timeout, KEPT_FOR))]
        except queue.Empty:
            if progress.succeeded:  # the loop records them before it waits longer (_records_now)
                return []
            self.store.flush()
            try:
                done = [progress.finished.get(timeout=max(0.0, timeout - KEPT_FOR))]
            except queue.Empty:
                return []
        while True:  # take every other attempt that finished meanwhile
            try:
                done.append(progress.finished.get_nowait())
            except queue.Empty:
                return done

    def _release_due_retries(self, progress: _Progress) -> None:
        now = self.clock.monotonic()
        while progress.later and progress.later[0][0] <= now:
            _, name = heapq.heappop(progress.later)
            if not progress.stopping:
                progress.ready.append(name)

    # -- steps ---------------------------------------------------------------------

    def _job(self, scope: RunScope, progress: _Progress, task: PlannedTask, attempt: int, fn: Any, ticket: int,
             staged: tuple[Storage, str] | None) -> Job:
        spec = task.spec
        own_item = task.mapped_upstream if task.map_index is not None else None  # a child gets its own item
        inputs = {arg: Input(up, value=task.item, in_memory=True) if up == own_item
                  else self._input(scope, progress, up, shell=spec.shell is not None) for arg, up in spec.needs}
        checkpoint = task.checkpoint
        context: dict[str, object] = {}
        if spec.shell is not None:  # the fields its target and deps were rendered with, and the attempt
            child = {"item": task.item, "map_index": task.map_index, "task_full_name": task.name} \
                if task.map_index is not None else {}
            context = templating.task_context(scope.plan.base_context, spec.name, task_run_count=attempt, **child)
        storage, staging = staged if staged is not None else (None, None)
        return Job(
            task=spec.name,
            attempt=attempt,
            root=scope.spec.root,
            serializer=task.serializer,
            checkpoint=checkpoint.url if checkpoint else None,
            staging=staging,
            storage=storage,
            fn=fn,
            run=spec.run,
            shell=spec.shell,
            args=task.args,
            inputs=inputs,
            context=context,
            keep_value=self._keeps_value(task),
            key=task.name,
            ticket=ticket,
            own_fds=bool(getattr(self.executor, "isolated", False)),
        )

    def _keeps_value(self, task: PlannedTask) -> bool:
        """Whether a task's value comes back from the worker and is kept in memory: only
        for Python tasks, and out of process only when there is no checkpoint to read."""
        return task.spec.run is not None and (self.executor.in_process or not task.spec.checkpoint)

    def _input(self, scope: RunScope, progress: _Progress, upstream: str, *, shell: bool) -> Input:
        gather = scope.tasks[upstream]
        if gather.is_gather:
            children = gather.children or ()
            self._fetch_records(scope, progress, children)
            return Input(upstream, parts=tuple(self._input(scope, progress, c, shell=shell) for c in children))
        if upstream in progress.values and not shell:
            return Input(upstream, value=progress.values[upstream], in_memory=True)
        task = scope.tasks[upstream]
        assert task.checkpoint is not None, "validation guarantees a checkpoint for values not in memory"
        return Input(upstream, location=task.checkpoint.url, storage=self.storages(task.checkpoint.result),
                     serializer=task.serializer, expected=self._expected(progress, upstream, task.checkpoint.url),
                     trust=progress.request.trust)

    def _expected(self, progress: _Progress, name: str, url: str) -> Expected | None:
        """What was recorded for the checkpoint a task will read: this run's record if the
        upstream ran (or was a cache hit), else the store's (the worker checks the bytes)."""
        outcome = progress.outcomes.get(name)
        if outcome is not None and outcome.checkpoint is not None and outcome.checkpoint.location == url:
            return Expected.of(outcome.checkpoint)
        if url not in progress.records:
            progress.records[url] = self.store.checkpoint(url)
        return Expected.of(progress.records[url])

    def _fetch_records(self, scope: RunScope, progress: _Progress, names: tuple[str, ...]) -> None:
        """The store's records of a mapped task's children, in one round trip."""
        urls = [url for n in names if n not in progress.values and (checkpoint := scope.tasks[n].checkpoint) is not None
                and (url := checkpoint.url) not in progress.records]
        if urls:
            found = self.store.checkpoints(urls)
            progress.records.update((url, found.get(url)) for url in urls)

    def _record_all(self, scope: RunScope, progress: _Progress) -> None:
        """The successes not recorded yet (``progress.succeeded``, taken off it): the records
        that vouch for their targets are prepared in one write (one commit, not one a task),
        then each target is moved -- one step a stop does not cut in two: raised between the
        write and the moves, it left the prepared targets' staging files behind."""
        with stopping.deferred():
            succeeded = list(progress.succeeded)
            progress.succeeded.clear()
            made = [self._made(scope, progress, name, result, making) for name, result, making in succeeded]
            moving = [m for m in made if m.moves]
            prepared = False
            if len(moving) > 1:
                try:
                    self.writes.prepare([(m.staging, m.checkpoint, m.entry) for m in moving
                                         if m.staging is not None and m.checkpoint is not None])
                    prepared = True
                except TargetrunError:  # each is prepared on its own below, and fails with its own reason
                    pass
            for m in made:
                self._record(scope, progress, m, prepared=prepared)

    def _made(self, scope: RunScope, progress: _Progress, name: str, result: WorkResult,
              making: _Making | None) -> _Made:
        """What a success's record says: the checkpoint it wrote and what made it."""
        task = scope.tasks[name]
        policy = task.spec.cache
        checkpoint = entry = None
        staging = self.writes.finished(name)
        where = task.checkpoint
        if where is not None and result.content_hash is not None:
            # what made it, always (staleness): input and parameter fingerprints, code, deps
            making = making or self._making(scope, progress, task)
            params = scope.params
            written_as = result.serializer or task.serializer
            code, deps = self._made_from(scope, task, progress.deps_read.pop(name, None))
            checkpoint = Checkpoint(name, where.url, written_as, result.size or 0, result.content_hash,
                                    scope.run_id, self.clock.now(), result.duration, making.inputs, params, where.result,
                                    making.made, making.made_for, code, deps.hashes if deps else None,
                                    deps.stats if deps else {})
            if written_as != task.serializer:
                task = replace(task, serializer=written_as)
                scope.read_from(name, task)  # readers in this run read it as written
            if policy is not None and task.cache_key:
                entry = new_entry(task.cache_key, scope.spec.name, name, checkpoint, policy)
        return _Made(name, task, result, staging, checkpoint, entry)

    def _record(self, scope: RunScope, progress: _Progress, made: _Made, *, prepared: bool = False) -> None:
        """A success: its target moved in (its record ``prepared`` already, or now) and its
        outcome kept, its record handed to the store with the next command's claim."""
        name, task, result, checkpoint = made.name, made.task, made.result, made.checkpoint
        # The move of its target and the taking in of its record are one step: a stop between
        # the two would leave the target in place with only a pending record to vouch for it.
        with stopping.deferred() if made.moves else contextlib.nullcontext():
            if made.moves:
                assert task.checkpoint is not None and checkpoint is not None and made.staging is not None
                try:
                    self.writes.commit(task.checkpoint, made.staging, checkpoint, made.entry, prepared=prepared,
                                       inside=scope.contained_in(task))
                except TargetrunError as exc:
                    return self._attempt_failed(scope, progress, name, WorkError(
                        exc.format(), backend=exc.exit_code == EXIT_BACKEND, usage=exc.exit_code == EXIT_USAGE))
            attempts = progress.attempts[name]
            outcome = TaskOutcome(name, TaskState.SUCCEEDED, scope.decision(name), _target(task), result.duration,
                                  attempts, checkpoint=checkpoint)
            progress.outcomes[name] = outcome
            # Its record and the release of its lock wait until the next command has started
            # (_keep_records): the target is vouched for by its prepared record meanwhile, and
            # the claim that must commit before that command starts carries nothing but its own.
            progress.unkept.append(_Unkept(self._task_record(scope, outcome, result.attempt), checkpoint, made.entry,
                                           made.staging))
        self._tell(TaskSucceeded(name, result.duration, attempts, checkpoint, result.log))
        if progress.consumers.get(name) and self._keeps_value(task):
            progress.values[name] = result.value
        self._release(scope, progress, name)

    def _making(self, scope: RunScope, progress: _Progress, task: PlannedTask) -> _Making:
        return _Making(self._recorded_inputs(scope, progress, task), *self._made_with(scope, progress, task))

    def _made_meanwhile(self, scope: RunScope, progress: _Progress) -> None:
        """While a task's command runs: what its record will say it was made from, as far as
        the attempt cannot change it -- work its successor's start then need not wait for.
        What fails here is worked out again, and fails, when the task is recorded."""
        for name in progress.announced:  # in flight (the inline executor: this one attempt)
            task = scope.tasks[name]
            if name in progress.making or task.checkpoint is None:
                continue
            try:
                progress.making[name] = self._making(scope, progress, task)
            except Exception:
                continue

    def _claim_early(self, scope: RunScope, progress: _Progress) -> None:
        """While a task's command runs: stage and claim each task that waits for it alone,
        so that its own start need not wait for that commit. If the upstream fails,
        :meth:`_block_downstream` lets them go again; the end of the run does in any case."""
        if progress.stopping:
            return
        alone = [down for running in progress.announced for down in progress.dependents[running]
                 if progress.waiting[down] == 1 and self._claimable(scope, progress, down)]
        if alone:
            self._stage_and_claim(scope, progress, list(dict.fromkeys(alone)))

    def _claim_ahead(self, scope: RunScope, progress: _Progress) -> None:
        """Stage and claim the next ready tasks in one write, when several are ready: each
        would otherwise commit its own claim, and a parallel run of many small tasks spends
        more time committing than running them. A few per worker, not all that are ready:
        another run sharing the store still finds the rest free. The end of the run lets go
        of any not started."""
        if progress.stopping or len(progress.ready) < 2:
            return
        room = AHEAD_PER_SLOT * self.executor.max_in_flight - len(progress.early)
        if room <= self.executor.max_in_flight:  # enough are claimed: not a write for one or two
            return
        ahead: list[str] = []
        for name in progress.ready:
            if len(ahead) >= room:
                break
            if self._claimable(scope, progress, name):
                ahead.append(name)
        if len(ahead) >= 2:
            self._stage_and_claim(scope, progress, ahead)

    def _claimable(self, scope: RunScope, progress: _Progress, name: str) -> bool:
        """Whether a task may be staged and claimed before its turn: its first attempt, not
        claimed (nor found held by another run) yet, a target of its own, no deps to check
        first, no gather."""
        task = scope.tasks[name]
        return not (name in progress.outcomes or name in progress.early or name in progress.attempts
                    or name in progress.contended or task.is_gather or task.checkpoint is None
                    or task.target is None or task.deps)

    def _stage_and_claim(self, scope: RunScope, progress: _Progress, names: list[str]) -> None:
        """Stage each of ``names`` and claim their locks, in one write: those claimed wait
        in ``progress.early``, the others' staging goes again."""
        wanted = {name: _lock_name(scope.tasks[name]) for name in names}
        for name in wanted:
            checkpoint = scope.tasks[name].checkpoint
            assert checkpoint is not None
            self.writes.stage(name, checkpoint, 1)
        try:
            claimed = self.locks.claim_many(wanted)
            self.store.flush()  # the intents, were no lock left to take (a write carries them otherwise)
        except TargetrunError:  # the store failed: each task's own claim says why
            claimed = set()
        for name in wanted:
            if name in claimed:
                progress.early.add(name)
            else:
                self.writes.forget(name)

    def _let_go_early(self, progress: _Progress, name: str) -> None:
        """A task staged and claimed early that will not run now: its place and lock go."""
        if name in progress.early:
            progress.early.discard(name)
            self.writes.forget(name)
            self.locks.release(name)

    def _recorded_inputs(self, scope: RunScope, progress: _Progress, task: PlannedTask) -> dict[str, str]:
        """The input fingerprints a record keeps. Without a cache policy they are only for
        telling staleness later: a value kept in memory that cannot be fingerprinted
        (nothing can pickle it) is then left out -- unknown -- rather than failing the task."""
        if task.spec.cache is not None:
            return self._input_fingerprints(scope, progress, task)
        try:
            return self._input_fingerprints(scope, progress, task)
        except Exception:  # pickle raises anything a value's __reduce__ raises
            return {}

    def _made_from(self, scope: RunScope, task: PlannedTask,
                   deps: DepState | None = None) -> tuple[Mapping[str, str] | None, DepState | None]:
        """The code and deps fingerprints of what a task ran (computed once per run each;
        the deps' last record lets unchanged files skip hashing); ``deps``: as taken before it ran."""
        if deps is None and task.spec.deps and task.checkpoint is not None:
            try:
                previous = self.store.checkpoint(task.checkpoint.url)
            except TargetrunError:
                previous = None
            deps = scope.made_from.deps(task.spec, previous, task.deps, task.checkpoint.url)
        return scope.made_from.code(task.spec), deps

    def _made_with(self, scope: RunScope, progress: _Progress, task: PlannedTask) -> tuple[dict[str, str], str | None]:
        """What a value is made with, in the user's terms (``status``: "made with
        city=berlin"): the parameters the task's own templates name, then what each value it
        read was made with, as recorded -- so a target downstream of a parameter says so too."""
        made, made_for = templating.made_with(task.spec, scope.context)
        for up in dict.fromkeys(task.spec.upstream):
            gather = scope.tasks[up]
            if gather.is_gather:  # it reads the whole list: what the list is made with too
                listed, listed_for = templating.list_made_with(gather.spec, scope.context)
                for name, text in listed.items():
                    made.setdefault(name, text)
                made_for = made_for or listed_for
            for part in gather.children or () if gather.is_gather else (up,):
                record = self._record_of(scope, progress, part)
                if record is not None:
                    for name, text in record.made_with.items():
                        made.setdefault(name, text)
                    made_for = made_for or record.made_for
        return made, made_for

    def _record_of(self, scope: RunScope, progress: _Progress, name: str) -> Checkpoint | None:
        """The record of a value a task read, when this run already knows it (no store trip)."""
        outcome = progress.outcomes.get(name)
        if outcome is not None and outcome.checkpoint is not None:
            return outcome.checkpoint
        checkpoint = scope.tasks[name].checkpoint if name in scope.tasks else None
        return progress.records.get(checkpoint.url) if checkpoint is not None else None

    def _spared(self, progress: _Progress, name: str, exc: Exception, ticket: int) -> bool:
        """Whether the executor lost the attempt only with another's (a pool whose worker
        died ends every attempt in it: see ProcessExecutor.spared). Once per task and run:
        a task whose own worker keeps dying is not tried for ever."""
        spared = getattr(self.executor, "spared", None)
        if spared is None or name in progress.spared or progress.stopping or not spared(exc, ticket):
            return False
        progress.spared.add(name)
        return True

    def _run_again(self, progress: _Progress, name: str, error: WorkError) -> None:
        """An attempt lost with another's: submitted again at once; it does not count (it
        is no retry of the task's, as a rebuilt input's is not)."""
        self.writes.forget(name)
        self._tell(TaskRetrying(name, progress.attempts[name], f"{redact(error.message)}; this task's own worker "
                                "was ended with it: running it again", 0.0, redact(error.log)))
        progress.attempts[name] -= 1
        heapq.heappush(progress.later, (self.clock.monotonic(), name))

    def _rebuild_input(self, scope: RunScope, progress: _Progress, name: str, error: CorruptInput) -> None:
        """A task found the checkpoint of an upstream it reads gone or changed since it was
        recorded (after planning checked it). That upstream was skipped: run it now, then
        the task again. Once per upstream and run; an upstream this run made, or a second
        find, fails the task (something keeps replacing it)."""
        up = error.task
        task = scope.tasks.get(up)
        if task is None or up in progress.rebuilt or up in progress.outcomes or up in progress.waiting \
                or progress.stopping:
            return self._attempt_failed(scope, progress, name, error)
        progress.rebuilt.add(up)
        self._tell(TaskRetrying(name, progress.attempts[name], f"{error.message}; rebuilding {up!r} first", 0.0))
        progress.attempts[name] -= 1  # the attempt never got to run the task: it does not count
        if task.target is None and task.spec.checkpoint:  # a cache hit's value lives in an earlier run's folder
            suffix = f"-{task.map_index}" if task.map_index is not None else ""
            serializer = infer_serializer(task.spec, None)
            task = replace(task, serializer=serializer,
                           checkpoint=default_checkpoint(scope.spec, task.spec, serializer, scope.run_id, suffix))
        scope.rebuild(up, error.message, task)
        progress.waiting[up] = 0
        progress.dependents[up] = [name]
        progress.waiting[name] = 1
        for upstream in dict.fromkeys(scope.graph[up]):  # the rebuild reads them too
            if upstream in progress.consumers:
                progress.consumers[upstream] += 1
        progress.ready.append(up)

    def _attempt_failed(self, scope: RunScope, progress: _Progress, name: str, error: WorkError) -> None:
        # Masked once, here, before any event, outcome or summary carries it: an exception's
        # text often holds the URL it could not reach, and a Python caller of the API prints
        # the summary's errors without the console's masking. Bounded too: a task's exception
        # text (and its traceback, which ends with it) can be megabytes, recorded in the store,
        # printed by the console and --json, and put in the HTML report.
        error.message = bounded(error.message, ERROR_KEPT)
        error.details = bounded(error.details, DETAILS_KEPT, tail=DETAILS_KEPT)
        error.log = redact(error.log)
        task = scope.tasks[name]
        self.writes.forget(name)
        attempts = progress.attempts[name]
        if attempts <= task.spec.max_retries and not progress.stopping and not error.usage:
            delay = task.spec.retry_delay
            self._tell(TaskRetrying(name, attempts, error.message, delay, error.log))
            heapq.heappush(progress.later, (self.clock.monotonic() + delay, name))
            return
        outcome = TaskOutcome(name, TaskState.FAILED, scope.decision(name), _target(task), 0.0, attempts,
                              error=error.message, backend_error=error.backend, usage_error=error.usage)
        self._finish(scope, progress, outcome, error.attempt)
        self.locks.release(name)
        self._tell(TaskFailed(name, error.message, attempts, error.details, error.log))
        self._block_downstream(scope, progress, name)
        if not progress.request.keep_going:
            progress.stopping = True

    def _finish(self, scope: RunScope, progress: _Progress, outcome: TaskOutcome, attempt: Attempt | None = None) -> None:
        """A task that failed: its outcome, and its record kept for the store's next write."""
        progress.outcomes[outcome.task] = outcome
        self.store.record_task_soon(self._task_record(scope, outcome, attempt), outcome.checkpoint, None)

    def _task_record(self, scope: RunScope, outcome: TaskOutcome, attempt: Attempt | None) -> TaskRecord:
        return TaskRecord(scope.run_id, scope.spec.name, outcome.task, outcome.state, self.clock.now(),
                          outcome.duration or (attempt.duration if attempt else 0.0), outcome.attempts, outcome.error,
                          outcome.target, attempt.started if attempt else None, attempt.worker if attempt else "")

    def _keep_records(self, progress: _Progress) -> None:
        """Hand the store the records of the successes not kept yet, each with the release of
        its task's lock after it (group commit: they commit with the store's next write; a
        target is already vouched for by its prepared pending write, see engine/writes.py).
        Whole, even when a stop arrives: a record taken off the list is kept."""
        if not progress.unkept:
            return
        with stopping.deferred():
            while progress.unkept:
                done = progress.unkept.popleft()
                self.store.record_task_soon(done.record, done.checkpoint, done.entry, staging=done.staging)
                self.locks.release(done.record.task)

    def _overlap(self) -> bool:
        """Have the executor run :meth:`_meanwhile` while a command it started runs, when it
        can: only the inline one, whose worker is this thread."""
        overlap = getattr(self.executor, "overlap", None)
        if overlap is None:
            return False
        overlap(self._meanwhile)
        return True

    def _meanwhile(self) -> None:
        """While a command runs (on another core, as this thread would only wait for it):
        keep and commit the records of the successes before it (a store that fails here
        keeps them: the loop's next write commits them, or says why), work out what the
        running task's own record will need, and claim the task that waits for it alone."""
        if self._current is None or self._scope is None:
            return
        self._keep_records(self._current)
        self._made_meanwhile(self._scope, self._current)
        self._claim_early(self._scope, self._current)  # one commit: the claims carry the records
        with contextlib.suppress(TargetrunError):
            self.store.flush()

    def _release(self, scope: RunScope, progress: _Progress, name: str) -> None:
        for down in progress.dependents[name]:
            progress.waiting[down] -= 1
            if progress.waiting[down] == 0 and down not in progress.outcomes:
                progress.ready.append(down)
        for up in dict.fromkeys(scope.graph[name]):
            if up in progress.consumers:
                progress.consumers[up] -= 1
                if progress.consumers[up] <= 0:
                    progress.values.pop(up, None)

    def _block_downstream(self, scope: RunScope, progress: _Progress, failed: str) -> None:
        blocked = dag.downstream_within(scope.graph, [failed], set(scope.order))
        for name in dag.toposort(scope.graph, blocked):
            if name in progress.outcomes:
                continue
            outcome = TaskOutcome(name, TaskState.UPSTREAM_FAILED, scope.decision(name), _target(scope.tasks[name]))
            progress.outcomes[name] = outcome
            self._let_go_early(progress, name)
            self._tell(TaskBlocked(name, TaskState.UPSTREAM_FAILED, f"{failed!r} failed"))

    def _settled_meanwhile(self, scope: RunScope, progress: _Progress, name: str) -> bool:
        """Re-decide a task about to run: another run may have made its target or cache
        entry meanwhile, or inputs that were pending at planning time may match a cache
        entry now. A task that no longer needs to run is skipped here."""
        task = scope.tasks[name]
        decision = scope.decision(name)
        final = (Reason.FORCED, Reason.UPSTREAM_FORCED, Reason.CORRUPT)  # its existing target is not good enough
        if decision.reason in final or (task.target is None and task.spec.cache is None):
            return False
        now_decision, entry = self._redecide(scope, progress, task)
        if now_decision.runs:
            return False
        if entry is not None:
            task = replace(task, checkpoint=entry.checkpoint.where, serializer=entry.checkpoint.serializer)
            scope.read_from(name, task)
        state = TaskState.CACHED if now_decision.reason is Reason.CACHE_HIT else TaskState.SKIPPED
        settled = replace(now_decision, detail=now_decision.detail or "found when about to run it")
        progress.outcomes[name] = TaskOutcome(name, state, settled, _target(task),
                                              checkpoint=entry.checkpoint if entry else None)
        self.locks.release(name)
        self._tell(TaskSkipped(name, settled, _target(task)))
        self._release(scope, progress, name)
        return True

    def _redecide(self, scope: RunScope, progress: _Progress, task: PlannedTask) -> tuple[Decision, CacheEntry | None]:
        """The task's facts as they are now, ruled on by :func:`~targetrun.engine.decide.decide`."""
        policy = task.spec.cache
        compares = needs_inputs(policy, None)
        if task.target is not None:
            stat = self.storages(task.target.result).info(task.target.url)
            if stat is not None:
                record = self.store.checkpoint(task.target.url)
                progress.records.pop(task.target.url, None)
                if not self._usable(progress, task, record):
                    return scope.decision(task.name), None  # it appeared, but nothing vouches for it: make it
                inputs = self._input_fingerprints(scope, progress, task) if compares else {}
                decision, _ = decide(Facts(policy, task.target.url, True, self.clock.now(), record=record, mtime=stat.mtime,
                                           inputs=inputs, params=scope.params, made=scope.made_now(task, ())))
                # what made it still holds? (inputs now known: an upstream rebuilt into the same
                # bytes leaves this one fresh -- the early cutoff)
                return scope.judge(task, decision, record, lambda up: self._output_fingerprint(scope, progress, up),
                                   lambda up: self._record_of(scope, progress, up)), None
        if not compares or not task.cache_key:
            return scope.decision(task.name), None
        entries = self.store.cache_entries([task.cache_key]).get(task.cache_key, [])
        inputs = self._input_fingerprints(scope, progress, task)
        return decide(Facts(policy, task.target.url if task.target else None, False, self.clock.now(), entries=entries, inputs=inputs,
                            params=scope.params, made=scope.made_now(task, entries)))

    def _usable(self, progress: _Progress, task: PlannedTask, record: Checkpoint | None) -> bool:
        """Whether a target that appeared after planning may stand for the task: it matches
        what another run recorded, or (no record) it is data that cannot run code or --trust
        was given. Otherwise the task runs and replaces it."""
        assert task.target is not None
        if record is None:
            return not needs_record(task.serializer, progress.request.trust)
        return verify_checkpoint(self.storages(task.target.result), task.target.url, record) is None

    def _input_fingerprints(self, scope: RunScope, progress: _Progress, task: PlannedTask) -> dict[str, str]:
        """Fingerprints of the inputs a task runs with (for its cache entry and validators)."""
        return task_inputs(task, lambda up: self._output_fingerprint(scope, progress, up))

    def _output_fingerprint(self, scope: RunScope, progress: _Progress, up: str) -> str:
        gather = scope.tasks[up]
        if gather.is_gather:
            return fingerprint.of_value([self._output_fingerprint(scope, progress, c) for c in gather.children or ()])
        outcome = progress.outcomes.get(up)
        if outcome is not None and outcome.checkpoint is not None:
            return fingerprint.of_content(outcome.checkpoint.content_hash)
        if outcome is not None and outcome.state is TaskState.SKIPPED and gather.target is not None:
            # its target stands for it: the bytes its record vouches for, or (no record) its
            # bytes -- as planning fingerprinted them, never the value they were read as
            return scope.target_fingerprint(gather.target)
        if up in progress.values:
            return fingerprint.of_value(progress.values[up])
        return scope.planned_output(up)

    # -- before and after ----------------------------------------------------------

    def _preflight(self, scope: RunScope) -> dict[str, Any]:
        """Import every callable that will run, and check its arguments, before anything
        runs. Keyed by task name in the Pipelinefile: a mapped task's children share it."""
        functions: dict[str, Any] = {}
        for name in scope.order:
            spec = scope.tasks[name].spec
            if spec.run is None or spec.name in functions:
                continue
            fn, problems = resolve_callable(spec, scope.spec.path, scope.spec.root)  # as `validate` checks it
            if problems:
                raise SpecProblems.of(problems)
            functions[spec.name] = fn
        return functions if self.executor.in_process else {}

    def _progress(self, scope: RunScope, request: RunRequest) -> _Progress:
        runs = set(scope.order)
        inside = {name: tuple(up for up in dict.fromkeys(scope.graph[name]) if up in runs) for name in scope.order}
        waiting = {name: len(ups) for name, ups in inside.items()}
        consumers: dict[str, int] = {}
        for ups in inside.values():
            for up in ups:
                consumers[up] = consumers.get(up, 0) + 1
        progress = _Progress(waiting, consumers, dag.dependents(inside), request=request)
        progress.ready.extend(name for name in scope.order if waiting[name] == 0)
        return progress

    def _report_skips(self, scope: RunScope) -> None:
        if not wanted(self.reporter, TaskSkipped):  # -q: 10,000 events nobody reads
            return
        self.store.flush()  # what _tell does for each event: once serves them all, nothing is kept meanwhile
        handle = self.reporter.handle
        for name, decision in scope.decisions.items():
            if not decision.runs:
                handle(TaskSkipped(name, decision, _target(scope.tasks[name])))

    def _dry_run(self, plan: Plan, started: float, planning: Planning) -> RunSummary:
        self._tell(RunStarted(plan.run_id, plan.spec.name, plan.requested, len(plan.decisions), len(plan.order),
                              True, date=f"{plan.context.date:%Y-%m-%d}"))
        outcomes = []
        for name in plan.tasks:  # in upstream-first order
            decision = plan.decisions.get(name)
            if decision is None:
                continue
            target = _target(plan.tasks[name])
            if decision.runs:
                self._tell(TaskPlanned(name, decision, target))
                outcomes.append(TaskOutcome(name, TaskState.WOULD_RUN, decision, target))
            else:
                self._tell(TaskSkipped(name, decision, target))
                outcomes.append(TaskOutcome(name, _skip_state(decision), decision, target))
        outcomes.extend(_not_needed(plan.spec, plan.decisions, self._stale_unneeded(plan, planning), plan.tasks))
        summary = RunSummary(plan.run_id, plan.spec.name, tuple(outcomes), started, self.clock.now(), plan.requested, True)
        self._tell(RunFinished(summary))
        return summary

    def _stale_unneeded(self, plan: Plan, planning: Planning) -> dict[str, tuple[Stale, ...]]:
        """What a dry run says is stale about existing targets nothing requested needs (an
        upstream of a kept target), judged by the planner as ``status`` has it judged:
        DESIGN.md has ``run --dry-run`` say what is stale as ``status`` does. One batched
        stat per storage; a target whose storage cannot tell says nothing."""
        by_storage: dict[str, dict[str, str]] = {}  # storage -> target URL -> task
        for name, task in plan.tasks.items():
            if name not in plan.decisions and task.target is not None:
                by_storage.setdefault(task.target.result, {})[task.target.url] = name
        there: list[str] = []
        for key, names in by_storage.items():
            try:
                stats = self.storages(key).stat_many(list(names))
            except StorageError:
                continue  # cannot tell: a dry run reports nothing about them, never "stale"
            there += [names[url] for url, stat in stats.items() if stat is not None]
        return planning.stale_unneeded(there)

    def _summary(self, scope: RunScope, progress: _Progress, started: float) -> RunSummary:
        outcomes = []
        for name in scope.tasks:  # in upstream-first order
            decision = scope.decisions.get(name)
            if decision is None:
                continue
            if name in progress.outcomes:
                outcomes.append(progress.outcomes[name])
            elif decision.runs:
                outcomes.append(TaskOutcome(name, TaskState.CANCELLED, decision, _target(scope.tasks[name]),
                                            attempts=progress.attempts.get(name, 0)))
            else:
                outcomes.append(TaskOutcome(name, _skip_state(decision), decision, _target(scope.tasks[name])))
        outcomes.extend(_not_needed(scope.spec, scope.decisions))
        return RunSummary(scope.run_id, scope.spec.name, tuple(outcomes), started, self.clock.now(), scope.plan.requested)


def _ended_by(exc: BaseException) -> RunStatus:
    """How a run whose loop raised ``exc`` is recorded: a stop (Ctrl-C, SIGTERM) is
    interrupted; a backend that failed the runner itself (a store that cannot commit what
    the run kept, a storage that cannot tell) is broken -- as is a bug; an error of the
    Pipelinefile or the command line found only now (exit 2) is failed."""
    if isinstance(exc, KeyboardInterrupt):
        return RunStatus.INTERRUPTED
    if isinstance(exc, TargetrunError) and exc.exit_code != EXIT_BACKEND:
        return RunStatus.FAILED
    return RunStatus.BROKEN


_NOTHING_STALE: Mapping[str, tuple[Stale, ...]] = {}
_NO_TASKS: Mapping[str, PlannedTask] = {}


def _lock_name(task: PlannedTask) -> str | None:
    """What two runs must not compute at once: the target, else the cache key."""
    if task.target is not None:
        return f"target:{task.target.url}"
    return f"cache:{task.cache_key}" if task.cache_key else None


def _target(task: PlannedTask) -> str | None:
    return task.target.url if task.target else None


def _skip_state(decision: Decision) -> TaskState:
    return TaskState.CACHED if decision.reason is Reason.CACHE_HIT else TaskState.SKIPPED


def _not_needed(spec: PipelineSpec, decisions: Mapping[str, Decision],
                stale: Mapping[str, tuple[Stale, ...]] = _NOTHING_STALE,
                tasks: Mapping[str, PlannedTask] = _NO_TASKS) -> list[TaskOutcome]:
    """An outcome for each task nothing needed: those of the pipeline, each after the
    children of it a dry run expanded (``tasks``) to say which of them are stale."""
    names: list[str] = []
    for name in spec.tasks:
        gather = tasks.get(name)
        if gather is not None and gather.is_gather:
            names.extend(gather.children or ())
        names.append(name)
    return [TaskOutcome(name, TaskState.NOT_NEEDED, replace(NOT_NEEDED, stale=stale[name]) if name in stale else NOT_NEEDED)
            for name in names if name not in decisions]


def _lost(exc: Exception, explain: Callable[[BaseException], str | None] | None = None) -> WorkError:
    """What a task's future raised that the task itself did not (its own errors come as
    WorkError): the executor lost it (a worker died, a cluster went away: exit 3) -- or a
    value of the task could not be pickled to cross to or from its worker process, which is
    the task's (exit 2, not retried: see WorkError.usage), whatever executor carried it."""
    text = str(exc)
    if isinstance(exc, pickle.PicklingError) or (
            isinstance(exc, (TypeError, AttributeError)) and ("pickle" in text or "serializ" in text)):
        return WorkError(f"a value of this task cannot cross to or from its worker process ({text}): its "
                         "inputs and returned value are pickled there; return a value that pickles, or run "
                         "with --executor threads", usage=True)  # no retry mends it: exit 2, as a value
                         # that does not fit its target's format
    why = explain(exc) if explain is not None else None
    if why:
        return WorkError(f"the executor lost the task: {why}", backend=True)
    return WorkError(f"the executor lost the task: {type(exc).__name__}: {text}", backend=True)


def _counts(summary: RunSummary) -> str:
    parts = [f"{summary.count(state)} {state.value}" for state in TaskState if summary.count(state)]
    return ", ".join(parts)
