"""Parity with the real Luigi, not only with the model of it in test_oracle_luigi.

test_oracle_luigi holds targetrun to a hand-written model of Luigi's worker and scheduler.
A model can drift from what it models, and then it hides the divergence it is there to
catch. So here the same random scenarios (test_oracle_luigi.scenarios: a DAG of 2-7 tasks,
deleted targets, failing tasks, a requested subset or the sinks, -j 1 or 2) are run by
Luigi itself (the version constraints/test.txt pins), in-process: one ``luigi.Task`` per
task, its ``LocalTarget`` the same file as targetrun's target, ``requires()`` per the
DAG, ``run()`` appending its name to a log and raising when its fail marker exists, built
with ``luigi.build(local_scheduler=True, workers=1)`` (targetrun with -j 1 or 2: the
order has only to respect the dependencies). Each task's fate is read from
Luigi's execution summary (already_done, completed, failed, upstream_failure; any other
category is reported by its own name, so it fails the comparison) and from the log. Then
``targetrun run --json --keep-going`` runs on an identical copy of the files, and the two
are held to the same fates, the same tasks run (each once, after what it needs) and the
same files afterwards; with the failures mended, the same request again. targetrun's
folder has either its records of every target (it made them all, then some were deleted,
as in test_oracle_luigi) or none (the files were put there): Luigi's rules know no records.

Luigi is imported lazily, here only, with a configuration of its own in a temporary
folder, $HOME and the working folder of its import (no lock file, no state file, no
SIGUSR1 handler; the fixture checks the last two), so it reads and writes nothing else.

The one deliberate difference: a task WITHOUT a target. In both it is never complete and
always runs (targetrun: without ``--resume``; Luigi's ``complete()`` warns that it has no
outputs, a warning silenced here). In targetrun its value then passes in memory to the tasks that need it (the
README, "What runs, and why": "A task without a target always runs (its value is kept
under .targetrun/results/RUN_ID/ ...)"). In Luigi nothing passes: before a task runs, the
worker checks that each requirement is complete (``check_unfulfilled_deps``), and a
target-less one never is, so a task that needs one fails without running ("Unfulfilled
dependency at run time"), and what needs it is upstream_failure. The model follows
targetrun there (its docstring: "no output, never complete"). So this test pins:

* the real Luigi == the model, once each task that directly needs a target-less task
  counts as failing *before it runs* (it is not in Luigi's log) -- on every scenario;
* targetrun == the real Luigi on every task that rule does not reach (neither such a
  task that Luigi got to, nor anything downstream of one); on scenarios it does not
  reach at all, everything: fates, runs, exit code, files;
* targetrun == the model where it does reach (the value passes; those tasks run).
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import itertools
import logging
import shutil
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.test_oracle_luigi import BLOCKED, FAILED, SKIPPED, SUCCEEDED, UNSEEN, pipeline, run, scenarios
from tests.test_oracle_luigi import luigi as model

# Luigi's execution-summary categories, as targetrun's --json names the same fates
FATES = {"already_done": SKIPPED, "completed": SUCCEEDED, "failed": FAILED, "upstream_failure": BLOCKED}
# categories a DAG of local files on one worker should never produce: a task in one is
# reported under that name, so the comparison fails and says which
ODD = ("scheduling_error", "not_run", "still_pending_ext", "run_by_other_worker", "upstream_missing_dependency",
       "upstream_run_by_other_worker", "upstream_scheduling_error")

CONFIG = """\
[core]
autoload_range = false
no_lock = true
[worker]
no_install_shutdown_handler = true
keep_alive = false
[scheduler]
state_path = {state}
record_task_history = false
retry_delay = 86400
"""


@pytest.fixture
def real_luigi(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """luigi, configured from a file of ours only, in a temporary home and working folder."""
    home = tmp_path_factory.mktemp("luigi-home")
    config = home / "luigi.cfg"
    config.write_text(CONFIG.format(state=home / "state.pickle"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LUIGI_CONFIG_PATH", str(config))  # read by luigi's first import
    monkeypatch.delenv("LUIGI_CONFIG_PARSER", raising=False)
    with contextlib.chdir(home):  # the import reads luigi.cfg and client.cfg in the working folder: none
        luigi = importlib.import_module("luigi")
    parser_class: Any = luigi.configuration.LuigiConfigParser
    # The import read /etc/luigi too, were it there: from here on, our file and nothing else.
    parser = parser_class()
    parser.read([str(config)])
    monkeypatch.setattr(parser_class, "_config_paths", [str(config)])
    monkeypatch.setattr(parser_class, "_instance", parser)
    monkeypatch.setattr(luigi.setup_logging.BaseLogging, "config", parser)
    # build() configures logging once a process; leave no handler behind for other tests
    monkeypatch.setattr(luigi.setup_logging.InterfaceLogging, "_configured", False)
    interface_log = logging.getLogger("luigi-interface")
    monkeypatch.setattr(interface_log, "handlers", [])
    monkeypatch.setattr(interface_log, "level", interface_log.level)
    usr1 = signal.getsignal(signal.SIGUSR1)
    yield luigi
    assert signal.getsignal(signal.SIGUSR1) == usr1, "luigi installed its SIGUSR1 handler: our config was not read"
    assert [p.name for p in home.iterdir()] == ["luigi.cfg"], "luigi wrote to its home"


def run_luigi(luigi: Any, root: Path, deps: dict[str, list[str]], wanted: list[str],
              untargeted: set[str]) -> tuple[dict[str, str], list[str], dict[str, str], Any]:
    """Build ``wanted`` with the real Luigi in ``root``: fates, the log, failure messages, status."""
    log = root / "log.txt"
    log.unlink(missing_ok=True)

    class Step(luigi.Task):  # type: ignore[misc]
        name = luigi.Parameter()

        def requires(self) -> list[Any]:
            return [Step(name=dep) for dep in deps[self.name]]

        def output(self) -> Any:
            return [] if self.name in untargeted else luigi.LocalTarget(str(root / "out" / f"{self.name}.txt"))

        def run(self) -> None:
            with log.open("a") as f:
                f.write(f"{self.name}\n")
            if (root / "fail" / self.name).exists():
                raise RuntimeError(f"{self.name} fails")
            if self.name not in untargeted:
                with self.output().open("w") as out:  # Luigi's atomic write: temporary, then rename
                    out.write(f"{self.name}\n")

    errors: dict[str, str] = {}

    @Step.event_handler(luigi.Event.FAILURE)  # type: ignore[untyped-decorator]
    def failed(task: Any, exception: BaseException) -> None:
        errors[task.name] = str(exception)

    with warnings.catch_warnings():  # its complete() of a target-less task warns, and says False
        warnings.filterwarnings("ignore", r"Task .* without outputs has no custom complete\(\) method", UserWarning)
        result = luigi.build([Step(name=name) for name in wanted], local_scheduler=True, workers=1,
                             detailed_summary=True, log_level="ERROR")
    labels: dict[str, set[str]] = {}
    for category, tasks in luigi.execution_summary._summary_dict(result.worker).items():
        if category in FATES or category in ODD:
            for task in tasks:
                labels.setdefault(task.name, set()).add(FATES.get(category, category))
    fate = {name: "+".join(sorted(found)) for name, found in labels.items()}
    return fate, log.read_text().split() if log.exists() else [], errors, result.status


def downstream(deps: dict[str, list[str]], tasks: set[str]) -> set[str]:
    """``tasks`` and every task that needs one of them, directly or not."""
    reached = set(tasks)
    for name in deps:  # names are in topological order: a task's needs come before it
        if reached & set(deps[name]):
            reached.add(name)
    return reached


def made(root: Path, names: list[str]) -> set[str]:
    return {t for t in names if (root / "out" / f"{t}.txt").exists()}


def in_order(ran: list[str], deps: dict[str, list[str]]) -> bool:
    return all(dep not in ran[position:] for position, task in enumerate(ran) for dep in deps[task])


def everywhere(fate: dict[str, str], names: list[str]) -> dict[str, str]:
    return {t: fate.get(t, UNSEEN) for t in names}


def seed(ours: Path, theirs: Path, deps: dict[str, list[str]], exists: set[str], failing: set[str],
         recorded: bool) -> None:
    """The same targets and fail markers in both folders; targetrun's records of them, or none."""
    for root in (ours, theirs):
        (root / "out").mkdir()
        (root / "fail").mkdir()
    names = list(deps)
    if recorded:  # targetrun made and recorded every target, then some were deleted
        code, _, ran = run(ours)
        assert code == 0 and sorted(ran) == sorted(names)
        for name in made(ours, names) - exists:
            (ours / "out" / f"{name}.txt").unlink()
    else:  # targets it did not make: as good as any, for Luigi's rules
        for name in exists:
            (ours / "out" / f"{name}.txt").write_text(f"{name}\n")
    for name in exists:
        shutil.copy2(ours / "out" / f"{name}.txt", theirs / "out" / f"{name}.txt")
    for root, name in itertools.product((ours, theirs), failing):
        (root / "fail" / name).touch()
    assert made(ours, names) == made(theirs, names) == exists


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(scenarios(), st.booleans())
def test_targetrun_and_the_model_decide_as_the_real_luigi_does(real_luigi, tmp_path_factory, scenario, recorded):
    deps, deleted, untargeted, failing, requested, jobs = scenario
    names = list(deps)
    wanted = requested or [t for t in names if not any(t in needs for needs in deps.values())]
    needs_untargeted = {t for t in names if set(deps[t]) & untargeted}
    exists = set(names) - deleted - untargeted
    theirs, ours = tmp_path_factory.mktemp("real-luigi"), tmp_path_factory.mktemp("targetrun")
    (ours / "Pipelinefile.yaml").write_text(pipeline(ours, deps, untargeted))
    seed(ours, theirs, deps, exists, failing, recorded)

    for round_ in ("failing", "mended"):
        # the real Luigi is the model, once a task needing a target-less one fails before it runs
        fate, ran, errors, status = run_luigi(real_luigi, theirs, deps, wanted, untargeted)
        expected = model(deps, wanted, exists, failing | needs_untargeted)
        assert everywhere(fate, names) == everywhere(expected, names)
        unfulfilled = {t for t, f in expected.items() if f == FAILED and t in needs_untargeted}
        assert {t for t, e in errors.items() if e.startswith("Unfulfilled ")} == unfulfilled
        # each ran once, after what it needs; an unfulfilled one not at all
        assert sorted(ran) == sorted(t for t, f in expected.items() if f in (SUCCEEDED, FAILED) and t not in unfulfilled)
        assert in_order(ran, deps), ran
        assert status == (real_luigi.LuigiStatusCode.FAILED if FAILED in fate.values()
                          else real_luigi.LuigiStatusCode.SUCCESS)
        assert made(theirs, names) == exists | {t for t, f in fate.items() if f == SUCCEEDED} - untargeted

        # targetrun is the real Luigi wherever that rule does not reach ...
        code, states, ours_ran = run(ours, *(requested or ()), "-j", str(jobs))
        comparable = [t for t in names if t not in downstream(deps, unfulfilled)]
        event(f"{round_}: {'all' if not unfulfilled else 'some' if comparable else 'no'} tasks compared with Luigi")
        assert everywhere(states, comparable) == everywhere(fate, comparable)
        assert sorted(t for t in ours_ran if t in comparable) == sorted(t for t in ran if t in comparable)
        assert in_order(ours_ran, deps), ours_ran
        assert made(ours, comparable) == made(theirs, comparable)
        if not unfulfilled:
            assert sorted(ours_ran) == sorted(ran)
            assert code == (1 if FAILED in fate.values() else 0)
            assert made(ours, names) == made(theirs, names)
        else:
            # ... and where it reaches, the value passes in memory, as README promises: the model's fates
            promised = model(deps, wanted, exists, failing)
            assert everywhere(states, names) == everywhere(promised, names)
            assert code == (1 if FAILED in promised.values() else 0)
            assert made(ours, names) == exists | {t for t, f in promised.items() if f == SUCCEEDED} - untargeted
            return  # the two folders now differ; a second round would compare different starts

        # the failures mended, the same request again: each runs what is still incomplete
        for root in (theirs, ours):
            shutil.rmtree(root / "fail")
            (root / "fail").mkdir()
        failing, exists = set(), made(theirs, names)


