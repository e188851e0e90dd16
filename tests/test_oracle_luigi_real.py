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
