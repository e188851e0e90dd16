"""One run's scope: the tasks it knows, their decisions and the graph, as the run grows them.

Planning hands the run a :class:`~targetrun.engine.plan.Plan`, a value. The run starts a
:class:`RunScope` from it -- its own copy -- and changes it only through the named methods
below: a mapped task expanded once its items are known (the planner renders and decides
the children: :class:`Planning`), a skipped upstream rebuilt because a reader found its
checkpoint corrupt, a task whose value is now read from elsewhere (a cache hit found at
run time, a value written in another format). The plan itself never changes, so
``status`` and the report read exactly what was planned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from targetrun.engine.decide import NOT_NEEDED, MadeNow
from targetrun.engine.plan import Expansion, Plan, RecordOf
from targetrun.model import Action, CacheEntry, Checkpoint, Decision, Location, PipelineSpec, PlannedTask, Reason, RunContext, Stale
from targetrun.staleness import MadeFrom


class Planning(Protocol):
    """What the run asks the planner after planning (:class:`~targetrun.engine.plan.Planner`)."""

    made_from: MadeFrom

    def expand_during_run(self, name: str, items: list[object]) -> Expansion: ...

    def judge(self, task: PlannedTask, decision: Decision, record: Checkpoint | None,
              output_of: Callable[[str], str], record_of: RecordOf | None = None) -> Decision: ...

    def output_fingerprint(self, name: str) -> str: ...

    def made_now(self, task: PlannedTask, entries: Sequence[CacheEntry]) -> MadeNow: ...

    def target_fingerprint(self, where: Location) -> str: ...

    def stale_unneeded(self, existing: Iterable[str]) -> dict[str, tuple[Stale, ...]]: ...

    def deps_verdict(self, task: PlannedTask, decision: Decision) -> Decision: ...

    def check_target_again(self, task: PlannedTask) -> None: ...

    def contained_in(self, task: PlannedTask) -> tuple[str, str] | None: ...


class RunScope:
    """The tasks of one run, their decisions, the graph and the order they run in."""

    def __init__(self, plan: Plan, planning: Planning) -> None:
        self.plan = plan
        # The plan's own (read-only) mappings until the run changes one, then a copy of it:
        # a no-op changes none, and three copies of 100,000 tasks cost ~15 MB.
        self.tasks: Mapping[str, PlannedTask] = plan.tasks
        self.decisions: Mapping[str, Decision] = plan.decisions
        self.graph: Mapping[str, tuple[str, ...]] = plan.graph
        self.order: list[str] = list(plan.order)
        self._planning = planning

    # what the plan says, unchanged
    @property
    def spec(self) -> PipelineSpec:
        return self.plan.spec

    @property
    def context(self) -> RunContext:
        return self.plan.context

    @property
    def run_id(self) -> str:
        return self.plan.run_id

    @property
    def params(self) -> Mapping[str, str]:
        return self.plan.param_fingerprints

    @property
    def made_from(self) -> MadeFrom:
        return self._planning.made_from

    def decision(self, name: str) -> Decision:
        return self.decisions.get(name, NOT_NEEDED)

    # -- how the run grows it -----------------------------------------------------------

    def expand(self, name: str, items: list[object]) -> list[str]:
        """A mapped task's items are known: its children join the scope, decided. Returns
        the children that run (they run before the mapped task)."""
        expansion = self._planning.expand_during_run(name, items)
        tasks = self.tasks = _own(self.tasks, self.plan.tasks)
        graph = self.graph = _own(self.graph, self.plan.graph)
        for child in expansion.children:
            tasks[child.name] = child
            graph[child.name] = expansion.gather.spec.upstream
        tasks[name] = expansion.gather
        graph[name] = expansion.gather.spec.upstream + tuple(c.name for c in expansion.children)
        decisions = self.decisions = _own(self.decisions, self.plan.decisions)
        decisions.update(expansion.decisions)
        running = [c.name for c in expansion.children if expansion.decisions[c.name].runs]
        self.order.extend(running)
        return running

    def rebuild(self, name: str, detail: str, task: PlannedTask | None = None) -> None:
        """A skipped task runs after all (its checkpoint was found corrupt), written to
        ``task``'s checkpoint when given (a cache hit's value lived in an earlier run's folder)."""
        if task is not None:
            self.read_from(name, task)
        self.redecided(name, Decision(Action.RUN, Reason.CORRUPT, detail=detail))
        self.order.append(name)

    def redecided(self, name: str, decision: Decision) -> None:
        """A task about to run was decided again with what is true now (its deps)."""
        decisions = self.decisions = _own(self.decisions, self.plan.decisions)
        decisions[name] = decision

    def read_from(self, name: str, task: PlannedTask) -> None:
        """Where (and as what) the run's readers find a task's value from now on."""
        tasks = self.tasks = _own(self.tasks, self.plan.tasks)
        tasks[name] = task

    # -- what the planner knows --------------------------------------------------------

    def judge(self, task: PlannedTask, decision: Decision, record: Checkpoint | None,
              output_of: Callable[[str], str], record_of: RecordOf | None = None) -> Decision:
        return self._planning.judge(task, decision, record, output_of, record_of)

    def made_now(self, task: PlannedTask, entries: Sequence[CacheEntry]) -> MadeNow:
        """What makes the task now, for :func:`~targetrun.engine.decide.decide` (as planning asks it)."""
        return self._planning.made_now(task, entries)

    def planned_output(self, name: str) -> str:
        """The output fingerprint of a task as planning knew it (``pending`` if it runs)."""
        return self._planning.output_fingerprint(name)

    def target_fingerprint(self, where: Location) -> str:
        """The fingerprint of an existing target's value (its record's, else its bytes')."""
        return self._planning.target_fingerprint(where)

    def check_target_again(self, task: PlannedTask) -> None:
        """The task's target still inside its result location, judged with the disk as it is now."""
        self._planning.check_target_again(task)

    def contained_in(self, task: PlannedTask) -> tuple[str, str] | None:
        """The result location (as written, as it really is) the commit of the task's target
        must find its folder in, for a target a value led there; None otherwise."""
        return self._planning.contained_in(task)

    def deps_verdict(self, task: PlannedTask, decision: Decision) -> Decision:
        """``decision`` with the task's deps as they are now, judged as planning judged them
        (see Planner.deps_verdict): the one judgement of "a dep is missing, it fails"."""
        return self._planning.deps_verdict(task, decision)


_K = TypeVar("_K")
_V = TypeVar("_V")


def _own(mapping: Mapping[_K, _V], planned: Mapping[_K, _V]) -> dict[_K, _V]:
    """``mapping`` once it is the run's own copy, else (the plan's) a copy to change."""
    if mapping is planned or not isinstance(mapping, dict):
        return dict(mapping)
    return mapping
