"""Parity with Luigi's run decisions, the oracle targetrun's existence rules are checked against.

A tiny model of Luigi's worker and scheduler (luigi/worker.py ``Worker.add`` /
``_add``, luigi/scheduler.py ``get_work``), written here from their source:

* ``complete()`` is "the target exists": a complete task is DONE and its requirements are
  never looked at;
* an incomplete task is PENDING and its requirements are added in turn;
* a pending task runs once every requirement is DONE, and is DONE when it succeeds;
* a task that fails is FAILED; whatever needs it, directly or not, never runs; every
  other runnable task still runs (the worker keeps going).

Random DAGs, random deleted targets, random failing tasks and random requests are run
with the real ``targetrun run --keep-going`` on real files, and every decision -- which
tasks ran, in which order, which were skipped, failed or blocked, what exists afterwards,
the exit code -- is held to the model's.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targetrun.cli import invoke

SKIPPED, SUCCEEDED, FAILED, BLOCKED, UNSEEN = "skipped", "succeeded", "failed", "upstream failed", "not needed"


def luigi(deps: dict[str, list[str]], requested: list[str], exists: set[str], failing: set[str]) -> dict[str, str]:
    """Each task's fate under Luigi's rules (UNSEEN: never added to the schedule)."""
    fate: dict[str, str] = {}
    pending: list[str] = []

    def add(task: str) -> None:  # Worker._add: complete() first; only an incomplete task's requires() are added
        if task in fate or task in pending:
            return
        if task in exists:
            fate[task] = SKIPPED
            return
        pending.append(task)
        for dep in deps[task]:
            add(dep)

    for task in requested:
        add(task)
    done = {t for t, f in fate.items() if f == SKIPPED}
    while True:  # get_work: any pending task whose requirements are all DONE
        runnable = [t for t in pending if t not in fate and all(d in done for d in deps[t])]
        if not runnable:
            break
        for task in runnable:
            fate[task] = FAILED if task in failing else SUCCEEDED
            if task not in failing:
                done.add(task)
    for task in pending:
        fate.setdefault(task, BLOCKED)  # a requirement failed: it never runs
    return fate


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, list[str]], set[str], set[str], set[str], list[str] | None, int]:
    n = draw(st.integers(2, 7))
    names = [f"t{i}" for i in range(n)]
    deps = {name: sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=3))) if i else []
            for i, name in enumerate(names)}
    deleted = draw(st.sets(st.sampled_from(names)))
    untargeted = draw(st.sets(st.sampled_from(names), max_size=2))  # Luigi: no output, never complete
    failing = draw(st.sets(st.sampled_from(names), max_size=2))
    requested = draw(st.none() | st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    jobs = draw(st.sampled_from((1, 2)))
    return deps, deleted, untargeted, failing, requested, jobs


def pipeline(root: Path, deps: dict[str, list[str]], untargeted: set[str]) -> str:
    lines = ["tasks:"]
    for name, needs in deps.items():
        command = (f"echo {name} >> {root}/log.txt; if [ -e {root}/fail/{name} ]; then exit 1; fi; "
                   f"echo {name} > {{output}}")
        lines += [f"  {name}:", f"    shell: \"{command}\""]
        if name not in untargeted:
            lines.append(f"    target: out/{name}.txt")
        if needs:
            lines.append(f"    needs: [{', '.join(needs)}]")
    return "\n".join(lines) + "\n"


def run(root: Path, *args: str) -> tuple[int, dict[str, str], list[str]]:
    log = root / "log.txt"
    log.unlink(missing_ok=True)
    out, err = io.StringIO(), io.StringIO()
    code = invoke(["run", "-f", str(root / "Pipelinefile.yaml"), "--json", "--keep-going", *args], out, err)
    assert code in (0, 1), err.getvalue()
    states = {t["task"]: t["state"] for t in json.loads(out.getvalue())["tasks"]}
    return code, states, log.read_text().split() if log.exists() else []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_targetrun_decides_as_luigi_does(tmp_path_factory, scenario):
    deps, deleted, untargeted, failing, requested, jobs = scenario
    root = tmp_path_factory.mktemp("luigi")
    (root / "fail").mkdir()
    (root / "Pipelinefile.yaml").write_text(pipeline(root, deps, untargeted))
    names = list(deps)
    sinks = [t for t in names if not any(t in needs for needs in deps.values())]

    # every target made and recorded by a first run, then some deleted (a middle one too)
    code, _, ran = run(root)
    assert code == 0 and sorted(ran) == sorted(names)
    for name in deleted - untargeted:
        (root / "out" / f"{name}.txt").unlink()
    for name in failing:
        (root / "fail" / name).touch()

    exists = set(names) - deleted - untargeted
    fate = luigi(deps, requested or sinks, exists, failing)
    # the plan (one decision function for status and run) foresees all but the failures
    _, planned, ran = run(root, *(requested or ()), "--dry-run")
    assert ran == []
    foreseen = {t: "would run" if f in (SUCCEEDED, FAILED, BLOCKED) else f for t, f in fate.items()}
    assert {t: planned.get(t, UNSEEN) for t in names} == {t: foreseen.get(t, UNSEEN) for t in names}
    code, states, ran = run(root, *(requested or ()), "-j", str(jobs))

    assert {t: states.get(t, UNSEEN) for t in names} == {t: fate.get(t, UNSEEN) for t in names}
    assert sorted(ran) == sorted(t for t, f in fate.items() if f in (SUCCEEDED, FAILED))  # each ran once
    for position, task in enumerate(ran):  # after everything it needs that ran
        assert all(dep not in ran[position:] for dep in deps[task]), (task, ran)
    assert code == (1 if FAILED in fate.values() else 0)
    made = {t for t in names if (root / "out" / f"{t}.txt").exists()}
    assert made == exists | {t for t, f in fate.items() if f == SUCCEEDED} - untargeted

    # the failures mended, the same request again: Luigi runs what is still incomplete
    for name in failing:
        (root / "fail" / name).unlink()
    again = luigi(deps, requested or sinks, made, set())
    code, states, ran = run(root, *(requested or ()))
    assert code == 0
    assert {t: states.get(t, UNSEEN) for t in names} == {t: again.get(t, UNSEEN) for t in names}
    assert sorted(ran) == sorted(t for t, f in again.items() if f == SUCCEEDED)
