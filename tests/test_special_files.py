"""A FIFO, a device or a socket where targetrun expects a regular file is never read:
opening a FIFO for reading waits for a writer forever and ``/dev/zero`` never ends. Each
place is tried with the real command in its own process and a timeout, so a hang fails
the test instead of stalling the suite. Targets, deps, the spec cache and certificates
are covered in test_hostile_review.py and test_replay_review.py; this file covers the
rest, and the helper every local read goes through (targetrun/regularfile.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from targetrun.regularfile import NotRegularFile, open_regular

TIMEOUT = 20


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=root, capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def _plant(path: Path, plant: str) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    if plant == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)


def _refused(done: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    text = done.stdout + done.stderr
    assert done.returncode == code, text
    assert words in text and "Traceback" not in text, text


# -- the helper ---------------------------------------------------------------------------


def _opened_in_time(path: str, **options: bool) -> BaseException | bytes:
    """What open_regular did with ``path``, from a thread: a hang fails, not stalls."""
    found: list[BaseException | bytes] = []

    def attempt() -> None:
        try:
            with open_regular(path, **options) as f:
                found.append(f.read(10))
        except BaseException as exc:  # noqa: B902 -- reported to the test
            found.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    assert found, f"open_regular({path!r}) hung"
    return found[0]


def test_a_regular_file_is_opened_blocking(tmp_path):
    (tmp_path / "f").write_bytes(b"hello")
    with open_regular(str(tmp_path / "f")) as f:
        assert os.get_blocking(f.fileno()) and f.read() == b"hello"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "socket", "folder"])
def test_anything_but_a_regular_file_is_refused_unread(tmp_path, kind):
    path = tmp_path / "x"
    if kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    elif kind == "folder":
        path.mkdir()
    else:
        _plant(path, kind)
    found = _opened_in_time(str(path))
    if kind == "socket":  # a socket cannot even be opened: ENXIO, an OSError as any
        server.close()
        assert isinstance(found, OSError), found
        return
    assert isinstance(found, NotRegularFile), found
    words = {"fifo": "a FIFO", "dev-zero": "a device", "folder": "a folder"}[kind]
    assert found.strerror == f"{words}, not a regular file" and found.filename == str(path)


def test_a_pipe_is_read_only_when_streams_are(tmp_path):
    """``-f <(generate)``: a pipe whose writer is there is a stream the user named."""
    read, write = os.pipe()
    os.write(write, b"name: x\n")
    os.close(write)
    try:
        assert _opened_in_time(f"/dev/fd/{read}", streams_too=True) == b"name: x\n"
        assert isinstance(_opened_in_time(f"/dev/fd/{read}"), NotRegularFile)
    finally:
        os.close(read)


def test_a_named_fifo_without_a_writer_ends_at_once_even_when_streams_are_read(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert _opened_in_time(str(tmp_path / "fifo"), streams_too=True) == b""


# -- the places -----------------------------------------------------------------------------

PLAIN = """
name: plain
tasks:
  a: {shell: 'echo a > {output}', target: out/a.txt}
"""


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
@pytest.mark.parametrize("command", ["run", "status"])
def test_a_fifo_or_device_as_the_pipelinefile_is_refused(tmp_path, plant, command):
    _plant(tmp_path / "Pipelinefile.yaml", plant)
    _refused(_cli(tmp_path, command), 2, "no Pipelinefile.yaml")  # looked for: only a file is one
    done = _cli(tmp_path, command, "-f", "Pipelinefile.yaml")  # named: it may be a stream (-f <(generate))
    if plant == "fifo":  # no writer: it ends before its first byte
        _refused(done, 2, "nothing writes to")
    else:  # read up to the limit, no further
        _refused(done, 2, "more than")


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_device_as_the_params_file_is_refused(tmp_path, plant):
    (tmp_path / "Pipelinefile.yaml").write_text(PLAIN)
    _plant(tmp_path / "params.yaml", plant)
    for command in ("run", "status"):
        done = _cli(tmp_path, command, "--params-file", "params.yaml")
        _refused(done, 2, "nothing writes to" if plant == "fifo" else "more than")


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_device_in_place_of_a_task_log_is_not_read(tmp_path, plant):
    (tmp_path / "Pipelinefile.yaml").write_text("""
name: logs
tasks:
  a: {shell: 'echo said; false', target: out/a.txt}
""")
    assert _cli(tmp_path, "run").returncode == 1
    shown = _cli(tmp_path, "logs", "a").stdout  # "# .targetrun/logs/RUN_ID/a.log..."
    log = tmp_path / shown.split()[1].rstrip(":")
    log.parent.mkdir(parents=True, exist_ok=True)
    _plant(log, plant)
    _refused(_cli(tmp_path, "logs", "a"), 2, "not a regular file")
    done = _cli(tmp_path, "status")
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
