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


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_fifo_or_device_as_the_state_store_is_refused(tmp_path, plant):
    (tmp_path / "Pipelinefile.yaml").write_text(PLAIN)
    (tmp_path / ".targetrun").mkdir()
    _plant(tmp_path / ".targetrun" / "state.db", plant)
    for command in ("run", "status"):
        _refused(_cli(tmp_path, command), 3, "cannot be used")


# -- each reader, given what a race could swap in between a check and the open ----------
# None of them checks the path and then opens it: each judges what it opened. So a FIFO
# already there when it opens stands for one swapped in after any check.


def _in_time(call):
    """``call()``'s result or exception, from a thread: a hang fails the test."""
    found: list[object] = []

    def attempt() -> None:
        try:
            found.append(call())
        except BaseException as exc:  # noqa: B902 -- reported to the test
            found.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    assert found, "it hung"
    return found[0]


@pytest.fixture(params=["fifo", "dev-zero"])
def planted(request, tmp_path) -> str:
    path = tmp_path / "planted"
    _plant(path, request.param)
    return str(path)


def test_a_module_source_that_is_no_file_is_no_module(planted):
    from targetrun.staleness import _module_source

    assert _in_time(lambda: _module_source(planted)) is None


def test_an_output_that_is_no_file_is_digested_unread(planted):
    from targetrun.engine.work import _output_digest

    assert _in_time(lambda: _output_digest(planted)) == (0, "")


def test_a_file_digest_refuses_what_is_no_file(planted):
    from targetrun.engine.work import file_digest

    assert isinstance(_in_time(lambda: file_digest(planted)), NotRegularFile)


def test_the_replay_key_never_reads_a_stream(planted):
    from targetrun.replay import _contents

    assert isinstance(_in_time(lambda: _contents(planted)), NotRegularFile)


def test_a_spec_cache_that_is_no_file_is_a_miss(planted):
    from targetrun.pipelinefile import _read_cache

    assert _in_time(lambda: _read_cache(planted)) is None


def test_a_target_that_is_no_file_is_a_storage_error(planted):
    from targetrun.errors import StorageError
    from targetrun.storage.local import LocalStorage

    found = _in_time(lambda: LocalStorage().open_read(planted))
    assert isinstance(found, StorageError) and "not a regular file" in str(found), found


def test_an_output_digest_reads_what_a_command_wrote(tmp_path):
    """What ``{output}`` holds, as the record keeps it: a file's size and sha256 (read
    whole, past one chunk as well; through a link too), None when nothing is there, and
    ``(0, "")`` for a folder or a dangling link."""
    import hashlib

    from targetrun.engine import work

    def expected(data: bytes) -> tuple[int, str]:
        return len(data), hashlib.sha256(data).hexdigest()

    for size in (0, 2, work._CHUNK_OF_FILE, work._CHUNK_OF_FILE + 3, 2 * work._CHUNK_OF_FILE):
        data = os.urandom(size)
        (tmp_path / "out.txt").write_bytes(data)
        assert work._output_digest(str(tmp_path / "out.txt")) == expected(data), size
    (tmp_path / "link").symlink_to(tmp_path / "out.txt")
    assert work._output_digest(str(tmp_path / "link")) == expected(data)
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert work._output_digest(str(tmp_path / "dangling")) == (0, "")
    (tmp_path / "folder").mkdir()
    assert work._output_digest(str(tmp_path / "folder")) == (0, "")
    assert work._output_digest(str(tmp_path / "missing")) is None
    assert work._output_digest(str(tmp_path / "missing" / "below")) is None
