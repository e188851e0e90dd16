"""Planning: which tasks of a run are skipped, which run, and why (DESIGN.md §3).

Demand-driven, like Luigi. The requested tasks (default: the sinks) are decided first;
only the ``needs`` of a task that will run are requested in turn, so nothing below an
existing target is ever looked at. Each wave of the walk is checked in one batch, and a
folder or prefix that holds several of the run's targets is listed once
(:class:`~targetrun.storage.base.TargetChecker`).

For one task, in order:

1. forced (``--force``, ``--force-all``, or downstream of a forced task on the way to a
   requested one) -> run;
2. it has a target and the target exists -> skipped;
3. its value was checkpointed by the run being resumed -> skipped;
4. otherwise -> run (target missing, or no target).

"Cannot tell" from a storage is a :class:`StorageError` and stops the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from targetrun import dag, templating
from targetrun.errors import DuplicateTargetError, SpecError, UsageError, did_you_mean
from targetrun.model import (
    Action,
    Checkpoint,
    Decision,
    Location,
    PipelineSpec,
    PlannedTask,
    Reason,
    RunContext,
    TaskSpec,
)
from targetrun.resolve import Placer, default_checkpoint, infer_serializer
from targetrun.storage.base import Storage, TargetChecker
from targetrun.store.base import StateStore


@dataclass(frozen=True)
class RunRequest:
    tasks: tuple[str, ...] = ()  # empty: the pipeline's sinks
    force: tuple[str, ...] = ()
    force_all: bool = False
    dry_run: bool = False
    keep_going: bool = False
    resume: str | None = None  # run id whose checkpoints are reused


@dataclass
class Plan:
    spec: PipelineSpec
    context: RunContext
    requested: tuple[str, ...]
    tasks: dict[str, PlannedTask]  # every task in scope, rendered
    decisions: dict[str, Decision]  # every task visited
    order: list[str]  # the tasks that run, upstream first
    graph: dict[str, tuple[str, ...]]  # task -> upstream, whole pipeline
    base_context: dict[str, object] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.context.run_id

    def decision(self, name: str) -> Decision:
        return self.decisions.get(name, NOT_NEEDED)


NOT_NEEDED = Decision(Action.NOT_NEEDED, Reason.NOT_NEEDED)
# Decisions are immutable: share one object per verdict instead of one per task.
_SKIP_EXISTS = Decision(Action.SKIP, Reason.TARGET_EXISTS)
_RUN_MISSING = Decision(Action.RUN, Reason.TARGET_MISSING)
_SKIP_RESUMED = Decision(Action.SKIP, Reason.RESUMED)
_RUN_NO_TARGET = Decision(Action.RUN, Reason.NO_TARGET)
_FORCED = {reason: Decision(Action.RUN, reason) for reason in (Reason.FORCED, Reason.UPSTREAM_FORCED)}


class Planner:
    def __init__(
        self,
        spec: PipelineSpec,
        context: RunContext,
        storages: Callable[[str], Storage],
        store: StateStore | None = None,
    ) -> None:
        self.spec = spec
        self.context = context
        self.storages = storages
        self.store = store
        self.graph = {name: task.upstream for name, task in spec.tasks.items()}
        self.base = templating.base_context(context)
        self.placer = Placer(spec)

    def plan(self, request: RunRequest) -> Plan:
        self._check_names(request.tasks, "task")
        self._check_names(request.force, "--force task")
        requested = list(dict.fromkeys(request.tasks)) or dag.sinks(self.graph)
        requested += [name for name in request.force if name not in requested]
        scope = dag.ancestors(self.graph, requested)
        forced = self._forced(request, scope)
        tasks = {name: self.render(self.spec.tasks[name]) for name in dag.toposort(self.graph, scope)}
        self._check_duplicate_targets(tasks.values())
        resumed = self._resumed(request.resume)
        probes = {name: self._probe(task, resumed.get(name)) for name, task in tasks.items() if name not in forced}
        decisions = self._walk(requested, tasks, forced, probes)
        for name, decision in decisions.items():
            if decision.reason is Reason.RESUMED:  # read the value where the resumed run left it
                tasks[name] = replace(tasks[name], checkpoint=probes[name])
        runs = [name for name, d in decisions.items() if d.runs]
        order = dag.toposort(self.graph, runs)
        return Plan(self.spec, self.context, tuple(requested), tasks, decisions, order, self.graph, self.base)

    # -- steps ---------------------------------------------------------------------

    def _check_names(self, names: Iterable[str], what: str) -> None:
        for name in names:
            if name not in self.spec.tasks:
                hint = did_you_mean(name, self.spec.tasks) or f"Tasks: {', '.join(list(self.spec.tasks)[:20])}."
                raise UsageError(f"unknown {what} {name!r}", hint=hint)

    def _forced(self, request: RunRequest, scope: set[str]) -> dict[str, Reason]:
        if request.force_all:
            return dict.fromkeys(scope, Reason.FORCED)
        forced = dict.fromkeys(dag.downstream_within(self.graph, request.force, scope), Reason.UPSTREAM_FORCED)
        forced.update(dict.fromkeys(request.force, Reason.FORCED))
        return forced

    def render(self, task: TaskSpec) -> PlannedTask:
        """Render a task's target and args for this run (SpecError names the task)."""
        if task.foreach is not None:
            raise SpecError(
                f"task {task.name!r} uses `foreach`, which this version of targetrun does not run yet",
                file=self.spec.path, line=task.line_of("foreach"), key=f"tasks.{task.name}.foreach",
            )
        if task.cache is not None:
            raise SpecError(
                f"task {task.name!r} uses `cache_for`, which this version of targetrun does not run yet",
                file=self.spec.path, line=task.line_of("cache_for"), key=f"tasks.{task.name}.cache_for",
            )
        templated_args = task.templated_args
        templated = templated_args or (task.target is not None and "{" in task.target)
        context = templating.task_context(self.base, task.name) if templated else self.base
        try:
            target = self.placer.target(task, context) if task.target is not None else None
            args = {k: templating.render_value(v, context) for k, v in task.args.items()} if templated_args else task.args
        except SpecError as exc:
            raise SpecError(exc.message, file=self.spec.path, line=task.line_of("target"),
                            key=f"tasks.{task.name}", hint=exc.hint) from None
        serializer = infer_serializer(task, target.url if target else None)
        checkpoint = target
        if checkpoint is None and task.checkpoint:
            checkpoint = default_checkpoint(self.spec, task, serializer, self.context.run_id)
        return PlannedTask(task, target, checkpoint, serializer, args)

    def _check_duplicate_targets(self, tasks: Iterable[PlannedTask]) -> None:
        seen: dict[Location, str] = {}
        for task in tasks:
            if task.target is None:
                continue
            if task.target in seen:
                raise DuplicateTargetError(
                    f"tasks {seen[task.target]!r} and {task.name!r} both write the target {task.target.url} in this run",
                    file=self.spec.path, line=task.spec.line_of("target"), key=f"tasks.{task.name}.target",
                    hint="Give each task its own target (check the -p values).",
                )
            seen[task.target] = task.name

    def _resumed(self, run_id: str | None) -> Mapping[str, Checkpoint]:
        if run_id is None or self.store is None:
            return {}
        return self.store.run_checkpoints(run_id)

    def _walk(
        self,
        requested: list[str],
        tasks: Mapping[str, PlannedTask],
        forced: Mapping[str, Reason],
        probes: Mapping[str, Location | None],
    ) -> dict[str, Decision]:
        checker = TargetChecker(self.storages)
        for key, urls in _group(p for p in probes.values() if p is not None):
            checker.expect(key, urls)
        decisions: dict[str, Decision] = {}
        wave = requested
        while wave:
            found = _check(checker, [p for n in wave if (p := probes.get(n)) is not None])
            upcoming: dict[str, None] = {}
            for name in wave:
                probe = probes.get(name)
                decision = self.decide(tasks[name], forced.get(name), probe is not None and found[probe])
                decisions[name] = decision
                if decision.runs:
                    upcoming.update((up, None) for up in self.graph[name] if up not in decisions)
            wave = [name for name in upcoming if name not in decisions]
        return decisions

    def _probe(self, task: PlannedTask, resumed: Checkpoint | None) -> Location | None:
        """The location whose existence decides a task: its target, or the checkpoint
        the resumed run left for a task without one."""
        if task.target is not None:
            return task.target
        if resumed is not None and task.checkpoint is not None:
            return Location(task.checkpoint.result, resumed.location)
        return None

    def decide(self, task: PlannedTask, forced: Reason | None, exists: bool) -> Decision:
        """One task's verdict, given whether its target (or resumed checkpoint) exists."""
        if forced is not None:
            return _FORCED[forced]
        if task.target is not None:
            return _SKIP_EXISTS if exists else _RUN_MISSING
        return _SKIP_RESUMED if exists else _RUN_NO_TARGET


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
