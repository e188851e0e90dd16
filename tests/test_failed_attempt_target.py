"""What a failed attempt wrote at its own target is removed, as make's .DELETE_ON_ERROR does.

targetrun writes a value to a hidden staging file and renames it onto the target only once
the task succeeded. But a task's own code can write the target path itself (a command
``printf half > o.txt; exit 1``, a function that opens its ``target`` and then raises).
Left there, that half-made file *is* the target to every later run: "skipped: target
exists", exit 0, and the pipeline goes on from half a value -- or, for a pickle, refuses
it as written by no run. So when an attempt fails, or is stopped, a target that changed
while it ran (made, replaced, rewritten) is removed, and the failure says so. A target
the attempt did not touch stays, with its record; a folder that was already there is left
alone (what changed in it cannot be told); nothing is removed on another storage than the
local disk (a task writing its own bucket key is not watched: one more request a task).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clirun import targetrun, write_project

STEPS = '''
import os

HERE = os.path.dirname(os.path.abspath(__file__))

def half():
    with open(os.path.join(HERE, "o", "p.pkl"), "wb") as f:
        f.write(b"half a pickle")
    raise RuntimeError("broke after writing")
'''


def _project(root: Path, tasks: str) -> Path:
    return write_project(root, "name: failed\ntasks:\n" + tasks, **{"steps.py": STEPS})


@pytest.mark.parametrize("executor", [[], ["-j", "2", "--executor", "threads"], ["-j", "2", "--executor", "processes"]],
                         ids=["inline", "threads", "processes"])
def test_a_failed_command_leaves_no_target_it_wrote_itself(tmp_path: Path, executor: list[str]) -> None:
    root = _project(tmp_path, '  a: {shell: "mkdir -p o && printf half > o/a.txt; exit 1", target: o/a.txt}\n')
    first = targetrun(root, "run", *executor)
    assert first.returncode == 1, first.stdout + first.stderr
    assert not (root / "o/a.txt").exists(), "a half-made target was left where the next run takes it as made"
    assert "removed o/a.txt" in first.stdout, first.stdout
    again = targetrun(root, "run", *executor)
    assert again.returncode == 1 and "skipped" not in again.stdout, again.stdout


def test_a_failed_python_task_leaves_no_target_it_wrote_itself(tmp_path: Path) -> None:
    root = _project(tmp_path, "  p: {run: steps:half, target: o/p.pkl}\n")
    (root / "o").mkdir()
    first = targetrun(root, "run")
    assert first.returncode == 1 and "RuntimeError: broke after writing" in first.stdout, first.stdout + first.stderr
    assert not (root / "o/p.pkl").exists()
    again = targetrun(root, "run")
    assert again.returncode == 1 and "RuntimeError" in again.stdout, again.stdout + again.stderr


def test_a_command_that_writes_its_target_instead_of_output_leaves_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path, '  a: {shell: "mkdir -p o && echo x > o/a.txt && true {output}", target: o/a.txt}\n')
    first = targetrun(root, "run")
    assert first.returncode == 1 and "did not write {output}" in first.stdout, first.stdout + first.stderr
    assert not (root / "o/a.txt").exists()


def test_a_forced_failure_keeps_a_target_that_was_there_and_says_its_record_no_longer_vouches(tmp_path: Path) -> None:
    root = _project(tmp_path, '  a: {shell: "echo a > {output}", target: o/a.txt}\n'
                              '  b: {shell: "echo b > {output}", target: o/b.txt}\n')
    made = targetrun(root, "run")
    assert made.returncode == 0, made.stdout + made.stderr
    (root / "Pipelinefile.yaml").write_text(
        "name: failed\ntasks:\n"
        '  a: {shell: "printf more >> o/a.txt; exit 3", target: o/a.txt}\n'
        '  b: {shell: "exit 3", target: o/b.txt}\n')
    forced = targetrun(root, "run", "--force-all", "--keep-going")
    assert forced.returncode == 1, forced.stdout + forced.stderr
    assert (root / "o/a.txt").read_text() == "a\nmore", "a file that was there (maybe appended to) was removed"
    assert "changed o/a.txt, which was there before" in forced.stdout, forced.stdout
    assert (root / "o/b.txt").read_text() == "b\n", "a target the failed attempt never touched was removed"
    verify = targetrun(root, "status", "--verify", "--json")
    states = {t["task"]: t["state"] for t in json.loads(verify.stdout)["tasks"]}
    assert states["a"].startswith("will run") and not states["b"].startswith("will run"), states


def test_a_folder_that_was_there_is_left_alone(tmp_path: Path) -> None:
    root = _project(tmp_path, '  a: {shell: "touch o/a/new; exit 1", target: o/a}\n')
    (root / "o/a").mkdir(parents=True)
    (root / "o/a/mine").write_text("keep")
    result = targetrun(root, "run", "--force", "a")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (root / "o/a/mine").read_text() == "keep"


def test_a_stop_while_the_command_writes_its_target_leaves_no_target(tmp_path: Path) -> None:
    root = _project(tmp_path, '  a: {shell: "printf half > o/a.txt; touch o/started; sleep 30", target: o/a.txt}\n')
    (root / "o").mkdir()
    process = subprocess.Popen([sys.executable, "-m", "targetrun", "run"], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (root / "o/started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, out + err
    assert not (root / "o/a.txt").exists(), "a stop left the half-made target for the next run to skip"
