"""Hostile sweep 5: each case reproduced with the real CLI in a subprocess, on real files,
before it was fixed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _targetrun(folder: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=folder, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def _write(folder: Path, pipelinefile: str, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pipelinefile.yaml").write_text(pipelinefile)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


# -- 1. a YAML key holding a line break cannot break the error's one line -----------------

@pytest.mark.parametrize("pipelinefile", [
    'tasks:\n  "a\\n::error::x":\n    shell: "echo > {output}"\n    target: o.txt\n',
    'params:\n  "a\\n::error::x": 1\ntasks:\n  a:\n    shell: "echo > {output}"\n    target: o.txt\n',
    'tasks:\n  a:\n    shell: "echo > {output}"\n    "tar\\n::error::get": o.txt\n',
])
def test_a_key_with_a_line_break_stays_on_the_errors_one_line(tmp_path: Path, pipelinefile: str) -> None:
    folder = _write(tmp_path / "p", pipelinefile)
    for command in (["validate"], ["run"]):
        done = _targetrun(folder, *command)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert "Pipelinefile.yaml, line " in lines[0] and "\\n::error::" in lines[0]
        assert "Traceback" not in done.stderr


# -- 2. a cache_for task made from a kept upstream records that upstream's fingerprint ----

KEPT_UPSTREAM = """\
tasks:
  a:
    run: tasks:a
    target: out/a.pkl
  b:
    run: tasks:b
    needs: [a]
    target: out/b.pkl
    cache_for: 1h
"""
KEPT_TASKS = "def a():\n    return {'a': 1}\n\ndef b(a):\n    return [a] * 10\n"


def test_a_cache_for_task_made_from_a_kept_target_is_not_stale_afterwards(tmp_path: Path) -> None:
    import json
    folder = _write(tmp_path / "p", KEPT_UPSTREAM, **{"tasks.py": KEPT_TASKS})
    assert _targetrun(folder, "run", "a").returncode == 0
    made = _targetrun(folder, "run")  # a is kept (target exists), b runs from it
    assert made.returncode == 0 and "skipped  a" in made.stdout, made.stdout + made.stderr
    status = _targetrun(folder, "status", "--json")
    assert status.returncode == 0, status.stderr
    b = next(t for t in json.loads(status.stdout)["tasks"] if t["task"] == "b")
    assert b["stale"] == [], b  # was: inputs changed -- a (its record said a was "pending")
    again = _targetrun(folder, "run", "--rebuild-stale")
    assert "ran" not in again.stdout, again.stdout
