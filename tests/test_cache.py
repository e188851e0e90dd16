"""Output caching (cache_for, validators, cache_key) across separate processes.

Every run here is a real `python -m targetrun` process, so what is remembered lives in
the state store, not in memory. Time is injected with TARGETRUN_NOW, never slept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import STEPS

T0 = 1_800_000_000.0
HOUR = 3600.0

PIPELINE = """
name: cachetest
params:
  n: 1
  m: 1
tasks:
  up:
    run: steps:const
    args: {{value: "{{params.n}}", name: up}}
    target: "out/up-{{params.n}}.json"
  other:
    run: steps:const
    args: {{value: 5, name: other}}
    target: out/other.json
  cached:
    run: steps:add
    needs: {{a: up, b: other}}
    args: {{name: cached}}
    cache_for: 1h
    cache_validator: {validator}
"""


def run(folder: Path, *args: str, now: float = T0, store: str | None = None) -> dict:
    env = dict(os.environ, TARGETRUN_NOW=str(now))
    argv = [sys.executable, "-m", "targetrun", "run", "--json", "-f", str(folder / "Pipelinefile.yaml"), *args]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def calls(folder: Path) -> list[str]:
    log = folder / "calls.log"
    return log.read_text().split() if log.exists() else []


def make(folder: Path, validator: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(PIPELINE.format(validator=validator)))
    (folder / "steps.py").write_text(STEPS)
    return folder


# For each validator: did `cached` run again? (same inputs and params; later but unexpired;
# parameter n changed (which changes input a); parameter m changed (no input changes);
# back to n=1; after expiry)
SCENARIOS = {
    "duration_only": dict(same=False, n_changed=False, m_changed=False, back=False, expired=True),
    "all_inputs": dict(same=False, n_changed=True, m_changed=False, back=False, expired=True),
    "all_parameters": dict(same=False, n_changed=True, m_changed=True, back=False, expired=True),
    "{partial_inputs_only: [a]}": dict(same=False, n_changed=True, m_changed=False, back=False, expired=True),
    "{partial_inputs_only: [b]}": dict(same=False, n_changed=False, m_changed=False, back=False, expired=True),
    "{partial_parameters_only: [n]}": dict(same=False, n_changed=True, m_changed=False, back=False, expired=True),
    "{partial_parameters_only: [m]}": dict(same=False, n_changed=False, m_changed=True, back=False, expired=True),
    "never_use": dict(same=True, n_changed=True, m_changed=True, back=True, expired=True),
}


@pytest.mark.parametrize("validator", list(SCENARIOS), ids=lambda v: v.strip("'{}").replace(": ", "-"))
def test_validator_scenarios(tmp_path, validator):
    expected = SCENARIOS[validator]
    folder = make(tmp_path / "p", validator)

    def ran_cached(*args: str, now: float) -> bool:
        before = calls(folder).count("cached")
        doc = run(folder, *args, now=now)
        assert doc["exit_code"] == 0, doc
        state = {t["task"]: t for t in doc["tasks"]}["cached"]
        did_run = calls(folder).count("cached") > before
        assert (state["state"] == "succeeded") == did_run, state
        if not did_run:
            assert state["state"] == "cached" and state["reason"] == "cache hit" and "cached_until" in state
        return did_run

    assert ran_cached(now=T0) is True
    assert ran_cached(now=T0 + 600) is expected["same"]
    assert ran_cached("-p", "n=2", now=T0 + 700) is expected["n_changed"]
    assert ran_cached("-p", "m=2", now=T0 + 800) is expected["m_changed"]
    assert ran_cached(now=T0 + 900) is expected["back"]  # n=1, m=1 again: the first entry
    assert ran_cached(now=T0 + 10 * HOUR) is expected["expired"]


def test_dry_run_and_status_say_what_changed(tmp_path):
    folder = make(tmp_path / "p", "all_parameters")
    run(folder, now=T0)
    env = dict(os.environ, TARGETRUN_NOW=str(T0 + 60))
    status = subprocess.run([sys.executable, "-m", "targetrun", "status", "--json", "-p", "m=9", "-f",
                             str(folder / "Pipelinefile.yaml")], capture_output=True, text=True, env=env, timeout=60)
    rows = {t["task"]: t for t in json.loads(status.stdout)["tasks"]}
    assert rows["cached"]["state"] == "will run: parameters changed (parameter 'm' changed)"
    fresh = subprocess.run([sys.executable, "-m", "targetrun", "status", "--json", "-f", str(folder / "Pipelinefile.yaml")],
                           capture_output=True, text=True, env=env, timeout=60)
    cached = {t["task"]: t for t in json.loads(fresh.stdout)["tasks"]}["cached"]
    assert cached["state"].startswith("cache hit (until ") and cached["cached_until"] == "2027-01-15T09:00:00.000Z"


def test_input_recomputed_in_the_run_is_checked_after_it_runs(tmp_path):
    """An upstream without a target always runs; if its value comes out the same, the
    cached task is a hit (checked once the input is known, as Prefect checks at run time)."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "steps.py").write_text(STEPS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        tasks:
          src:
            run: steps:const
            args: {value: 3, name: src}
          cached:
            run: steps:inc
            needs: {x: src}
            args: {name: cached}
            cache_for: 1h
            cache_validator: all_inputs
    """))
    run(folder, now=T0)
    doc = run(folder, now=T0 + 60)
    states = {t["task"]: t["state"] for t in doc["tasks"]}
    assert states == {"src": "succeeded", "cached": "cached"}
    assert calls(folder) == ["src", "cached", "src"]


def test_target_with_cache_for_goes_stale(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "steps.py").write_text(STEPS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent("""
        params: {n: 1}
        tasks:
          t:
            run: steps:const
            args: {value: "{params.n}", name: t}
            target: out/t.json
            cache_for: 30m
            cache_validator: all_parameters
    """))
    run(folder, now=T0)
    assert {t["task"]: t["reason"] for t in run(folder, now=T0 + 60)["tasks"]} == {"t": "target exists"}
    assert {t["task"]: t["reason"] for t in run(folder, "-p", "n=2", now=T0 + 120)["tasks"]} == {"t": "parameters changed"}
    assert json.loads((folder / "out/t.json").read_text()) == 2
    assert {t["task"]: t["reason"] for t in run(folder, "-p", "n=2", now=T0 + 3 * HOUR)["tasks"]} == {"t": "cache expired"}
    assert calls(folder) == ["t", "t", "t"]


def test_target_written_by_something_else_uses_its_modification_time(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "steps.py").write_text(STEPS)
    (folder / "Pipelinefile.yaml").write_text("tasks:\n  t:\n    run: steps:const\n    target: out/t.json\n    cache_for: 1h\n")
    (folder / "out").mkdir()
    (folder / "out/t.json").write_text("7\n")
    os.utime(folder / "out/t.json", (T0 - 2 * HOUR, T0 - 2 * HOUR))
    assert {t["task"]: t["reason"] for t in run(folder, now=T0)["tasks"]} == {"t": "cache expired"}
    os.utime(folder / "out/t.json", (T0 - 60, T0 - 60))
    folder.joinpath(".targetrun/state.db").unlink()
    assert {t["task"]: t["reason"] for t in run(folder, now=T0)["tasks"]} == {"t": "target exists"}


def test_cache_key_is_private_to_pipeline_and_task_by_default(tmp_path):
    """Two pipelines whose tasks share a name never share a cache (Prefect 1 did)."""
    shared = """
    name: {name}
    cache: ../state.db
    tasks:
      t:
        run: steps:const
        args: {{value: {value}, name: {name}}}
        cache_for: 1h
    """
    for name, value in (("one", 1), ("two", 2)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "steps.py").write_text(STEPS)
        (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(shared.format(name=name, value=value)))
        doc = run(folder)
        assert [t["state"] for t in doc["tasks"]] == ["succeeded"]


def test_cache_key_without_cache_for_is_refused(project, steps):
    proj = project("tasks:\n  t:\n    run: steps:const\n    cache_key: k\n", steps=steps)
    result = proj.cli("validate")
    assert result.code == 2 and "`cache_key` needs `cache_for`" in result.err


def test_cache_commands(project, steps):
    proj = project("""
    name: cmds
    tasks:
      t:
        run: steps:const
        args: {name: t}
        target: out/t.json
        cache_for: 1h
        cache_key: "k-{task_name}"
      u:
        run: steps:const
        args: {name: u}
        cache_for: 1h
    """, steps=steps)
    assert proj.cli("run").code == 0
    listing = json.loads(proj.cli("cache", "list", "--json").out)
    assert sorted(e["key"] for e in listing) == ["cmds/u", "k-t"]
    assert "k-t" in proj.cli("cache", "list").out
    assert proj.cli("cache", "clear", "--task", "u").out.strip() == "cleared 1 cache entry"
    assert proj.cli("run").code == 0 and proj.counts() == {"t": 1, "u": 2}
    removed = proj.cli("invalidate", "t")
    assert "removed target" in removed.out and "1 cache entry under 'k-t'" in removed.out
    assert not proj.exists("out/t.json")
    assert proj.cli("run").code == 0 and proj.counts() == {"t": 2, "u": 2}  # u: cache hit
    assert proj.cli("cache", "clear").out.strip() == "cleared 2 cache entries"
    history = proj.cli("history")
    runs = history.out.splitlines()[1:]
    assert history.code == 0 and len(runs) == 3 and all(line.split()[3] == "succeeded" for line in runs)


def test_redis_store_shares_a_cache_key_between_two_pipelines(tmp_path, redis_url):
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "steps.py").write_text(STEPS)
        (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(f"""
            name: {name}
            cache: {redis_url}
            tasks:
              report:
                run: steps:const
                args: {{value: 42, name: {name}}}
                cache_for: 1h
                cache_key: weather-report
              use:
                run: steps:inc
                needs: {{x: report}}
                args: {{name: use-{name}}}
                target: out/use.json
        """))
    run(tmp_path / "first")
    doc = run(tmp_path / "second")
    states = {t["task"]: t["state"] for t in doc["tasks"]}
    assert states == {"report": "cached", "use": "succeeded"}
    assert calls(tmp_path / "second") == ["use-second"]  # the value came from the first pipeline's checkpoint
    assert json.loads((tmp_path / "second/out/use.json").read_text()) == 43


def test_unreachable_redis_is_exit_3_with_masked_url(project, steps):
    proj = project("cache: redis://:hunter2@127.0.0.1:1/0\ntasks:\n  t:\n    run: steps:const\n    target: t.json\n",
                   steps=steps)
    for command in ("run", "status"):
        result = proj.cli(command)
        assert result.code == 3, result.text
        assert "redis://:***@127.0.0.1:1/0" in result.err and "hunter2" not in result.text


def test_never_use_without_cache_for_remakes_the_target_on_every_run_as_status_says(tmp_path):
    """``cache_validator: never_use`` alone: the target is remade on every run. The run and
    `status` decide by the same rules (the run's late re-check once skipped it, while
    `status` said it would run)."""
    folder = tmp_path / "nu"
    folder.mkdir()
    (folder / "Pipelinefile.yaml").write_text(
        "tasks:\n  a: {shell: \"echo made >> log.txt; echo hi > {output}\", target: out/a.txt, cache_validator: never_use}\n")
    argv = [sys.executable, "-m", "targetrun"]
    for _ in range(2):
        ran = subprocess.run([*argv, "run", "--json", "-f", str(folder / "Pipelinefile.yaml")], capture_output=True,
                             text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        assert [t["state"] for t in json.loads(ran.stdout)["tasks"]] == ["succeeded"]
        status = subprocess.run([*argv, "status", "--json", "-f", str(folder / "Pipelinefile.yaml")],
                                capture_output=True, text=True, timeout=120)
        assert "cache_validator is never_use" in status.stdout
    assert (folder / "log.txt").read_text().split() == ["made", "made"]
