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

import json
import os
import subprocess
import sys
import time
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


def _said_once(err: str, stream: str, error: str = "No space left on device") -> None:
    assert "Traceback" not in err and "internal error" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if f"could not write to {stream}" in line]
    assert len(lines) == 1 and lines[0].startswith("targetrun: error: "), err
    assert error in lines[0], err


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


MANY = "tasks:\n" + "".join(f"  task_with_a_long_name_{i:04}: {{shell: \"echo {i} > {{output}}\", "
                            f"target: out/a_long_folder_name/{i:04}.txt}}\n" for i in range(400))


def _limited_to(size: int):
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_a_write_the_disk_cuts_short_is_not_taken_for_a_whole_one(tmp_path: Path) -> None:
    """A large write that the disk takes only in part (a full disk, `ulimit -f`) returns a
    short count from Python's buffered layer, which its text layer drops: the JSON ended at
    byte 65,536, exit 0, nothing said."""
    root = write_project(tmp_path, MANY)
    assert targetrun(root, "run", "-q").returncode == EXIT_OK
    with open(tmp_path / "status.json", "w") as file:
        cut = subprocess.run([sys.executable, "-m", "targetrun", "status", "--json"], cwd=root, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, stdout=file, stderr=subprocess.PIPE,
                             preexec_fn=_limited_to(65536))  # (the store's own files need 32 KiB)
    assert (tmp_path / "status.json").stat().st_size == 65536
    assert cut.returncode == EXIT_BACKEND, cut.stderr
    _said_once(cut.stderr, "standard output", "File too large")


def test_a_non_blocking_pipe_read_late_gets_everything(tmp_path: Path) -> None:
    """stdout a pipe in non-blocking mode (a parent that set O_NONBLOCK) whose reader is
    slow: a write the pipe cannot take now waits for room, as with a blocking pipe."""
    root = write_project(tmp_path, MANY)
    assert targetrun(root, "run", "-q").returncode == EXIT_OK
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    status = subprocess.Popen([sys.executable, "-m", "targetrun", "status", "--json"], cwd=root, text=True,
                              stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        time.sleep(1.0)  # the ~100 KB document fills the 64 KiB pipe meanwhile
        document = reader.read()
    err = status.communicate(timeout=60)[1]
    assert status.returncode == EXIT_OK, err
    assert len(json.loads(document)["tasks"]) == 400
