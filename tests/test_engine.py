"""The engine without the CLI: planning and the run driven directly, observed only through
a RecordingReporter, on a fake clock (no wall time, no sleeps)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from targetrun import api
from targetrun.engine import Engine, Plan, Planner, RunRequest
from targetrun.events import RecordingReporter, RunFinished, RunStarted, TaskQueued, TaskSkipped, TaskSucceeded
from targetrun.executors.base import InlineExecutor
from targetrun.model import Action, PipelineSpec, Reason, TaskState
from targetrun.pipelinefile import load_pipeline
from targetrun.storage.local import LocalStorage
from targetrun.store.sqlite import SqliteStore
from targetrun.testing import FakeClock

HOUR = 3600.0


class Bench:
    """One pipeline folder, its store and storage, a fake clock: plan and run by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.spec: PipelineSpec = load_pipeline(str(root / "Pipelinefile.yaml"))
        self.store = SqliteStore(str(root / ".targetrun" / "engine-test.db"))
        self.storage = LocalStorage()
        self.clock = FakeClock()

    def storages(self, key: str) -> LocalStorage:
        return self.storage

    def plan(self, request: RunRequest = RunRequest()) -> tuple[Plan, Planner]:
        context = api.run_context(self.spec, date=None)
        planner = Planner(self.spec, context, self.storages, self.store, now=self.clock.now())
        return planner.plan(request), planner

    def run(self, plan: Plan, planner: Planner, request: RunRequest = RunRequest()) -> RecordingReporter:
        reporter = RecordingReporter()
        engine = Engine(storages=self.storages, store=self.store, executor=InlineExecutor(), reporter=reporter,
                        clock=self.clock)  # type: ignore[arg-type]
        engine.run(plan, request, planner)
        return reporter


@pytest.fixture
def bench(tmp_path: Path) -> Callable[..., Bench]:
    def make(pipeline: str, module: str, source: str) -> Bench:
        (tmp_path / "Pipelinefile.yaml").write_text(pipeline)
        (tmp_path / f"{module}.py").write_text(source)
        return Bench(tmp_path)

    return make


def test_a_run_then_a_no_op(bench: Callable[..., Bench]) -> None:
    b = bench("""
    tasks:
      a: {run: eng_chain:make, target: out/a.json}
      b: {run: eng_chain:double, needs: [a], target: out/b.json}
    """, "eng_chain", "def make():\n    return 21\n\ndef double(a):\n    return a * 2\n")
    plan, planner = b.plan()
    assert [(n, plan.decisions[n].reason) for n in plan.order] == [("a", Reason.TARGET_MISSING),
                                                                   ("b", Reason.TARGET_MISSING)]
    events = b.run(plan, planner)
    assert isinstance(events.events[0], RunStarted) and isinstance(events.events[-1], RunFinished)
    assert events.tasks(TaskQueued) == ["a", "b"] and events.tasks(TaskSucceeded) == ["a", "b"]
    assert (b.root / "out/b.json").read_text().strip() == "42"
    written = {e.task: e.checkpoint.written_at for e in events.of(TaskSucceeded)}  # type: ignore[union-attr]
    assert written == {"a": b.clock.now(), "b": b.clock.now()}  # the record's time is the injected clock's

    again, planner = b.plan()  # demand-driven: b exists, so a is not even looked at
    assert again.order == () and dict(again.decisions) == {"b": again.decisions["b"]}
    assert again.decisions["b"].reason is Reason.TARGET_EXISTS and again.decision("a").reason is Reason.NOT_NEEDED
    events = b.run(again, planner)
    assert events.tasks(TaskQueued) == [] and events.tasks(TaskSkipped) == ["b"]


def test_cache_for_expires_on_the_injected_clock(bench: Callable[..., Bench]) -> None:
    b = bench("""
    tasks:
      c: {run: eng_cache:value, cache_for: 1h}
    """, "eng_cache", "def value():\n    return {'n': 1}\n")
    plan, planner = b.plan()
    made_at = b.clock.now()
    assert b.run(plan, planner).tasks(TaskSucceeded) == ["c"]

    b.clock.advance(HOUR - 1)
    plan, planner = b.plan()
    hit = plan.decisions["c"]
    assert (hit.action, hit.reason, hit.until) == (Action.SKIP, Reason.CACHE_HIT, made_at + HOUR)
    summary = b.run(plan, planner).of(RunFinished)[0].summary  # type: ignore[attr-defined]
    assert [(o.task, o.state) for o in summary.outcomes] == [("c", TaskState.CACHED)]

    b.clock.advance(2)
    plan, planner = b.plan()
    assert plan.decisions["c"].reason is Reason.CACHE_EXPIRED
    assert b.run(plan, planner).tasks(TaskSucceeded) == ["c"]