def luigi_fates(luigi: Any, tasks: list[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Build ``tasks`` with the real Luigi: each task's fate by its ``name``, and failure messages."""
    errors: dict[str, str] = {}

    @luigi.Task.event_handler(luigi.Event.FAILURE)  # type: ignore[untyped-decorator]
    def failed(task: Any, exception: BaseException) -> None:
        errors[task.name] = str(exception)

    try:
        result = luigi.build(tasks, local_scheduler=True, workers=1, detailed_summary=True, log_level="ERROR")
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.FAILURE].discard(failed)
    fate = {task.name: FATES[category] for category, found in luigi.execution_summary._summary_dict(result.worker).items()
            if category in FATES for task in found}
    return fate, errors


@pytest.mark.parametrize("check_complete_on_run", [False, True])
def test_a_command_that_exits_0_without_writing_its_target(real_luigi, tmp_path, check_complete_on_run):
    """README, Shell tasks: targetrun fails it, as Luigi with check_complete_on_run; Luigi's
    default calls it done and fails the task that needs it ("Unfulfilled dependency")."""
    luigi = real_luigi
    luigi.configuration.get_config().set("worker", "check_complete_on_run", str(check_complete_on_run).lower())

    class Step(luigi.Task):  # type: ignore[misc]
        name = luigi.Parameter()

        def requires(self) -> list[Any]:
            return [Step(name="a")] if self.name == "b" else []

        def output(self) -> Any:
            return luigi.LocalTarget(str(tmp_path / "theirs" / f"{self.name}.txt"))

        def run(self) -> None:
            if self.name == "b":
                with self.output().open("w") as out:
                    out.write("b\n")

    fate, errors = luigi_fates(luigi, [Step(name="b")])
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n  a:\n    shell: \"test -n {output}\"\n    target: out/a.txt\n"
        "  b:\n    shell: \"echo b > {output}\"\n    target: out/b.txt\n    needs: [a]\n")
    code, states, _ = run(tmp_path)
    assert code == 1 and states == {"a": FAILED, "b": BLOCKED}
    if check_complete_on_run:
        assert fate == states
    else:
        assert fate == {"a": SUCCEEDED, "b": FAILED} and errors["b"].startswith("Unfulfilled dependency")


