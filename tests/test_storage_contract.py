"""Every storage backend passes the same contract (targetrun.testing.StorageContract)."""

from __future__ import annotations

import os
import uuid

import pytest

from targetrun.errors import StorageError
from targetrun.executors.base import InlineExecutor
from targetrun.executors.local import ProcessExecutor, ThreadExecutor
from targetrun.serializers.builtin import (
    BytesSerializer,
    JsonSerializer,
    PickleSerializer,
    TextOrJsonSerializer,
    TextSerializer,
)
from targetrun.storage.fsspec import FsspecStorage
from targetrun.storage.local import LocalStorage
from targetrun.testing import ExecutorContract, SerializerContract, StateStoreContract, StorageContract


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self):
        return LocalStorage()

    @pytest.fixture
    def base_url(self, tmp_path):
        return str(tmp_path / "store")

    @pytest.fixture
    def unreadable_url(self, tmp_path):
        loop = tmp_path / "loop"
        os.symlink(loop, loop)  # ELOOP: neither "exists" nor "not found"
        return str(loop / "x.txt")


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self):
        return FsspecStorage("memory")

    @pytest.fixture
    def base_url(self):
        return f"memory://contract-{uuid.uuid4().hex}"

    @pytest.fixture
    def unreadable_url(self):
        pytest.skip("an in-memory filesystem always knows")


def test_local_cannot_tell_stops_the_run_with_exit_3(project, steps):
    proj = project("tasks:\n  t:\n    run: steps:const\n    target: loop/t.json\n", steps=steps)
    os.symlink(proj.root / "loop", proj.root / "loop")
    for command in ("run", "status"):
        result = proj.cli(command)
        assert result.code == 3, result.text
        assert "cannot tell whether" in result.err and "never treats this as missing" in result.err
    assert proj.counts() == {}


def test_storage_error_is_never_missing():
    with pytest.raises(StorageError):
        LocalStorage().exists(_eloop_path())


def _eloop_path() -> str:
    import tempfile

    folder = tempfile.mkdtemp()
    loop = os.path.join(folder, "l")
    os.symlink(loop, loop)
    return os.path.join(loop, "f")


SERIALIZER_CASES = {
    "pickle": (PickleSerializer(), {"a": [1, 2.5, None]}, lambda: None),
    "json": (JsonSerializer(), {"a": [1, 2.5, None], "u": "ü"}, {1, 2}),
    "text": (TextSerializer(), "héllo\nworld", 42),
    "bytes": (BytesSerializer(), b"\x00\xff", 3.5),
    "text-or-json, an int": (TextOrJsonSerializer(), 99, {1, 2}),
    "text-or-json, a str": (TextOrJsonSerializer(), "99", b"bytes"),
}


class TestSerializers(SerializerContract):
    @pytest.fixture(params=list(SERIALIZER_CASES))
    def case(self, request):
        return SERIALIZER_CASES[request.param]

    @pytest.fixture
    def serializer(self, case):
        return case[0]

    @pytest.fixture
    def sample(self, case):
        return case[1]

    @pytest.fixture
    def unrepresentable(self, case):
        return case[2]


class TestInlineExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self):
        return InlineExecutor()


class TestThreadExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self):
        pool = ThreadExecutor(2)
        yield pool
        pool.shutdown()


@pytest.fixture(scope="module")
def process_pool():
    # One pool for the whole class: starting worker processes is the slow part. It is a
    # module-level fixture because a class-scoped fixture written as an instance method is
    # deprecated (an error under pytest 9.2 with filterwarnings=error).
    pool = ProcessExecutor(2)
    yield pool
    pool.shutdown()


class TestProcessExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, process_pool):
        return process_pool


class TestInlineStorageOnSqlite(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path):
        from targetrun.storage.inline import InlineStorage
        from targetrun.store.sqlite import SqliteStore

        store = SqliteStore(str(tmp_path / "state.db"))
        yield InlineStorage(store, "sqlite", str(tmp_path / "state.db"))
        store.close()

    @pytest.fixture
    def base_url(self):
        return "inline://contract"

    @pytest.fixture
    def unreadable_url(self):
        pytest.skip("covered by the store's own errors (exit 3)")


class TestInlineStorageOnRedis(TestInlineStorageOnSqlite):
    @pytest.fixture
    def storage(self, redis_url):
        from targetrun.storage.inline import InlineStorage
        from targetrun.store.redis import RedisStore

        store = RedisStore(redis_url)
        yield InlineStorage(store, "redis", redis_url)
        store.close()


class TestDaskExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, dask_cluster):
        from distributed import Client

        from targetrun.executors.dask import DaskExecutor

        client = Client(dask_cluster)
        yield DaskExecutor(client=client)
        client.close()


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, s3):
        return FsspecStorage("s3")

    @pytest.fixture
    def base_url(self, s3):
        return f"s3://test-bucket/contract-{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def unreadable_url(self, s3):
        return "s3://no-such-bucket/x.txt"  # a missing bucket: cannot tell, never "missing"


class TestGcsStorage(StorageContract):
    @pytest.fixture
    def storage(self, gcs):
        return FsspecStorage("gs")

    @pytest.fixture
    def base_url(self, gcs):
        return f"gs://test-bucket/contract-{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def unreadable_url(self, gcs):
        return "gs://no-such-bucket/x.txt"


class TestSqliteStateStore(StateStoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        from targetrun.store.sqlite import SqliteStore

        opened = SqliteStore(str(tmp_path / "state.db"))
        yield opened
        opened.close()


class TestRedisStateStore(StateStoreContract):
    @pytest.fixture
    def store(self, redis_url):
        from targetrun.store.redis import RedisStore

        opened = RedisStore(redis_url)
        yield opened
        opened.close()