def test_the_late_recheck_skips_what_another_run_made_meanwhile(bench: Callable[..., Bench]) -> None:
    """Planned while missing, made by another run before this one starts: the engine's
    re-check, by the same rules, finds it and skips it."""
    b = bench("""
    tasks:
      a: {run: eng_late:make, target: out/a.json}
    """, "eng_late", "def make():\n    return 1\n")
    stale_plan, stale_planner = b.plan()
    assert stale_plan.decisions["a"].runs
    other, other_planner = b.plan()
    assert b.run(other, other_planner).tasks(TaskSucceeded) == ["a"]
    events = b.run(stale_plan, stale_planner)
    assert events.tasks(TaskQueued) == []
    (skipped,) = events.of(TaskSkipped)
    assert skipped.decision.reason is Reason.TARGET_EXISTS  # type: ignore[attr-defined]
    assert "found when about to run it" in skipped.decision.detail  # type: ignore[attr-defined]


def test_the_run_never_writes_into_its_plan(bench: Callable[..., Bench]) -> None:
    """A mapped task whose items are known only during the run grows the run's scope; the
    plan that was handed over stays as planned (status and the report read it)."""
    b = bench("""
    tasks:
      items: {run: eng_map:items, target: out/items.json}
      each: {run: eng_map:square, needs: {x: items}, foreach: {needs: items}, target: "out/each/{item}.json"}
    """, "eng_map", "def items():\n    return [1, 2, 3]\n\ndef square(x):\n    return x ** 2\n")
    plan, planner = b.plan()
    before = (dict(plan.tasks), dict(plan.decisions), plan.order, dict(plan.graph))
    assert plan.decisions["each"].reason is Reason.MAP_PENDING
    events = b.run(plan, planner)
    assert sorted(events.tasks(TaskSucceeded)) == ["each[0]", "each[1]", "each[2]", "items"]
    assert (dict(plan.tasks), dict(plan.decisions), plan.order, dict(plan.graph)) == before
    with pytest.raises(TypeError):
        plan.tasks["each[0]"] = plan.tasks["each"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.order = ()  # type: ignore[misc]
    assert (b.root / "out/each/3.json").read_text().strip() == "9"


class _Only:
    """A reporter that acts on some kinds of event only (events.Broadcast asks ``wants``)."""

    def __init__(self, *kinds: type) -> None:
        self.kinds = kinds
        self.events: list[object] = []

    def wants(self, kind: type) -> bool:
        return kind in self.kinds

    def handle(self, event: object) -> None:
        self.events.append(event)


@pytest.mark.parametrize("shown", [True, False])
def test_workers_send_start_notices_only_when_a_reporter_shows_starts(bench: Callable[..., Bench], shown: bool) -> None:
    """A start notice wakes the loop once more per task: sent only when something shows
    tasks starting (-v, the live view); either way every task runs and succeeds."""
    from targetrun.events import TaskStarted
    from targetrun.executors.local import ThreadExecutor

    b = bench("""
    tasks:
      a: {run: eng_notice:listened, target: out/a.json}
      b: {run: eng_notice:listened, target: out/b.json}
    """, "eng_notice", "from targetrun.executors import base\n\n"
         "def listened():\n    relay = base._thread_hook.hook\n    return relay is not None and relay.hook is not None\n")
    plan, planner = b.plan()
    reporter = _Only(TaskSucceeded, TaskStarted) if shown else _Only(TaskSucceeded)
    pool = ThreadExecutor(max_workers=2)
    try:
        Engine(storages=b.storages, store=b.store, executor=pool, reporter=reporter,  # type: ignore[arg-type]
               clock=b.clock).run(plan, RunRequest(), planner)
    finally:
        pool.shutdown()
    assert sorted(e.task for e in reporter.events if isinstance(e, TaskSucceeded)) == ["a", "b"]  # type: ignore[attr-defined]
    assert (b.root / "out/a.json").read_text().strip() == ("true" if shown else "false")