def test_shapes_the_random_scenarios_do_not_draw_and_retries(real_luigi, tmp_path):
    """A diamond, three sinks, a parameterised and a dated target, a request of a middle task
    with one downstream of it, a target that exists above a missing one, a task that fails once
    and one that always fails: Luigi's ``retry_count`` N is targetrun's ``max_retries`` N - 1
    (Luigi retries within one build only with ``keep_alive``). Fates, attempts, files, twice."""
    luigi = real_luigi
    config = luigi.configuration.get_config()
    for section, key, value in (("worker", "keep_alive", "true"), ("worker", "wait_interval", "0.01"),
                                ("worker", "wait_jitter", "0"),
                                ("scheduler", "retry_delay", "0.01")):
        config.set(section, key, value)
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"], "f": ["a"], "g": ["f"], "h": ["a"],
            "i": ["h", "d"]}
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    targets = {t: f"out/{t}.txt" for t in deps} | {"b": "out/b-{params.x}.txt", "c": "out/c-{today}.txt"}
    retries = {"f": 1, "h": 1}
    fails = {"f": 1, "h": 99}  # how many attempts fail
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"

    def path(root: Path, task: str) -> Path:
        return root / targets[task].replace("{params.x}", "v7").replace("{today}", today)

    lines = ["params:", "  x: default", "tasks:"]
    for name, needs in deps.items():
        lines += [f"  {name}:", f"    shell: 'echo {name} >> {ours}/log.txt; n=$(cat {ours}/att/{name} 2>/dev/null || echo 0);"
                  f" n=$((n+1)); echo $n > {ours}/att/{name}; if [ $(cat {ours}/fail/{name} 2>/dev/null || echo 0) -ge $n ];"
                  f" then exit 1; fi; echo {name} > {{output}}'", f"    target: \"{targets[name]}\""]
        lines += [f"    needs: [{', '.join(needs)}]"] if needs else []
        lines += [f"    max_retries: {retries[name]}"] if name in retries else []

    class Step(luigi.Task):  # type: ignore[misc]
        name = luigi.Parameter()
        x = luigi.Parameter(default="v7")
        day = luigi.DateParameter(default=datetime.date.fromisoformat(today))

        @property
        def retry_count(self) -> int:
            return retries.get(self.name, 0) + 1

        def requires(self) -> list[Any]:
            return [Step(name=dep) for dep in deps[self.name]]

        def output(self) -> Any:
            return luigi.LocalTarget(str(theirs / targets[self.name].format(params=self, today=self.day)))

        def run(self) -> None:
            with (theirs / "log.txt").open("a") as log:
                log.write(f"{self.name}\n")
            attempts = theirs / "att" / self.name
            attempt = int(attempts.read_text()) + 1 if attempts.exists() else 1
            attempts.write_text(str(attempt))
            marker = theirs / "fail" / self.name
            if marker.exists() and int(marker.read_text()) >= attempt:
                raise RuntimeError(f"{self.name} fails")
            with self.output().open("w") as out:
                out.write(f"{self.name}\n")

    for root in (ours, theirs):
        for folder in ("out", "att", "fail"):
            (root / folder).mkdir(parents=True)
        for task in ("c", "e"):  # exist, above a missing a and d
            path(root, task).write_text(f"{task}\n")
        for task, count in fails.items():
            (root / "fail" / task).write_text(str(count))
    (ours / "Pipelinefile.yaml").write_text("\n".join(lines) + "\n")
    wanted = ["d", "e", "g", "i"]
    for round_ in ("failing", "mended"):
        for root in (ours, theirs):
            (root / "log.txt").unlink(missing_ok=True)
            shutil.rmtree(root / "att")
            (root / "att").mkdir()
        fate, _ = luigi_fates(luigi, [Step(name=name) for name in wanted])
        code, states, ran = run(ours, *wanted, "-p", "x=v7")
        assert everywhere(states, list(deps)) == everywhere(fate, list(deps)), round_
        assert sorted(ran) == sorted((theirs / "log.txt").read_text().split()), round_
        assert in_order(ran, deps), ran
        assert {t for t in deps if path(ours, t).exists()} == {t for t in deps if path(theirs, t).exists()}
        assert code == (1 if FAILED in fate.values() else 0)
        if round_ == "failing":  # f failed once then succeeded, h failed twice: each retried once
            assert (ran.count("f"), ran.count("h"), fate["f"], fate["h"]) == (2, 2, SUCCEEDED, FAILED)
        for root in (ours, theirs):
            shutil.rmtree(root / "fail")
            (root / "fail").mkdir()
    assert ran == ["h", "i"] and fate == {"a": SKIPPED, "d": SKIPPED, "e": SKIPPED, "g": SKIPPED,
                                          "h": SUCCEEDED, "i": SUCCEEDED}


