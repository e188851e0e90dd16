"""The command's own output on a full disk (``targetrun run > /dev/full``).

A write to standard output or error that fails for another reason than its reader going
away (ENOSPC, EIO on a file, EFBIG) does not stop the work -- as make, which builds on and
reports the write error at its end: what could not be written is dropped, the command's
work goes on, and it ends with one line saying which stream could not be written and exit
3 (an I/O backend could not take what the command gave it) when it would have exited 0;
a failure's own code is kept. Never a traceback, never "internal error".

Real ``targetrun`` processes whose descriptors are /dev/full (every write: ENOSPC).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from targetrun.errors import EXIT_BACKEND, EXIT_OK, EXIT_TASK_FAILED
from tests.clirun import targetrun, write_project

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")

PIPELINE = (
    "tasks:\n"
    "  a: {shell: \"echo a > {output}\", target: out/a.txt}\n"
    "  b: {shell: \"echo noise; echo noise >&2; cat {needs.a} > {output}\", needs: [a], target: out/b.txt}\n"
)


def _cli(root: Path, *args: str, stdout: str | None = None, stderr: str | None = None) -> subprocess.CompletedProcess[str]:
    """``targetrun ARGS`` in ``root`` with stdout and/or stderr on /dev/full (None: captured)."""
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, stdout=full if stdout == "full" else subprocess.PIPE,
                              stderr=full if stderr == "full" else subprocess.PIPE)


def _said_once(err: str, stream: str) -> None:
    assert "Traceback" not in err and "internal error" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if f"could not write to {stream}" in line]
    assert len(lines) == 1 and lines[0].startswith("targetrun: error: "), err
    assert "No space left on device" in lines[0], err


def test_a_run_whose_output_cannot_be_written_does_its_work_and_exits_3(tmp_path: Path) -> None:
    root = write_project(tmp_path, PIPELINE)
    ran = _cli(root, "run", stdout="full")
    assert ran.returncode == EXIT_BACKEND, ran.stderr
    _said_once(ran.stderr, "standard output")
    assert (root / "out" / "b.txt").read_text() == "a\n"
    status = targetrun(root, "status", "--check")  # every target made and recorded: nothing would run
    assert status.returncode == EXIT_OK, status.stdout + status.stderr
    for args in (["run"], ["run", "--json"], ["status"], ["status"], ["--help"]):  # (the second status: replayed)
        again = _cli(root, *args, stdout="full")
        assert again.returncode == EXIT_BACKEND, (args, again.stderr)
        _said_once(again.stderr, "standard output")


def test_a_failure_keeps_its_code_when_neither_stream_can_be_written(tmp_path: Path) -> None:
    root = write_project(tmp_path, PIPELINE.replace("cat {needs.a}", "exit 7; cat {needs.a}"))
    ran = _cli(root, "run", stdout="full")
    assert ran.returncode == EXIT_TASK_FAILED, ran.stderr
    _said_once(ran.stderr, "standard output")
    both = _cli(root, "run", stdout="full", stderr="full")
    assert both.returncode == EXIT_TASK_FAILED
    err_only = _cli(root, "run", stderr="full")
    assert err_only.returncode == EXIT_TASK_FAILED
    assert "Traceback" not in err_only.stdout and "failed" in err_only.stdout, err_only.stdout
    fixed = write_project(tmp_path, PIPELINE)
    assert _cli(fixed, "run", stdout="full", stderr="full").returncode == EXIT_BACKEND
    assert (root / "out" / "b.txt").read_text() == "a\n"
