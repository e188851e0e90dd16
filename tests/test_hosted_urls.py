"""A result URL that names its server (ftp://user:pw@host:port/path, sftp://, hdfs://):
the host, port and user reach the filesystem -- fsspec takes them from the URL, not from
the path -- and its password never reaches any output.

The filesystem here is fsspec's memory filesystem, one store per server, taking its
server from the URL as fsspec's FTP filesystem does (``_get_kwargs_from_urls``); the
last test gives fsspec's own FTP filesystem a server that refuses the connection."""

from __future__ import annotations

import socket
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractFileSystem
from fsspec.utils import infer_storage_options

from targetrun.errors import StorageError
from targetrun.storage.fsspec import FsspecStorage

SERVERS: dict[tuple[str, int], dict[str, Any]] = {}


class ServerMemory(MemoryFileSystem):  # type: ignore[misc]
    """Memory files kept per server: a filesystem made without one cannot tell where to go.
    As fsspec's FTP and SFTP filesystems, it copies nothing on the server (``cp_file``):
    it renames (``mv``)."""

    protocol = "servermem"
    root_marker = "/"
    cp_file = AbstractFileSystem.cp_file  # NotImplementedError

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:  # one rename, as FTPFileSystem.mv
        self.store[self._strip_protocol(path2)] = self.store.pop(self._strip_protocol(path1))

    def __init__(self, host: str, port: int = 21, username: str | None = None, password: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = (host, port)
        self.store = SERVERS.setdefault(self.server, {})
        self.pseudo_dirs = [""]
        self.login = (username, password)

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return "/" + infer_storage_options(path)["path"].lstrip("/") if "://" in path else super()._strip_protocol(path)

    @staticmethod
    def _get_kwargs_from_urls(urlpath: str) -> dict[str, Any]:
        given = infer_storage_options(urlpath)
        return {key: given[key] for key in ("host", "port", "username", "password") if key in given}


@pytest.fixture
def servermem():
    fsspec.register_implementation("servermem", ServerMemory, clobber=True)
    SERVERS.clear()
    yield SERVERS
    SERVERS.clear()


PIPELINE = """\
tasks:
  one: {shell: 'echo one > {output}', target: 'servermem://alice:s3cret@one.example:2121/out/a.txt'}
  two: {shell: 'echo two > {output}', target: 'servermem://alice:s3cret@two.example/out/a.txt'}
  both: {shell: 'cat {needs.one} {needs.two} > {output}', needs: [one, two], target: out/both.txt}
"""


def test_each_target_reaches_the_server_its_url_names(project, servermem):
    """The storage was built from the protocol alone: every ftp:// target went to no
    server at all (fsspec's FTP filesystem needs a host: "cannot open ftp:// storage"),
    and two servers' /out/a.txt would have been one file. Each URL's server gets its
    file, moved onto its target by a rename (FTP copies nothing on the server: committing
    a checkpoint failed there next); a second run finds both; the password is in no output."""
    proj = project(PIPELINE)
    first = proj.cli("run")
    assert first.code == 0, first.out + first.err
    assert servermem[("one.example", 2121)]["/out/a.txt"].getvalue() == b"one\n"
    assert servermem[("two.example", 21)]["/out/a.txt"].getvalue() == b"two\n"
    assert proj.read("out/both.txt") == "one\ntwo\n"
    again = proj.cli("run")
    status = proj.cli("status")
    assert again.code == 0 and again.out.endswith("1 skipped in " + again.out.rsplit("1 skipped in ", 1)[-1]), again.out
    assert status.code == 0 and status.out.count("target exists") == 3, status.out
    del servermem[("two.example", 21)]["/out/a.txt"]  # gone from one server only
    dry = proj.cli("run", "--dry-run", "two", "one")
    assert [line.split()[-3] for line in dry.out.splitlines() if "target missing" in line] == ["two"], dry.out
    as_json, graph = proj.cli("status", "--json"), proj.cli("graph")
    for said in (first, again, status, dry, as_json, graph):
        assert "s3cret" not in said.out + said.err


def test_the_server_is_part_of_a_listings_names():
    """A listing of one server never answers for the same path on another."""
    storage = FsspecStorage("servermem")
    fsspec.register_implementation("servermem", ServerMemory, clobber=True)
    assert storage.key("servermem://bob:pw@h.example:2121/out/a.txt") == "//bob@h.example:2121/out/a.txt"
    assert storage.key("servermem://h.example/out/a.txt") != storage.key("servermem://g.example/out/a.txt")


def test_fsspecs_ftp_filesystem_is_given_the_urls_host_and_port():
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = FsspecStorage("ftp")
    url = f"ftp://alice:s3cret@127.0.0.1:{port}/out/a.json"
    with pytest.raises(StorageError) as caught:
        storage.info(url)
    said = caught.value.format()
    assert "Connection refused" in said and "s3cret" not in said, said  # it was: __init__() missing 'host'
