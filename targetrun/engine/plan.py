"""Planning: which tasks of a run are skipped, which run, and why (DESIGN.md §3).

Demand-driven, like Luigi. The requested tasks (default: the sinks) are decided first;
only the ``needs`` of a task that will run are requested in turn, so nothing below an
existing target is ever looked at. Each wave of the walk is checked in one batch, and a
folder or prefix that holds several of the run's targets is listed once
(:class:`~targetrun.storage.base.TargetChecker`).

The planner gathers the facts about each task (does its target exist, the store's
records and cache entries, fingerprints, what is stale) and the rules of
:mod:`targetrun.engine.decide` turn them into a decision; the run's late re-check calls
the same rules. What planning found is handed on as a :class:`Plan`, a value.

A validator over inputs needs its upstream tasks' fingerprints: those tasks are decided
first (looked at, not run). An upstream that will run makes the input "pending": the task
is planned to run and its cache is checked again once the input is known (the engine's
late check). "Cannot tell" from a storage is a :class:`StorageError` and stops the plan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TypeVar

from targetrun import dag, fingerprint, staleness, templating
from targetrun.stalediff import UNFOLLOWED
from targetrun.staleness import MadeFrom, OwnFiles
from targetrun.checkpoints import CorruptCheckpoint, Expected, needs_record, read_value, untrusted, verify_checkpoint
from targetrun.engine.cache import task_inputs
from targetrun.engine.decide import (
    INPUT_VALIDATORS, NOT_NEEDED, NOTHING_KNOWN, Facts, MadeNow, StaleRules, as_parameter_change, decide, fails_for_missing_deps, judged,
    said_too,
    needs_inputs, stale_rules, with_staleness,
)
from targetrun.engine.mapping import as_items, static_items
from targetrun.errors import SpecError, TargetrunError, check_known_tasks
from targetrun.model import (
    Action,
    CacheEntry,
    CachePolicy,
    Checkpoint,
    Decision,
    Location,
    PipelineSpec,
    PlannedTask,
    Reason,
    RunContext,
    Stale,
    StaleKind,
    TaskSpec,
    Validator,
)
from targetrun.resolve import DepMakers, TargetOwners, TaskRenderer
from targetrun.serializers.base import SerializationError
from targetrun.storage.base import Stat, Storage, TargetChecker
from targetrun.store.base import StateStore


@dataclass(frozen=True)
class RunRequest:
    tasks: tuple[str, ...] = ()  # empty: the pipeline's sinks
    force: tuple[str, ...] = ()
    force_all: bool = False
    dry_run: bool = False
    keep_going: bool = False
    resume: str | None = None  # run id whose checkpoints are reused
    verify: bool = False  # check every existing checkpoint, not only those a running task reads
    trust: bool = False  # read pickles that no run recorded in this state store
    rebuild_stale: bool = False  # rebuild every stale target in scope (`run --rebuild-stale`)
    report_stale: bool = False  # say what is stale (status, --dry-run) even where nothing acts on it


@dataclass(frozen=True)
class Plan:
    """What planning found: a value (read-only mappings, no callbacks). A run works on its
    own copy of it (:class:`~targetrun.engine.scope.RunScope`)."""

    spec: PipelineSpec
    context: RunContext
    requested: tuple[str, ...]
    tasks: Mapping[str, PlannedTask]  # every task in scope, rendered, upstream first
    decisions: Mapping[str, Decision]  # every task visited
    order: tuple[str, ...]  # the tasks that run, upstream first
    graph: Mapping[str, tuple[str, ...]]  # task -> upstream, whole pipeline (and mapped children)
    base_context: Mapping[str, object] = field(default_factory=dict)
    param_fingerprints: Mapping[str, str] = field(default_factory=dict)
    checker: TargetChecker | None = None  # its listings tell status sizes and ages for free
    # The records of existing targets planning read, by location (status reads no record
    # twice); None: there is one, made by today's code, keeping nothing else that can
    # differ -- no parameter values, date, input fingerprints or deps -- so it was not decoded.
    records: Mapping[str, Checkpoint | None] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.context.run_id

    def decision(self, name: str) -> Decision:
        return self.decisions.get(name, NOT_NEEDED)


@dataclass(frozen=True)
class Expansion:
    """A mapped task expanded during the run: its children, upstream first, and their decisions."""

    gather: PlannedTask
    children: tuple[PlannedTask, ...]
    decisions: Mapping[str, Decision]


class _Unusable(Exception):
    """A checkpoint planning wanted to read is corrupt or gone: the task must be rebuilt."""

    def __init__(self, task: str, problem: str) -> None:
        super().__init__(task, problem)
        self.task = task
        self.problem = problem


_Value = TypeVar("_Value")
_EVERY_KIND = frozenset(StaleKind)
_NONE_KNOWN: Mapping[str, Checkpoint | None] = MappingProxyType({})
RecordOf = Callable[[str], "Checkpoint | None"]  # an upstream task's record as a caller knows it (None: ask the store)


@dataclass(frozen=True)
class Records:
    """The records a caller of :meth:`Planning.judge` knows already: by location, and by task."""

    by_url: Mapping[str, Checkpoint | None]
    record_of: RecordOf | None = None
_MADE_FROM_VALIDATORS = frozenset((Validator.CODE, Validator.DEPS))
_EXISTS = Decision(Action.SKIP, Reason.TARGET_EXISTS)


class Planner:
    def __init__(
        self,
        spec: PipelineSpec,
        context: RunContext,
        storages: Callable[[str], Storage],
        store: StateStore | None = None,
        now: float | None = None,
    ) -> None:
        self.spec = spec
        self.context = context
        self.storages = storages
        self.store = store
        self.now = time.time() if now is None else now
        self.params = fingerprint.of_params(context.params)
        self.outputs: dict[str, str] = {}  # task -> fingerprint of its value, for tasks not run
        self.hits: dict[str, CacheEntry] = {}
        # The store's cache generation when entries were first read: a no-op that hit the
        # cache may be replayed while it stays so (targetrun/certify.py).
        self.cache_generation: int | None = None
        self._kept: dict[str, Location] = {}  # skipped tasks whose value stays where it is
        self._verified: set[str] = set()
        self._rebuilt: list[str] = []  # found corrupt while walking: their needs are walked next
        self.trust = False
        self.checker = TargetChecker(storages)
        self.graph = {name: task.upstream for name, task in spec.tasks.items()}  # grows with mapped children
        self.base = templating.base_context(context)
        self.renderer = TaskRenderer(spec, self.base, context.run_id)
        self.owners = TargetOwners(spec)
        # what plan() decided, kept so that mapped tasks can be expanded during the run
        self._tasks: dict[str, PlannedTask] = {}
        self._decisions: dict[str, Decision] = {}
        self._forced: Mapping[str, Reason] = {}
        self._probes: dict[str, Location | None] = {}
        self._resumed: Mapping[str, Checkpoint] = {}
        self.made_from = MadeFrom(spec.root, context, self._options_for,
                                  OwnFiles.of(store.files() if store is not None else ()))
        self.rebuild_stale = False
        self.report_stale = False
        self._judged_below: set[str] = set()
        self._rules_of: dict[CachePolicy | None, StaleRules] = {}
        # while planning: what each record is made with, read as the present (_as_made_now)
        self._made_now: dict[str, staleness.MadeWith] = {}
        self._made_now_run: dict[str, staleness.MadeWith] = {}  # the same, as the run knows it (upstreams settled)
        self._read: dict[str, Checkpoint | None] = {}  # see Plan.records
        # sha256 fingerprints of unrecorded targets' bytes, by URL and stat (see _hash_of)
        self._hashed: dict[tuple[str, Stat], str] = {}
        self._made_upstream: dict[str, frozenset[str]] = {}  # task -> its deps an upstream task's target is
        self._makers: DepMakers | None = None  # every target of the pipeline, once a task with deps asks
        self._handed_out = False  # a plan holds views of _tasks, _decisions, graph and _read

    def plan(self, request: RunRequest) -> Plan:
        self._own()
        self.trust = request.trust
        self.rebuild_stale = request.rebuild_stale
        self.report_stale = request.report_stale or request.dry_run
        self._rules_of.clear()
        self._made_now.clear()
        self._made_now_run.clear()
        check_known_tasks(request.tasks, self.spec.tasks)
        check_known_tasks(request.force, self.spec.tasks, what="--force task")
        requested = list(dict.fromkeys(request.tasks)) or dag.sinks(self.graph)
        requested += [name for name in request.force if name not in requested]
        scope = dag.ancestors(self.graph, requested)
        forced = self._forced_tasks(request, scope)
        render = self.renderer.render
        tasks = self._tasks = {name: render(self.spec.tasks[name]) for name in dag.toposort(self.graph, scope)}
        self._claim_targets(tasks.values())
        self._made_upstream = self._deps_other_tasks_make(tasks)
        self._forced = forced
        self._resumed = self._load_resumed(request.resume)
        self._judged_below = _judged_below(self.spec, tasks)
        self._probes = {name: self._probe(task, self._resumed.get(name)) for name, task in tasks.items()
                        if name not in forced}
        for key, urls in _group(p for p in self._probes.values() if p is not None):
            self.checker.expect(key, urls)
        decisions = self._walk(requested, tasks, forced, self._probes, {})
        while corrupt := self._corrupt_checkpoints(decisions, everything=request.verify):
            for name, problem in corrupt.items():  # treated as missing: recompute it, and what it needs
                decisions[name] = self.deps_verdict(tasks[name], Decision(Action.RUN, Reason.CORRUPT, detail=problem))
            needs = [up for name in corrupt for up in self.graph[name] if up not in decisions]
            self._walk(needs, tasks, forced, self._probes, decisions)
        self._rerun_gathers(decisions)
        self._blocked_by_failing(decisions)
        self._settle_locations(list(decisions))
        if self.report_stale and not self.rebuild_stale:
            self._expand_unneeded(decisions)
            self._rejudge_readers_of_mapped(decisions)
        if len(self._tasks) > len(scope):  # mapped children were added: put them before their parents
            self._tasks = {name: self._tasks[name] for name in dag.toposort(self.graph, self._tasks)}
        order = dag.toposort(self.graph, [name for name, d in decisions.items() if d.runs])
        self._handed_out = True  # views, not copies: see _own
        return Plan(self.spec, self.context, tuple(requested), MappingProxyType(self._tasks),
                    MappingProxyType(decisions), tuple(order), MappingProxyType(self.graph),
                    base_context=MappingProxyType(self.base), param_fingerprints=MappingProxyType(self.params),
                    checker=self.checker, records=MappingProxyType(self._read))

    def _own(self) -> None:
        """Before changing what a plan holds views of (a mapped task expanded during the
        run, a second plan): change copies, so the plan stays as planned. Copying up front
        cost every plan four mappings of every task (~20 MB at 100,000 tasks)."""
        if self._handed_out:
            self._tasks, self._decisions = dict(self._tasks), dict(self._decisions)
            self.graph, self._read = dict(self.graph), dict(self._read)
            self._handed_out = False

    def _corrupt_checkpoints(self, decisions: Mapping[str, Decision], *, everything: bool) -> dict[str, str]:
        """Skipped tasks whose checkpoint a running task will read (or all, with --verify:
        also those not needed, which nothing reads) and that no longer match what was
        recorded: their problem, by task."""
        if everything:
            suspects = [n for n, d in decisions.items() if not d.runs]
        else:
            suspects = [up for n, d in decisions.items() if d.runs for up in self.graph[n]]
        corrupt: dict[str, str] = self._corrupt_unneeded(decisions) if everything else {}
        for name in dict.fromkeys(suspects):
            if name in self._verified or (name not in decisions or decisions[name].runs):
                continue
            self._verified.add(name)
            task = self._tasks[name]
            for part in task.children or () if task.is_gather else (name,):
                problem = self._check_checkpoint(part, decisions[part]) if part in decisions else None
                if problem:
                    corrupt[part] = problem
        return corrupt

    def _corrupt_unneeded(self, decisions: Mapping[str, Decision]) -> dict[str, str]:
        """--verify: the targets of tasks not needed (upstream of a target that exists: never
        looked at, never read) that are there and no longer hold what their record names.
        One without a record has nothing to be compared with (and is not read: a pickle's
        trust does not arise). Mapped tasks' children are judged with their task."""
        unneeded = [name for name, task in self._tasks.items() if name not in decisions and name not in self._verified
                    and not task.is_gather and task.map_index is None and self._probes.get(name) is not None]
        self._verified.update(unneeded)
        where = {name: location for name in unneeded if (location := self._probes[name]) is not None}
        found = _check(self.checker, list(where.values()))
        there = {name: location for name, location in where.items() if found.get(location)}
        records = self.store.checkpoints([location.url for location in there.values()]) if self.store and there else {}
        corrupt: dict[str, str] = {}
        for name, location in there.items():
            record = records.get(location.url)
            if record is not None and (problem := verify_checkpoint(self.storages(location.result), location.url, record)):
                corrupt[name] = problem
        return corrupt

    def _check_checkpoint(self, name: str, decision: Decision) -> str | None:
        """Why a checkpoint cannot be trusted (size or sha256 differ from its record), or None."""
        if decision.runs or decision.reason is Reason.NOT_NEEDED:
            return None
        hit = self.hits.get(name)
        where = hit.checkpoint.where if hit else self._probes.get(name)
        if where is None:
            return None
        record = hit.checkpoint if hit else (self.store.checkpoint(where.url) if self.store else None)
        task = self._tasks[name]
        if record is None:
            if needs_record(task.serializer, self.trust):
                raise untrusted(where.url, name, task.serializer)
            return None  # written by something else: nothing to compare with
        if record.serializer != task.serializer:  # read it as it was written, never by a guess
            self._tasks[name] = replace(task, serializer=record.serializer)
        return verify_checkpoint(self.storages(where.result), where.url, record)

    def _rerun_gathers(self, decisions: dict[str, Decision]) -> None:
        """A mapped task decided done whose child was then found corrupt runs after all, so
        that what needs it waits for the child's rebuild."""
        for name, decision in decisions.items():
            task = self._tasks.get(name)
            if task is None or not task.is_gather or decision.runs or not task.children:
                continue
            running = sum(1 for child in task.children if decisions[child].runs)
            if running:
                decisions[name] = Decision(Action.RUN, Reason.MAPPED, detail=f"{running} of {len(task.children)} children run")

    def _blocked_by_failing(self, decisions: dict[str, Decision]) -> None:
        """A task that needs one that will fail (a dep missing) will not run: the run blocks
        it ("upstream failed"), and status and --dry-run say so beforehand."""
        failing = {name: name for name, d in decisions.items() if d.reason is Reason.DEPS_MISSING}
        if not failing:
            return
        for name in dag.toposort(self.graph, [n for n, d in decisions.items() if d.runs]):
            # the run blocks it once an upstream fails, before it would fail for its own deps
            up = next((u for u in self.graph[name] if u in failing), None)
            if up is not None:
                cause = failing[name] = failing[up]
                decisions[name] = Decision(Action.RUN, Reason.UPSTREAM_FAILS,
                                           detail=f"{cause!r} will fail ({decisions[cause].detail})",
                                           stale=decisions[name].stale)

    def _settle_locations(self, names: list[str]) -> None:
        """A skipped task's value is read where it is: a resumed run's checkpoint or a cache hit's."""
        for name in names:
            decision = self._decisions[name]
            if decision.reason is Reason.RESUMED:
                self._tasks[name] = replace(self._tasks[name], checkpoint=self._probes[name])
            elif decision.reason is Reason.CACHE_HIT:
                hit = self.hits[name].checkpoint
                self._tasks[name] = replace(self._tasks[name], checkpoint=hit.where, serializer=hit.serializer)

    # -- steps ---------------------------------------------------------------------

    def _forced_tasks(self, request: RunRequest, scope: set[str]) -> dict[str, Reason]:
        if request.force_all:
            return dict.fromkeys(scope, Reason.FORCED)
        if not request.force:
            return {}
        forced = dict.fromkeys(dag.downstream_within(self.graph, request.force, scope), Reason.UPSTREAM_FORCED)
        forced.update(dict.fromkeys(request.force, Reason.FORCED))
        return forced

    def _claim_targets(self, tasks: Iterable[PlannedTask]) -> None:
        for task in tasks:
            if task.target is not None:
                self.owners.claim(task.name, task.target, task.spec.line_of("target"))

    def _load_resumed(self, run_id: str | None) -> Mapping[str, Checkpoint]:
        if run_id is None or self.store is None:
            return {}
        return self.store.run_checkpoints(run_id)

    def _walk(
        self,
        requested: list[str],
        tasks: Mapping[str, PlannedTask],
        forced: Mapping[str, Reason],
        probes: Mapping[str, Location | None],
        decisions: dict[str, Decision],
    ) -> dict[str, Decision]:
        """Decide ``requested`` and, in waves, what the tasks that run need."""
        checker = self.checker
        self._decisions = decisions  # expansion of mapped tasks below reads and grows it
        wave: list[str] = requested
        waiting: list[str] = []
        while wave or waiting:
            ready, blocked = self._split(list(dict.fromkeys(waiting + wave)), tasks, forced, decisions)
            found = _check(checker, [p for n in ready if (p := probes.get(n)) is not None])
            records, entries = self._records(tasks, ready, forced, found)
            known = self._upstream_records(tasks, ready, forced, found, decisions)
            upcoming: dict[str, None] = {}
            for name in ready:
                if tasks[name].is_gather:
                    decision = self._decide_gather(name)
                    if decision is None:  # just expanded: decide its children first
                        blocked.append(name)
                        continue
                else:
                    decision = self._decide_one(tasks[name], self._forced_of(tasks[name]), probes.get(name), found,
                                                records, entries, known)
                decisions[name] = decision
                self._note_output(tasks[name], decision, probes.get(name))
                if decision.runs:
                    upcoming.update((up, None) for up in self.graph[name] if up not in decisions)
            for name in blocked:  # decide what it waits for first: looked at, not run
                upcoming.update((up, None) for up in self._waits_for(tasks[name], forced, decisions))
            while self._rebuilt:  # a mapped task's upstream found corrupt: it runs, so its needs count
                upcoming.update((up, None) for up in self.graph[self._rebuilt.pop()] if up not in decisions)
            waiting = blocked
            wave = [name for name in upcoming if name not in decisions]
        return decisions

    def _split(self, names: list[str], tasks: Mapping[str, PlannedTask], forced: Mapping[str, Reason],
               decisions: Mapping[str, Decision]) -> tuple[list[str], list[str]]:
        """Tasks that can be decided now, and those waiting for other decisions first."""
        ready: list[str] = []
        blocked: list[str] = []
        for name in names:
            if name in decisions:
                continue
            (blocked if self._waits_for(tasks[name], forced, decisions) else ready).append(name)
        return ready, blocked

    def _waits_for(self, task: PlannedTask, forced: Mapping[str, Reason], decisions: Mapping[str, Decision]) -> list[str]:
        """What must be decided before this task can be: its children (a mapped task), the
        task it maps over, or its upstream tasks (a validator over inputs)."""
        if task.is_gather:
            if task.children is not None:
                return [c for c in task.children if c not in decisions]
            up = task.mapped_upstream
            return [up] if up is not None and up not in decisions else []
        # a validator over inputs, or one that judges what made a target (code, deps, or
        # validators without cache_for) on this task or one it needs, looks at the upstream
        # tasks first: an existing target above them does not hide them
        wants_inputs = self.rebuild_stale or task.spec.name in self._judged_below
        if wants_inputs and self._forced_of(task) is None:
            return [up for up in self.graph[task.name] if up not in decisions]
        return []

    def _forced_of(self, task: PlannedTask) -> Reason | None:
        """A child of a forced mapped task is forced too."""
        return self._forced.get(task.name) or self._forced.get(task.spec.name)

    # -- mapped tasks --------------------------------------------------------------

    def _decide_gather(self, name: str) -> Decision | None:
        """A mapped task: expand it (None: decide the children first), or sum its children up."""
        task = self._tasks[name]
        if task.children is None:
            items = self._items(task)
            if items is None:
                return Decision(Action.RUN, Reason.MAP_PENDING, detail=f"mapped over {task.mapped_upstream!r}")
            self._expand(name, items)
            return None
        running = sum(1 for child in task.children if self._decisions[child].runs)
        if running:
            return Decision(Action.RUN, Reason.MAPPED, detail=f"{running} of {len(task.children)} children run")
        return Decision(Action.SKIP, Reason.CHILDREN_DONE, detail=f"{len(task.children)} children")

    def _items(self, task: PlannedTask) -> list[object] | None:
        """The items to map over, or None while they depend on a task that runs first.

        An upstream that is not recomputed is read now -- under the trust rule, so only if
        its checkpoint is recorded and matches (or is data that cannot run code, or with
        --trust). One found corrupt is rebuilt first, and the task expands during the run
        from the rebuilt value: nothing is ever derived from a corrupt list.
        """
        where = dict(file=self.spec.path, line=task.spec.line_of("foreach"), key=f"tasks.{task.name}.foreach")
        up = task.mapped_upstream
        try:
            if up is None:
                return static_items(task.spec.foreach, self.base, self.renderer.budget)
            if self._decisions[up].runs:
                return None
            try:
                value = self._load_value(up)
            except _Unusable as exc:
                self._rebuild(exc.task, exc.problem)
                return None
            return as_items(value, f"the value of {up!r}")
        except (ValueError, SpecError) as exc:
            raise SpecError(f"task {task.name!r} cannot map: {exc}", **where) from None  # type: ignore[arg-type]

    def _load_value(self, name: str) -> object:
        """The value of a task this run does not recompute (to know what to map over),
        read through :func:`read_value` against the store's record of it."""
        task = self._tasks[name]
        if task.is_gather:
            return [self._load_value(child) for child in task.children or ()]
        hit = self.hits.get(name)
        where = hit.checkpoint.where if hit else (self._probes.get(name) or task.checkpoint)
        if where is None:
            raise SpecError(f"the value of {name!r} was not kept (checkpoint: false)")
        record = hit.checkpoint if hit else (self.store.checkpoint(where.url) if self.store else None)
        codec = record.serializer if record else task.serializer  # as it was written, never by a guess
        try:
            value = read_value(self.storages(where.result), where.url, codec, expected=Expected.of(record),
                               trust=self.trust, task=name)
        except CorruptCheckpoint as exc:
            raise _Unusable(name, exc.problem) from None
        except FileNotFoundError:
            raise _Unusable(name, "it is gone") from None
        except SerializationError as exc:
            raise SpecError(f"cannot read the value of {name!r} from {where.url} as {codec}: {exc}",
                            hint=f"Rebuild it with `targetrun run --force {task.spec.name}`.") from None
        self._verified.add(name)
        return value

    def _rebuild(self, name: str, problem: str) -> None:
        """A checkpoint found corrupt while planning: recompute it (and walk what it needs)."""
        corrupt = Decision(Action.RUN, Reason.CORRUPT, detail=problem)
        self._decisions[name] = self.deps_verdict(self._tasks[name], corrupt)
        self._verified.add(name)
        self._kept.pop(name, None)
        self.outputs.pop(name, None)
        self.hits.pop(name, None)
        self._rebuilt.append(name)

    def _expand(self, name: str, items: list[object]) -> list[str]:
        """Render one child per item and put them in the graph before the mapped task."""
        gather = self._tasks[name]
        children = [self.renderer.render(gather.spec, i, item) for i, item in enumerate(items)]
        self._claim_targets(children)
        for child in children:
            self._tasks[child.name] = child
            self.graph[child.name] = gather.spec.upstream
            if self._forced_of(child) is None:
                self._probes[child.name] = self._probe(child, self._resumed.get(child.name))
        names = tuple(child.name for child in children)
        for child in children:  # a child's deps, rendered with its item, another task may make
            if child.deps and (ordered := self._ordered_deps(child, self._tasks)):
                self._made_upstream[child.name] = ordered
        self.graph[name] = gather.spec.upstream + names
        self._tasks[name] = replace(gather, children=names)
        for key, urls in _group(p for n in names if (p := self._probes.get(n)) is not None):
            self.checker.expect(key, urls)
        return list(names)

    def _expand_unneeded(self, decisions: Mapping[str, Decision]) -> None:
        """Expand the mapped tasks nothing requested needs whose items are known without
        running anything (a list or a parameter, or an upstream's existing value), so that
        ``status`` and ``--dry-run`` judge their children as they judge any unneeded
        upstream (not needed, and what is stale about each child's target): they say what
        ``run --rebuild-stale``, which walks up to them, will rebuild. Nothing is decided
        here. Items that cannot be read now (an upstream that runs, or whose value is gone,
        corrupt or untrusted) leave the task unexpanded: nothing is said, as of a target
        whose storage cannot tell."""
        for name in list(self._tasks):  # upstream first: a mapped upstream is expanded before its reader
            task = self._tasks[name]
            if name in decisions or not task.is_gather or task.children is not None:
                continue
            items = self._unneeded_items(task, decisions)
            try:
                if items is not None:
                    self._expand(name, items)
            except TargetrunError:  # e.g. two children render one target: a run that needs it says so
                continue

    def _rejudge_readers_of_mapped(self, decisions: dict[str, Decision]) -> None:
        """Judge again the kept targets that read a mapped task expanded only just now: their
        inputs were unknown when they were judged, and are known now (the children's
        records), as ``run --rebuild-stale``, which walks up to the mapped task, knows them."""
        for name, decision in list(decisions.items()):
            task = self._tasks[name]
            if not decision.stale or task.target is None or not any(
                    (up := self._tasks.get(u)) is not None and up.is_gather and up.children is not None
                    and u not in decisions for u in task.spec.upstream):
                continue
            record = self._read.get(task.target.url) or self.store.checkpoint(task.target.url) if self.store else None
            decisions[name] = self.judge(task, replace(decision, stale=()), record, self._reported_output)

    def _unneeded_items(self, task: PlannedTask, decisions: Mapping[str, Decision]) -> list[object] | None:
        up = task.mapped_upstream
        try:
            if up is None:
                return static_items(task.spec.foreach, self.base, self.renderer.budget)
            if up in decisions and decisions[up].runs:
                return None
            return as_items(self._load_value(up), f"the value of {up!r}")
        except (_Unusable, ValueError, TargetrunError):
            return None

    def expand_during_run(self, name: str, items: list[object]) -> Expansion:
        """Expand a mapped task whose items became known during the run; decide its children."""
        self._own()
        names = self._expand(name, items)
        found = _check(self.checker, [p for n in names if (p := self._probes.get(n)) is not None])
        records, entries = self._records(self._tasks, names, self._forced, found)
        for child in names:
            task = self._tasks[child]
            decision = self._decide_one(task, self._forced_of(task), self._probes.get(child), found, records, entries)
            self._decisions[child] = decision
            self._note_output(task, decision, self._probes.get(child))
        self._settle_locations(names)
        return Expansion(self._tasks[name], tuple(self._tasks[n] for n in names),
                         MappingProxyType({n: self._decisions[n] for n in names}))

    def _records(self, tasks: Mapping[str, PlannedTask], names: list[str], forced: Mapping[str, Reason],
                 found: Mapping[Location, bool]) -> tuple[dict[str, Checkpoint], dict[str, list[CacheEntry]]]:
        """Checkpoint records and cache entries the wave's cached tasks need: two round trips."""
        if self.store is None:
            return {}, {}
        cached = [tasks[n] for n in names if tasks[n].spec.cache is not None and n not in forced]
        judged = [tasks[n] for n in names if n not in forced and (tasks[n].spec.cache is not None or self._rules(tasks[n]).looked)]
        existing = [t for t in judged if t.target is not None and found.get(t.target)]
        by_code = self._judged_by_code(existing)
        locations = [t.target.url for t in existing if t.target is not None and t.target.url not in by_code]
        keys = [t.cache_key for t in cached if t.cache_key and not (t.target is not None and found.get(t.target))]
        records = self.store.checkpoints(locations) if locations else {}
        self._read.update(records)
        by_kinds: dict[frozenset[StaleKind], dict[str, str]] = {}  # a plan's tasks look at a few sets of kinds
        for url, (code, kinds) in by_code.items():
            by_kinds.setdefault(kinds, {})[url] = code
        for kinds, codes in by_kinds.items():  # only records where something may differ are read: one lookup
            read = self.store.checkpoints_that_differ_each(codes, kinds)  # for every command, not one each
            differ = {url: record for url, record in read.items() if record is not None}
            records.update(differ)
            self._read.update(read if kinds == _EVERY_KIND else differ)  # a None says all of Plan.records' then
        if keys and self.cache_generation is None:  # before reading: a change meanwhile shows
            self.cache_generation = self.store.cache_generation()
        entries = self.store.cache_entries(keys) if keys else {}
        return records, entries

    def _upstream_records(self, tasks: Mapping[str, PlannedTask], names: list[str], forced: Mapping[str, Reason],
                          found: Mapping[Location, bool],
                          decisions: Mapping[str, Decision]) -> Mapping[str, Checkpoint | None]:
        """The records of the upstreams a wave's existing targets are judged against and the
        walk has not decided (Make: an existing target's upstreams are not looked at), read
        in one lookup, by location (None: no record there) -- else each was read alone when
        judged, one round trip per task."""
        if self.store is None:
            return _NONE_KNOWN
        urls: dict[str, None] = {}
        for name in names:
            task = tasks[name]
            if name in forced or task.target is None or not found.get(task.target) or not self._rules(task).looked:
                continue
            for up in self.graph[name]:
                upstream = self._tasks.get(up)
                if up not in decisions and upstream is not None and upstream.target is not None \
                        and not upstream.is_gather:
                    urls[upstream.target.url] = None
        if not urls:
            return _NONE_KNOWN
        records = self.store.checkpoints(list(urls))
        self._read.update(records)
        return {url: records.get(url) for url in urls}

    def _decide_one(self, task: PlannedTask, forced: Reason | None, probe: Location | None,
                    found: Mapping[Location, bool], records: Mapping[str, Checkpoint],
                    entries: Mapping[str, list[CacheEntry]],
                    known: Mapping[str, Checkpoint | None] = _NONE_KNOWN) -> Decision:
        """Gather one task's facts and let :func:`~targetrun.engine.decide.decide` rule."""
        exists = probe is not None and found[probe]
        policy = task.spec.cache
        compares = needs_inputs(policy, forced)
        record = records.get(task.target.url) if task.target is not None and exists else None
        mtime = None
        if compares and task.target is not None and exists and record is None:
            stat = self.storages(task.target.result).info(task.target.url)  # no record: its age, from the storage
            mtime = stat.mtime if stat else None
        found_entries = entries.get(task.cache_key or "", ())
        facts = Facts(policy, task.target.url if task.target is not None else None, exists, self.now, forced, record, mtime,
                      found_entries, self.input_fingerprints(task) if compares else {}, self.params,
                      self.made_now(task, found_entries) if forced is None else NOTHING_KNOWN)
        decision, entry = decide(facts)
        if entry is not None:
            self.hits[task.name] = entry
        if forced is None and task.target is not None and exists:
            decision = self.judge(task, decision, record, self._reported_output, known=known)
        return self.deps_verdict(task, decision)  # last: whatever made it run, rule 5 included

    # -- deps ----------------------------------------------------------------------

    def check_target_again(self, task: PlannedTask) -> None:
        """The containment check of the task's target once more, with the disk as it is now
        (:meth:`~targetrun.resolve.Placer.check_again`): a SpecError when a symlink put
        since it was rendered leads it out of its result location."""
        if task.checkpoint is not None:
            self.renderer.placer.check_again(task.checkpoint.url)

    def contained_in(self, task: PlannedTask) -> tuple[str, str] | None:
        """The result location a value led the task's local target into, as written and as
        it really is: where the commit must find the target's folder (None: not value-led)."""
        return self.renderer.placer.contained_in(task.checkpoint.url) if task.checkpoint is not None else None

    def deps_verdict(self, task: PlannedTask, decision: Decision) -> Decision:
        """The one judgement of a task's missing deps, given its final decision: one that
        runs while a declared dep is missing fails instead, one planned to fail whose deps
        are all there now runs (:func:`~targetrun.engine.decide.fails_for_missing_deps`).
        Planning asks it last for every task it decides; the run asks it again, of the
        planned decision, when the task is due. Only a task that runs reads its deps."""
        if not task.deps or not decision.runs:
            return decision
        return fails_for_missing_deps(decision, self._missing_deps(task))

    def _missing_deps(self, task: PlannedTask) -> list[str]:
        """The task's declared deps that are not there now (keys), less those an upstream
        task makes (its target: it runs first when it is missing). A storage that cannot
        tell raises (exit 3), as for a target; a FIFO named in deps is a usage error."""
        made = self._made_upstream.get(task.name, frozenset())
        return self.made_from.dep_index.missing([dep for dep in task.deps if dep not in made])

    def _deps_other_tasks_make(self, tasks: Mapping[str, PlannedTask]) -> dict[str, frozenset[str]]:
        """Deps that are (or hold) another task's target, for each task that reads one: the
        reader needs that task (so it runs first), else the pipeline is refused
        (:class:`~targetrun.resolve.DepMakers`)."""
        made: dict[str, frozenset[str]] = {}
        for task in tasks.values():
            if task.deps:
                ordered = self._ordered_deps(task, tasks)
                if ordered:
                    made[task.name] = ordered
        return made

    def _ordered_deps(self, task: PlannedTask, tasks: Mapping[str, PlannedTask]) -> frozenset[str]:
        if self._makers is None:
            self._makers = DepMakers(self.spec, self._all_targets(tasks))
        return self._makers.ordered(task.name, task.spec, task.deps, lambda: dag.ancestors(self.graph, [task.name]))

    def _all_targets(self, tasks: Mapping[str, PlannedTask]) -> list[tuple[str, str]]:
        """(task, target URL) of every task of the pipeline with a known target: those of
        this run as rendered, the others rendered now (a mapped task's children are known
        only once its items are: left out)."""
        found: list[tuple[str, str]] = []
        for name, spec in self.spec.tasks.items():
            task = tasks.get(name)
            if task is None and spec.target is not None and spec.foreach is None:
                task = self.renderer.render(spec)
            if task is not None and task.target is not None:
                found.append((name, task.target.url))
        return found

    # -- staleness -----------------------------------------------------------------

    def _judged_by_code(self, tasks: list[PlannedTask]) -> dict[str, tuple[str, frozenset[StaleKind]]]:
        """Targets whose records are only judged for staleness, code among what is looked
        at (no ``cache_for``: nothing else reads the record): location -> the code
        fingerprint as records store it, and the kinds looked at. A record whose code is
        that and that keeps nothing else those kinds compare need not be read: nothing
        about it is stale (:meth:`~targetrun.store.base.StateStore.checkpoints_that_differ`)."""
        found: dict[str, tuple[str, frozenset[StaleKind]]] = {}
        pairs: dict[tuple[CachePolicy | None, str | None, str | None, str | None],
                    tuple[str, frozenset[StaleKind]] | None] = {}  # 10,000 tasks share a few
        for task in tasks:
            spec = task.spec
            key = (spec.cache, spec.version, spec.shell, spec.run)
            if key not in pairs:
                looked = self._rules(task).looked
                code = self.made_from.code_text(spec) \
                    if StaleKind.CODE in looked and not (spec.cache is not None and spec.cache.caches) else None
                # code that imports a module by a computed name is said to be unknown, from its record
                pairs[key] = (code, looked) if code is not None and f'"{UNFOLLOWED}:' not in code else None
            pair = pairs[key]
            if pair is not None and task.target is not None:
                found[task.target.url] = pair
        return found

    def made_now(self, task: PlannedTask, entries: Sequence[CacheEntry]) -> MadeNow:
        """What makes the task now, as :func:`~targetrun.engine.decide.decide` asks: whether
        its code parses, and -- only when there are cache entries to judge -- the code and
        deps fingerprints of the kinds looked at (``status`` looks at all)."""
        unparsable = self.made_from.unparsable(task.spec) if task.spec.run is not None else None
        if not entries:  # the common case, 10,000 times in a no-op: nothing else to know
            return NOTHING_KNOWN if unparsable is None else MadeNow(unparsable)
        policy = task.spec.cache
        if policy is None or not policy.caches:
            return NOTHING_KNOWN if unparsable is None else MadeNow(unparsable)
        rules = self._rules(task)
        code = self.made_from.code(task.spec) if StaleKind.CODE in rules.looked else None
        own = task.checkpoint.url if task.checkpoint is not None else None  # never one of its own deps
        deps = self.made_from.deps(task.spec, entries[0].checkpoint, task.deps, own).hashes \
            if StaleKind.DEPS in rules.looked and task.deps else None
        return MadeNow(unparsable, code, deps, rules, self.made_from.root)

    def _rules(self, task: PlannedTask) -> StaleRules:
        """What to compare for this task, and what of it rebuilds it (equal policies judge alike)."""
        key = task.spec.cache
        rules = self._rules_of.get(key)
        if rules is None:
            rules = self._rules_of[key] = stale_rules(key, rebuild_stale=self.rebuild_stale,
                                                      report_stale=self.report_stale)
        return rules

    def judge(self, task: PlannedTask, decision: Decision, record: Checkpoint | None,
              output_of: Callable[[str], str], record_of: RecordOf | None = None, *,
              known: Mapping[str, Checkpoint | None] = _NONE_KNOWN) -> Decision:
        """An existing target's decision, with what is stale about it (rule 5 of
        :mod:`~targetrun.engine.decide`). A record without a kind's fingerprints says
        nothing about it (unknown). ``output_of`` gives upstream output fingerprints as
        the caller knows them (the run knows more than the plan); ``known``, the records
        the caller read already, by location (None: none there), for upstreams the plan
        never looked at; ``record_of``, an upstream's record as the caller knows it (the
        run: one it wrote, perhaps not yet in the store), None to ask the store."""
        if record is None or not (judged(decision) or said_too(decision)):
            return decision
        rules = self._rules(task)
        if not rules.looked:
            return decision
        current: dict[str, str] = {}

        def upstream(name: str) -> str:  # one this plan never looked at: from its record
            return output_of(name) if name in self._decisions else self._reported_output(name, known)

        def input_of(arg: str) -> str | None:
            if not current:
                current.update(task_inputs(task, upstream))
            return current.get(arg) or None

        stale, pending = staleness.compare(task.spec, record, self.made_from, input_of, rules.looked, task.deps,
                                           lambda: self._made_with_now(task, Records(known, record_of), upstream,
                                                                       self._made_now if record_of is None else self._made_now_run))
        decision = with_staleness(decision, stale, pending, rules, task.spec.cache, task.spec.needs,
                                  rebuild_stale=self.rebuild_stale)
        return as_parameter_change(decision, self._dep_params(task.spec)) if task.spec.deps else decision

    def _made_with_now(self, task: PlannedTask, known: Records, output_of: Callable[[str], str],
                       memo: dict[str, staleness.MadeWith]) -> staleness.MadeWith | None:
        """:meth:`_upstream_made_with`, once every task above has its answer in ``memo``,
        upstream first: each answer then looks one level down, whatever the depth, and a
        chain of N tasks below a changed parameter costs N answers in all."""
        parts = [part for up in task.spec.upstream if (upstream := self._tasks.get(up)) is not None
                 for part in (upstream.children or () if upstream.is_gather else (up,)) if part in self.graph]
        if not all(part in memo for part in parts):
            order = [name for name in dag.toposort(self.graph, dag.ancestors(self.graph, parts))
                     if name not in memo and (above := self._tasks.get(name)) is not None and not above.is_gather]
            known = self._with_records(order, known)
            for name in order:
                above = self._tasks[name]
                record = self._upstream_record(name, known)
                if record is not None:
                    self._as_made_now(above, record, known, output_of, memo, 0)
        return self._upstream_made_with(task, known, output_of, memo)

    def _upstream_made_with(self, task: PlannedTask, known: Records, output_of: Callable[[str], str],
                            memo: dict[str, staleness.MadeWith], depth: int = 0) -> staleness.MadeWith | None:
        """What the values ``task`` reads are made with now -- what a run of it would record
        besides its own parameters (the run's ``_made_with``) -- from their records, each
        read as :meth:`_as_made_now` reads it; None when a record is not there."""
        made: dict[str, str] = {}
        made_for: str | None = None
        for up in dict.fromkeys(task.spec.upstream):
            upstream = self._tasks.get(up)
            if upstream is None:
                return None
            if upstream.is_gather:  # it reads the whole list: what the list is made with now
                listed, listed_for = templating.list_made_with(upstream.spec, self.context)
                for name, text in listed.items():
                    made.setdefault(name, text)
                made_for = made_for or listed_for
            for part in upstream.children or () if upstream.is_gather else (up,):
                if self._tasks[part].target is None:  # its value is made anew by every run that needs it:
                    return None  # planning cannot read it, so neither does the run (status and run agree)
                record = self._upstream_record(part, known)
                if record is None:
                    return None
                texts, day = self._as_made_now(self._tasks[part], record, known, output_of, memo, depth)
                for name, text in texts.items():
                    made.setdefault(name, text)
                made_for = made_for or day
        return made, made_for

    def _with_records(self, names: Sequence[str], known: Records) -> Records:
        """``known`` and the records of these tasks' values, read in one lookup."""
        urls = [where.url for name in names if (where := self._tasks[name].checkpoint) is not None
                and where.url not in known.by_url]
        if not urls or self.store is None:
            return known
        found = self.store.checkpoints(urls)
        return Records({**known.by_url, **{url: found.get(url) for url in urls}}, known.record_of)

    def _upstream_record(self, name: str, known: Records) -> Checkpoint | None:
        """The record of an upstream's value: as the caller knows it, else from the store."""
        found = known.record_of(name) if known.record_of is not None else None
        if found is not None:
            return found
        where = self._tasks[name].checkpoint if name in self._tasks else None
        if where is None or self.store is None:
            return None
        return known.by_url[where.url] if where.url in known.by_url else self.store.checkpoint(where.url)

    def _as_made_now(self, task: PlannedTask, record: Checkpoint, known: Records, output_of: Callable[[str], str],
                     memo: dict[str, staleness.MadeWith], depth: int) -> staleness.MadeWith:
        """A record's made-with, with each parameter (and the date) it is not stale in read as
        the present value: one that reached it only through values unchanged since (early
        cutoff) counts as made with the present one, so the chain below a task rebuilt into
        the same bytes is fresh at every level. ``memo``: the answers so far, by task (see
        :meth:`_made_with_now`); deeper than 32 levels without one, the record as it is."""
        if task.name in memo:
            return memo[task.name]
        if depth >= 32:
            return record.made_with, record.made_for  # a guess on the safe side: not kept
        if not (record.made_with or record.made_for):
            memo[task.name] = record.made_with, record.made_for
            return memo[task.name]
        inputs: dict[str, str] = {}

        def input_of(arg: str) -> str | None:
            if not inputs:
                inputs.update(task_inputs(task, output_of))
            return inputs.get(arg) or None

        stale, _ = staleness.compare(task.spec, record, self.made_from, input_of, frozenset((StaleKind.PARAMETERS,)),
                                     task.deps, lambda: self._upstream_made_with(task, known, output_of, memo, depth + 1))
        still = {name for item in stale for name in item.names}
        params = self.context.params
        texts = {name: text if name in still or name not in params else templating.param_text(name, params[name])
                 for name, text in record.made_with.items()}
        day = record.made_for if record.made_for is None or "date" in still else f"{self.context.date:%Y-%m-%d}"
        memo[task.name] = texts, day
        return texts, day

    def _dep_params(self, spec: TaskSpec) -> tuple[str, ...]:
        """The parameters the task's deps templates name (``data/{params.which}.csv``)."""
        return templating.used_keys([dep for dep in spec.deps if "{" in dep], self.context.params)[0]

    def stale_unneeded(self, existing: Iterable[str]) -> dict[str, tuple[Stale, ...]]:
        """What is stale about the existing targets of tasks this plan did not need
        (``existing``: their names -- ``status`` and ``run --dry-run`` each know which are
        there), judged as if they had been asked for. One batched lookup of their records,
        which also tells their upstream output fingerprints (not looked up again one at a
        time); a task without a record or with nothing stale is left out."""
        urls = {name: task.target.url for name in existing
                if (task := self._tasks[name]).target is not None}
        if self.store is None or not urls:
            return {}
        records = self.store.checkpoints(list(urls.values()))
        known = {url: records.get(url) for url in urls.values()}  # None: no record there
        found = {name: self.judge(self._tasks[name], _EXISTS, known[url], self.output_fingerprint, known=known).stale
                 for name, url in urls.items()}
        return {name: stale for name, stale in found.items() if stale}

    def _reported_output(self, name: str, known: Mapping[str, Checkpoint | None] = _NONE_KNOWN) -> str:
        """An upstream's output fingerprint for judging staleness: as the run knows it, or
        (an upstream this walk never looked at) from its target's record -- in ``known``
        when the caller read it already; "" if unknown."""
        task = self._tasks.get(name)
        if name in self._decisions or name in self._kept or task is None:
            return self.output_fingerprint(name)
        if task.is_gather:  # its children's, in order, once they are known (as output_fingerprint)
            parts = [self._reported_output(child, known) for child in task.children or ()]
            return "" if task.children is None or not all(parts) or fingerprint.PENDING in parts \
                else fingerprint.of_value(parts)
        if task.target is None or self.store is None:
            return ""
        url = task.target.url
        record = known[url] if url in known else self.store.checkpoint(url)
        return fingerprint.of_content(record.content_hash) if record is not None else ""

    def _options_for(self, url: str) -> Mapping[str, object]:
        """Storage options of the result location a remote ``deps`` URL lies in."""
        for location in self.spec.results.values():
            if url.startswith(location.url.rstrip("/") + "/"):
                return location.options
        return {}

    def input_fingerprints(self, task: PlannedTask) -> dict[str, str]:
        return task_inputs(task, self.output_fingerprint)

    def output_fingerprint(self, name: str) -> str:
        """The fingerprint of a value this run does not recompute (PENDING if it does).

        Computed on demand, because only input validators ask: a no-op run of 10,000
        plain targets never reads a single record.
        """
        task = self._tasks.get(name)
        if task is not None and task.is_gather:  # a mapped task: its children's, in order
            parts = [self.output_fingerprint(child) for child in task.children or ()]
            pending = task.children is None or fingerprint.PENDING in parts
            return fingerprint.PENDING if pending else fingerprint.of_value(parts)
        if name not in self.outputs:
            probe = self._kept.get(name)
            self.outputs[name] = self.target_fingerprint(probe) if probe is not None else fingerprint.PENDING
        return self.outputs[name]

    def _note_output(self, task: PlannedTask, decision: Decision, probe: Location | None) -> None:
        # A downstream decided in an earlier wave may have asked for this output before this
        # task was decided (a cache_for task computes its inputs' fingerprints whatever its
        # validator) and been told PENDING; that answer held only while it was undecided, and
        # kept, it was recorded as the input of every record made from a kept target.
        self.outputs.pop(task.name, None)
        if decision.reason is Reason.CACHE_HIT:
            self.outputs[task.name] = fingerprint.of_content(self.hits[task.name].checkpoint.content_hash)
        elif not decision.runs and probe is not None:
            self._kept[task.name] = probe

    def target_fingerprint(self, where: Location) -> str:
        """The fingerprint of an existing target's value: its record's content hash, or
        (written by something else, so no record) the sha256 of its bytes -- the same
        fingerprint a record of those bytes holds. Never its size and age: a copy of the
        same bytes changes those, a same-size rewrite may not. PENDING if it is gone."""
        record = self.store.checkpoint(where.url) if self.store is not None else None
        if record is not None:
            return fingerprint.of_content(record.content_hash)
        return self._hash_of(where)

    def _hash_of(self, where: Location) -> str:
        """The fingerprint of an unrecorded target's bytes, hashed once per plan while its
        size and modification time stay the same: a target that N tasks read is read
        through once, not N times (a file found made during the run is asked for by each
        of its dependents). A stat costs a fraction of a read; one that changed since
        (the target was rewritten) hashes it again. PENDING if it is gone."""
        storage = self.storages(where.result)
        stat = storage.info(where.url)
        if stat is None:
            return fingerprint.PENDING
        known = self._hashed.get((where.url, stat))
        if known is not None:
            return known
        try:
            with storage.open_read(where.url) as f:
                known = fingerprint.of_content(fingerprint.stream_digest(f)[1])
        except FileNotFoundError:
            return fingerprint.PENDING
        self._hashed[(where.url, stat)] = known
        return known

    def _probe(self, task: PlannedTask, resumed: Checkpoint | None) -> Location | None:
        """The location whose existence decides a task: its target, or the checkpoint
        the resumed run left for a task without one."""
        if task.target is not None:
            return task.target
        if resumed is not None and task.checkpoint is not None:
            return Location(task.checkpoint.result, resumed.location)
        return None


