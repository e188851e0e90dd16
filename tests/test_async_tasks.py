"""An ``async def`` task is run to its end, as Prefect 2 and Dagster run one: its value is
what the coroutine returns, not the coroutine. Handed on unawaited, the coroutine was
refused by json ("Object of type coroutine is not JSON serializable", with advice that did
not help) and Python warned that it was never awaited."""

from __future__ import annotations

import json

import pytest

from tests.clirun import in_process, targetrun, write_project

TASKS = '''
import asyncio


async def fetch(city):
    await asyncio.sleep(0)
    return {"city": city}


async def clean(fetch):
    await asyncio.sleep(0)
    return fetch["city"].upper()


async def broken():
    await asyncio.sleep(0)
    raise ValueError("the API said no")
'''


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_an_async_tasks_value_is_what_its_coroutine_returns(tmp_path, executor):
    write_project(tmp_path, "tasks:\n"
                  "  fetch: {run: 'tasks:fetch', args: {city: berlin}, target: raw.json}\n"
                  "  clean: {run: 'tasks:clean', needs: [fetch], target: clean.json}\n", **{"tasks.py": TASKS})
    run = (targetrun if executor == "processes" else in_process)(tmp_path, "run", "-j", "2", "--executor", executor)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "never awaited" not in run.stderr
    assert json.loads((tmp_path / "raw.json").read_text()) == {"city": "berlin"}
    assert json.loads((tmp_path / "clean.json").read_text()) == "BERLIN"
    again = in_process(tmp_path, "run")
    assert again.returncode == 0 and "skipped  clean" in again.stdout, again.stdout + again.stderr


def test_an_async_tasks_exception_is_its_failure(tmp_path):
    write_project(tmp_path, "tasks:\n  broken: {run: 'tasks:broken', target: out.json}\n", **{"tasks.py": TASKS})
    run = in_process(tmp_path, "run")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "ValueError: the API said no" in run.stdout + run.stderr
    assert not (tmp_path / "out.json").exists()