def test_an_edited_recorded_target_that_a_running_task_needs(real_luigi, tmp_path):
    """README, What runs, and why: Luigi reads an edited target as it is; targetrun rebuilds one
    it recorded (checkpoint corrupt) and uses one it did not record as it is, as Luigi does."""
    luigi = real_luigi

    class Step(luigi.Task):  # type: ignore[misc]
        name = luigi.Parameter()

        def requires(self) -> list[Any]:
            return [Step(name="a")] if self.name == "b" else []

        def output(self) -> Any:
            return luigi.LocalTarget(str(tmp_path / "theirs" / f"{self.name}.txt"))

        def run(self) -> None:
            text = Path(self.input()[0].path).read_text() if self.name == "b" else "a\n"
            with self.output().open("w") as out:
                out.write(text)

    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "a.txt").write_text("edited\n")
    fate, _ = luigi_fates(luigi, [Step(name="b")])
    assert fate == {"a": SKIPPED, "b": SUCCEEDED} and (tmp_path / "theirs" / "b.txt").read_text() == "edited\n"
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n  a:\n    shell: \"echo a > {output}\"\n    target: out/a.txt\n"
        "  b:\n    shell: \"cat {needs.a} > {output}\"\n    target: out/b.txt\n    needs: [a]\n")
    for recorded, a_fate, b_text in ((True, SUCCEEDED, "a\n"), (False, SKIPPED, "edited\n")):
        shutil.rmtree(tmp_path / ".targetrun", ignore_errors=True)
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        if recorded:
            assert run(tmp_path)[0] == 0
            (tmp_path / "out" / "b.txt").unlink()
        else:
            (tmp_path / "out").mkdir()
        (tmp_path / "out" / "a.txt").write_text("edited\n")
        code, states, _ = run(tmp_path)
        assert (code, states) == (0, {"a": a_fate, "b": SUCCEEDED}), recorded
        assert (tmp_path / "out" / "b.txt").read_text() == b_text
