"""A result on a real FTP server (pyftpdlib on 127.0.0.1, a free port, a user with a password).

The README promises that a URL naming a server (``ftp://user@host:port/data``) reaches that
server with the password from ``options:``, that a checkpoint is moved onto its target
there by a rename (nothing half-written is ever visible at the target, no staging file is
left), and that the password is in no message, ``--json`` or state row. Until now only the
URL's parts were checked against fsspec's filesystem (test_hosted_urls.py); here every
command talks to a server.
"""

from __future__ import annotations

import json
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from targetrun.errors import EXIT_BACKEND, EXIT_OK
from tests.clirun import in_process, write_project

with warnings.catch_warnings():  # pyftpdlib is built on asyncore, which Python 3.11 warns is deprecated
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

PASSWORD = "ftp-s3cret-pw"


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A real FTP server whose user ``alice`` (password PASSWORD) sees the folder returned."""
    home = tmp_path / "server"
    home.mkdir()
    authorizer = DummyAuthorizer()
    authorizer.add_user("alice", PASSWORD, str(home), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "auth_failed_timeout": 0.01})
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.address[1]
    done = threading.Event()

    def serve() -> None:  # closed in its own thread: closing it from another raced its poll (EBADF)
        try:
            while not done.is_set():
                server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        finally:
            server.close_all()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, home
    finally:
        done.set()
        thread.join(5)
        assert not thread.is_alive()


def _project(folder: Path, port: int) -> Path:
    return write_project(folder, (
        "results:\n"
        "  box:\n"
        f"    url: ftp://alice@127.0.0.1:{port}/data\n"
        "    options:\n"
        "      password: \"${FTP_PASSWORD}\"\n"
        "defaults:\n"
        "  result: box\n"
        "tasks:\n"
        "  a: {run: \"steps:make\", target: a.json}\n"
        "  b: {shell: \"cat {needs.a} > {output}\", needs: [a], target: sub/b.txt}\n"),
        **{"steps.py": "import os\n\ndef make():\n    return {'n': int(os.environ.get('N', '1'))}\n"})


def _files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def _no_secret(root: Path, *outputs: str) -> None:
    for text in outputs:
        assert PASSWORD not in text, text
    for path in (root / ".targetrun").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_targets_are_written_by_rename_on_the_server_and_skipped_after(tmp_path, ftp, monkeypatch):
    port, home = ftp
    monkeypatch.setenv("FTP_PASSWORD", PASSWORD)
    root = _project(tmp_path / "project", port)
    first = in_process(root, "run", "--json")
    assert first.returncode == EXIT_OK, first.stdout + first.stderr
    assert _files(home) == {"data/a.json": b'{"n": 1}\n', "data/sub/b.txt": b'{"n": 1}\n'}  # only the targets
    again = in_process(root, "run")
    assert again.returncode == EXIT_OK and "skipped  b" in again.stdout, again.stdout
    monkeypatch.setenv("N", "2")
    forced = in_process(root, "run", "--force-all")  # each target replaced by a rename onto it
    assert forced.returncode == EXIT_OK, forced.stdout + forced.stderr
    assert _files(home) == {"data/a.json": b'{"n": 2}\n', "data/sub/b.txt": b'{"n": 2}\n'}
    (home / "data" / "a.json").write_bytes(b'{"n": 9}\n')  # edited on the server, same size
    verify = in_process(root, "status", "--verify", "--json")
    document = json.loads(verify.stdout)
    assert document["would_run"] == ["a"], verify.stdout  # read back from the server and hashed: not what was written
    assert {row["task"]: row["reason"] for row in document["tasks"]}["a"] == "checkpoint corrupt", verify.stdout
    _no_secret(root, first.stdout, first.stderr, again.stdout, forced.stdout, verify.stdout, verify.stderr)


def test_a_wrong_password_or_no_server_is_exit_3_without_the_password(tmp_path, ftp, monkeypatch):
    port, _ = ftp
    root = _project(tmp_path / "project", port)
    monkeypatch.setenv("FTP_PASSWORD", "wrong-" + PASSWORD)
    refused = in_process(root, "status")
    assert refused.returncode == EXIT_BACKEND, refused.stdout + refused.stderr
    assert "530" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert "wrong-" + PASSWORD not in refused.stdout + refused.stderr
    with socket.socket() as bound:  # a port bound but not listening: held, so no other test takes it meanwhile
        bound.bind(("127.0.0.1", 0))
        closed = _project(tmp_path / "elsewhere", bound.getsockname()[1])
        gone = in_process(closed, "run")
    assert gone.returncode == EXIT_BACKEND, gone.stdout + gone.stderr
    assert "Connection refused" in gone.stdout + gone.stderr and "Traceback" not in gone.stdout + gone.stderr