def _by_value(mapping: Mapping[str, _Value]) -> dict[_Value, list[str]]:
    groups: dict[_Value, list[str]] = {}
    for key, value in mapping.items():
        groups.setdefault(value, []).append(key)
    return groups


def _judges_upstream(policy: CachePolicy | None) -> bool:
    """A validator that needs the upstream tasks decided before its own task."""
    return policy is not None and (bool(policy.validators & (INPUT_VALIDATORS | _MADE_FROM_VALIDATORS))
                                   or not policy.caches)


def _judged_below(spec: PipelineSpec, tasks: Mapping[str, PlannedTask]) -> set[str]:
    """The tasks (by spec name) that have such a validator, or need one that does."""
    found: set[str] = set()
    for name in tasks:  # upstream first
        task = spec.tasks.get(name)
        if task is not None and (_judges_upstream(task.cache) or any(up in found for up in task.upstream)):
            found.add(name)
    return found


def _check(checker: TargetChecker, locations: list[Location]) -> dict[Location, bool]:
    found: dict[Location, bool] = {}
    for key, urls in _group(locations):
        answers = checker.check_urls(key, urls)
        found.update((Location(key, url), answer) for url, answer in answers.items())
    return found


def _group(locations: Iterable[Location]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for location in locations:
        groups.setdefault(location.result, []).append(location.url)
    return list(groups.items())
