"""A task whose own code raises KeyboardInterrupt fails alone; a stop still stops the run.

The command handles its stop signals itself: a Ctrl-C reaches Python code as
:class:`targetrun.stopping.Stopped`, and a worker process ends at once. So a bare
KeyboardInterrupt out of a task's code -- its own ``raise``, a library's -- is the task's
failure, as ``sys.exit()`` in a task is (tests/test_hostile_fuzz_findings.py): exit 1,
FAILED with its reason, the other branches run on with --keep-going, the run recorded
failed. Before, it ended the whole run as if the user had pressed Ctrl-C: exit 130, every
other task cancelled, and nothing said which task did it.

Only a program that uses the API and handles no signals gets Python's own
KeyboardInterrupt for a Ctrl-C, in its main thread: there it still stops the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

STEPS = '''
import os

def interrupted():
    raise KeyboardInterrupt("the task's own")

def const(value=1):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log"), "a") as f:
        f.write("const\\n")
    return value
'''

PIPELINE = """\
name: kbd
tasks:
  a: {run: steps:interrupted, target: o/a.json}
  b: {run: steps:const, needs: {value: a}, target: o/b.json}
  c: {run: steps:const, target: o/c.json}
"""


def _project(root: Path) -> Path:
    (root / "steps.py").write_text(STEPS)
    (root / "Pipelinefile.yaml").write_text(PIPELINE)
    return root


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), str(root)]))
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("executor", [[], ["-j", "2", "--executor", "threads"], ["-j", "2", "--executor", "processes"]],
                         ids=["inline", "threads", "processes"])
def test_a_task_raising_keyboard_interrupt_fails_alone(tmp_path: Path, executor: list[str]) -> None:
    root = _project(tmp_path)
    result = _cli(root, "run", "--keep-going", *executor)
    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert "FAILED" in result.stdout and "KeyboardInterrupt" in result.stdout, text
    assert "cancelled" not in text and "Traceback" not in result.stderr, text
    assert (root / "o/c.json").exists() and not (root / "o/a.json").exists() and not (root / "o/b.json").exists()
    history = _cli(root, "history")
    assert history.returncode == 0 and "failed" in history.stdout and "interrupted" not in history.stdout, history


API_CALLER = textwrap.dedent("""\
    import sys
    from targetrun import api
    try:
        api.run(sys.argv[1])
    except KeyboardInterrupt:
        print("stopped")
    else:
        print("finished")
""")


def test_an_api_caller_that_handles_no_signals_is_still_stopped_by_a_keyboard_interrupt(tmp_path: Path) -> None:
    """Its Ctrl-C is Python's own KeyboardInterrupt, raised in the main thread -- where the
    inline executor runs a task: that cannot be told from the task's own, so it stops."""
    root = _project(tmp_path)
    (root / "caller.py").write_text(API_CALLER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), str(root)]))
    result = subprocess.run([sys.executable, str(root / "caller.py"), str(root / "Pipelinefile.yaml")], cwd=root,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "stopped", result.stdout + result.stderr
