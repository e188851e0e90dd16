"""`kill -9` of a real `targetrun run` while a task is writing a large output leaves no
file at the target path, and the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SLOW_WRITER = '''
import os, time

class Slow:
    """Pickling this sleeps, so the checkpoint file is half written for a while."""
    def __reduce__(self):
        if os.environ.get("SLOW_PICKLE"):
            open(os.path.join(os.path.dirname(__file__), "pickling"), "a").close()
            time.sleep(0.05)
        return (str, ("s",))

def big():
    # 64 KiB chunks are flushed to the file as pickle frames fill, between slow objects
    return [item for _ in range(60) for item in (os.urandom(65536), Slow())]
'''


def _start(pipeline: Path, slow: bool) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SLOW_PICKLE="1" if slow else "")
    return subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(pipeline)],
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and p.stat().st_size > 0] if folder.exists() else []


def test_kill_during_python_checkpoint_write(tmp_path):
    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  big:\n    run: writer:big\n    target: out/big.pkl\n")
    (tmp_path / "writer.py").write_text(SLOW_WRITER)
    process = _start(tmp_path / "Pipelinefile.yaml", slow=True)
    _wait_for(lambda: bool(_partial_files(tmp_path / "out")))  # the temporary sibling is being written
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)
    assert not (tmp_path / "out" / "big.pkl").exists()
    rerun = _start(tmp_path / "Pipelinefile.yaml", slow=False)
    output = rerun.communicate(timeout=60)[0].decode()
    assert rerun.returncode == 0, output
    assert (tmp_path / "out" / "big.pkl").stat().st_size > 60 * 65536


def test_kill_during_shell_output_write(tmp_path):
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n  lines:\n    shell: \"for i in $(seq 200); do echo line $i; sleep 0.01; done > {output}\"\n"
        "    target: out/lines.txt\n"
    )
    process = _start(tmp_path / "Pipelinefile.yaml", slow=False)
    _wait_for(lambda: bool(_partial_files(tmp_path / "out")))
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)
    assert not (tmp_path / "out" / "lines.txt").exists()
    rerun = _start(tmp_path / "Pipelinefile.yaml", slow=False)
    output = rerun.communicate(timeout=60)[0].decode()
    assert rerun.returncode == 0, output
    assert (tmp_path / "out" / "lines.txt").read_text().splitlines()[-1] == "line 200"
