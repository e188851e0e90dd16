"""`--verify` checks every existing checkpoint, also those a run never looks at.

A task upstream of a target that exists is not needed (Make's rule): nothing reads its
target, so nothing checked it -- `status --verify` and `run --verify` said all was well
while `out/clean.txt` no longer held the bytes its record names, though both options
promise to "check every existing checkpoint against its record". Now such a target is
checked too; one that differs is corrupt and is made again (what reads it is then judged
as usual: rebuilt into the recorded bytes, nothing below it is stale).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """\
name: ver
tasks:
  up: {shell: "echo 1 > {output}", target: out/up.txt}
  clean: {shell: "cat {needs.up} > {output}", target: out/clean.txt, needs: [up]}
  report: {shell: "cat {needs.clean} > {output}", target: out/report.txt, needs: [clean]}
  notes: {run: steps:notes, target: out/notes.pkl}
  summary: {shell: "echo done > {output}", target: out/summary.txt, needs: [notes, report]}
"""


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(root)]))
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def _project(root: Path) -> Path:
    (root / "Pipelinefile.yaml").write_text(PIPELINE)
    (root / "steps.py").write_text("def notes():\n    return {'n': 1}\n")
    assert _cli(root, "run").returncode == 0
    return root


def _states(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {task["task"]: task["state"] + ":" + (task.get("reason") or "") for task in json.loads(result.stdout)["tasks"]}


def test_a_target_nothing_reads_is_verified_too_and_made_again(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with open(root / "out/clean.txt", "a") as f:
        f.write("edited by hand\n")
    plain = _cli(root, "status", "--json")
    assert "corrupt" not in plain.stdout, plain.stdout  # without --verify nothing is read: the no-op stays cheap
    verified = _cli(root, "status", "--verify", "--json")
    assert verified.returncode == 0, verified.stderr
    states = _states(verified)
    assert "corrupt" in states["clean"], states
    assert all("corrupt" not in states[name] for name in ("up", "report", "notes", "summary")), states
    shown = _cli(root, "status", "--verify")
    assert "clean" in shown.stdout and "corrupt" in shown.stdout, shown.stdout
    run = _cli(root, "run", "--verify")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (root / "out/clean.txt").read_text() == "1\n"
    again = _cli(root, "status", "--verify", "--check")
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_pickle_nothing_reads_without_a_record_is_not_an_error_for_verify(tmp_path: Path) -> None:
    """No record to compare it with: nothing to say (it is not read, so not unpickled)."""
    root = _project(tmp_path)
    (root / "out/summary.txt").write_text("done\n")
    (root / ".targetrun/state.db").unlink()
    for suffix in ("-wal", "-shm"):
        (root / f".targetrun/state.db{suffix}").unlink(missing_ok=True)
    result = _cli(root, "status", "--verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "corrupt" not in result.stdout
