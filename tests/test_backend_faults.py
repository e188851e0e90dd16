"""Backends going away mid-run: Redis stopped, a Dask worker killed. A clear error naming
the backend and exit 3 (or a retry where max_retries allows), nothing partial, and a
rerun after recovery completes."""

from __future__ import annotations

import json

import pytest

FAULTS = '''
import os, signal

STOP = None  # set by the test

def stop_redis(name="stopper", **upstream):
    STOP()
    return "made while the store went away"

def die_once(flag):
    """Kill the worker process running this task, the first time only."""
    if not os.path.exists(flag):
        open(flag, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"

def always_die():
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_redis_stopped_mid_run(project, steps, redis_url, redis_server, monkeypatch):
    proj = project(f"""
    cache: {redis_url}
    tasks:
      first: {{run: steps:const, args: {{name: first}}, target: out/first.json}}
      second: {{run: backendfaults:stop_redis, needs: [first], target: out/second.txt}}
    """, steps=steps, backendfaults=FAULTS)
    monkeypatch.syspath_prepend(str(proj.root))
    import backendfaults as faults

    monkeypatch.setattr(faults, "STOP", redis_server.stop)
    try:
        result = proj.cli("run")
        assert result.code == 3, result.text
        assert "the state store redis://127.0.0.1:" in result.err and "cannot be reached" in result.err
        assert "Traceback" not in result.text
    finally:
        redis_server.start()
    # first was recorded; second's value could not be recorded, so it never became its target
    assert proj.exists("out/first.json") and not proj.exists("out/second.txt")
    monkeypatch.setattr(faults, "STOP", lambda: None)
    rerun = proj.cli("run", "--json")
    assert rerun.code == 0, rerun.text
    assert {t["task"]: t["state"] for t in json.loads(rerun.out)["tasks"]} == {"first": "skipped",
                                                                            "second": "succeeded"}
    assert sorted(p.name for p in (proj.root / "out").iterdir()) == ["first.json", "second.txt"]  # no staging left


@pytest.fixture
def one_failure_allowed():
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")  # before the config change: its defaults must stay loaded
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        yield


def test_dask_worker_killed_mid_task_is_retried(project, tmp_path, one_failure_allowed):
    proj = project(f"""
    tasks:
      fragile:
        run: backendfaults:die_once
        args: {{flag: "{tmp_path / 'died-once'}"}}
        max_retries: 1
        target: out/fragile.txt
    """, backendfaults=FAULTS)
    result = proj.cli("run", "--executor", "dask", "-j", "2")
    assert result.code == 0, result.text
    assert "retry" in result.out and "the executor lost the task" in result.out
    assert proj.read("out/fragile.txt") == "survived"


def test_dask_worker_killed_every_time_is_exit_3(project, one_failure_allowed):
    proj = project("tasks:\n  doomed: {run: backendfaults:always_die, target: out/doomed.txt}\n", backendfaults=FAULTS)
    result = proj.cli("run", "--executor", "dask", "-j", "2")
    assert result.code == 3, result.text
    assert "the executor lost the task" in result.out and "KilledWorker" in result.out
    assert not proj.exists("out/doomed.txt")
