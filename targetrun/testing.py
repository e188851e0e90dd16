"""Contract test suites and fakes, shipped for plugin authors.

A storage backend passes :class:`StorageContract` by subclassing it in a pytest test
class and providing a ``storage`` fixture plus a ``base_url`` fixture (a folder or prefix
the test may write under). The same holds for serializers and executors::

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self): return MyStorage()
        @pytest.fixture
        def base_url(self, tmp_path): return f"my://{tmp_path.name}"

pytest is imported lazily, so importing this module costs nothing at run time.
"""

from __future__ import annotations

import operator
from concurrent.futures import Future
from typing import Any

from targetrun.errors import StorageError
from targetrun.events import RecordingReporter
from targetrun.executors.base import Executor
from targetrun.serializers.base import SerializationError, Serializer
from targetrun.storage.base import Storage

__all__ = ["FakeClock", "RecordingReporter", "StorageContract", "SerializerContract", "ExecutorContract", "same_value"]


class FakeClock:
    """A clock whose time moves only when told (or when something sleeps)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.time = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    def monotonic(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += seconds

    def advance(self, seconds: float) -> None:
        self.time += seconds


class StorageContract:
    """What every Storage must do. Fixtures: ``storage``, ``base_url``."""

    def test_missing_is_false(self, storage: Storage, base_url: str) -> None:
        assert storage.exists(f"{base_url}/nope.txt") is False
        assert storage.info(f"{base_url}/nope.txt") is None

    def test_atomic_write_then_read(self, storage: Storage, base_url: str) -> None:
        url = f"{base_url}/sub/dir/a.bin"
        with storage.atomic_write(url) as f:
            f.write(b"hello ")
            f.write(b"world")
        assert storage.exists(url)
        with storage.open_read(url) as f:
            assert f.read() == b"hello world"
        stat = storage.info(url)
        assert stat is not None and stat.size == 11

    def test_failed_write_leaves_nothing(self, storage: Storage, base_url: str) -> None:
        url = f"{base_url}/failed.bin"

        class Boom(Exception):
            pass

        try:
            with storage.atomic_write(url) as f:
                f.write(b"partial")
                raise Boom
        except Boom:
            pass
        assert not storage.exists(url)
        assert [k for k in (storage.listing(storage.parent(url)) or ()) if "failed" in k] == []

    def test_overwrite_replaces(self, storage: Storage, base_url: str) -> None:
        url = f"{base_url}/twice.txt"
        for payload in (b"one", b"two!"):
            with storage.atomic_write(url) as f:
                f.write(payload)
        with storage.open_read(url) as f:
            assert f.read() == b"two!"

    def test_exists_many_matches_exists(self, storage: Storage, base_url: str) -> None:
        present = [f"{base_url}/many/p{i}.txt" for i in range(4)]
        for url in present:
            with storage.atomic_write(url) as f:
                f.write(b"x")
        absent = [f"{base_url}/many/a{i}.txt" for i in range(4)] + [f"{base_url}/nofolder/x.txt"]
        answers = storage.exists_many(present + absent)
        assert answers == {**dict.fromkeys(present, True), **dict.fromkeys(absent, False)}

    def test_staged_commits_only_on_success(self, storage: Storage, base_url: str) -> None:
        url = f"{base_url}/staged.txt"
        with storage.staged(url) as path:
            with open(path, "wb") as f:
                f.write(b"staged")
            assert not storage.exists(url)
        with storage.open_read(url) as f:
            assert f.read() == b"staged"
        try:
            with storage.staged(f"{base_url}/staged-fail.txt") as path:
                with open(path, "wb") as f:
                    f.write(b"x")
                raise KeyError("boom")
        except KeyError:
            pass
        assert not storage.exists(f"{base_url}/staged-fail.txt")

    def test_fetched_gives_a_local_copy(self, storage: Storage, base_url: str) -> None:
        url = f"{base_url}/fetch-me.txt"
        with storage.atomic_write(url) as f:
            f.write(b"content")
        with storage.fetched(url) as path:
            with open(path, "rb") as f:
                assert f.read() == b"content"

    def test_remove(self, storage: Storage, base_url: str) -> None:
        url = f"{base_url}/gone.txt"
        with storage.atomic_write(url) as f:
            f.write(b"x")
        storage.remove(url)
        assert not storage.exists(url)
        storage.remove(url)  # removing a missing one is fine

    def test_open_read_missing_raises_file_not_found(self, storage: Storage, base_url: str) -> None:
        import pytest

        with pytest.raises(FileNotFoundError):
            storage.open_read(f"{base_url}/absent.bin")

    def test_cannot_tell_is_an_error_not_missing(self, storage: Storage, base_url: str, unreadable_url: str) -> None:
        """``unreadable_url`` fixture: a URL whose existence this backend cannot determine."""
        import pytest

        with pytest.raises(StorageError):
            storage.exists(unreadable_url)
        with pytest.raises(StorageError):
            storage.exists_many([unreadable_url] + [f"{unreadable_url}{i}" for i in range(3)])


class SerializerContract:
    """What every Serializer must do. Fixtures: ``serializer``, ``sample`` (a value it must
    round-trip) and ``unrepresentable`` (a value it must refuse with SerializationError).

    Values are compared with :func:`same_value` (DataFrames and arrays by content); a
    serializer whose values compare otherwise overrides ``assert_same``.
    """

    def assert_same(self, loaded: Any, sample: Any) -> None:
        assert same_value(loaded, sample), f"read back {loaded!r}, wrote {sample!r}"

    def test_round_trip(self, serializer: Serializer, sample: Any, tmp_path: Any) -> None:
        from targetrun.serializers.base import serializer as by_ref

        path = tmp_path / "value"
        # What the checkpoint records (for_value) is a reference that reads it back.
        written_as = serializer.for_value(sample)
        with open(path, "wb") as f:
            serializer.dump(sample, f)
        with open(path, "rb") as f:
            self.assert_same(by_ref(written_as).load(f), sample)

    def test_the_same_value_writes_the_same_bytes(self, serializer: Serializer, sample: Any, tmp_path: Any) -> None:
        """Fingerprints and staleness compare checkpoints by their bytes' sha256."""
        for name in ("one", "two"):
            with open(tmp_path / name, "wb") as f:
                serializer.dump(sample, f)
        assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()

    def test_unrepresentable_value_raises_serialization_error(self, serializer: Serializer, unrepresentable: Any,
                                                              tmp_path: Any) -> None:
        import pytest

        with open(tmp_path / "bad", "wb") as f, pytest.raises(SerializationError):
            serializer.dump(unrepresentable, f)
        if not serializer.accepts(unrepresentable):  # refused before writing, naming the formats that fit
            with pytest.raises(SerializationError):
                serializer.for_value(unrepresentable)

    def test_declares_what_the_registry_needs(self, serializer: Serializer, sample: Any) -> None:
        from targetrun.serializers.base import SERIALIZERS, Ref

        assert serializer.name and " " not in serializer.name and "+" not in serializer.name
        assert serializer.name in SERIALIZERS, f"{serializer.name!r} is not registered"
        assert isinstance(serializer.executes_code, bool)
        for suffix in (*serializer.suffixes, *serializer.output_suffixes):
            assert suffix.startswith(".") and suffix == suffix.lower(), suffix
        assert serializer.accepts(sample)
        assert Ref.parse(serializer.for_value(sample)).name in SERIALIZERS


def same_value(a: Any, b: Any) -> bool:
    """Equality that also compares DataFrames, Arrow tables and numpy arrays by content
    (and kind: a polars DataFrame never equals a pandas one)."""
    if type(a) is not type(b):
        return False
    module = type(a).__module__.split(".", 1)[0]
    if module == "pandas":
        return bool(a.equals(b)) and list(a.dtypes) == list(b.dtypes) and a.index.equals(b.index)
    if module in ("polars", "pyarrow"):
        return bool(a.equals(b))
    if module == "numpy":
        import numpy

        return a.dtype == b.dtype and bool(numpy.array_equal(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return bool(a == b)


class ExecutorContract:
    """Fixture: ``executor``."""

    def test_submit_returns_future_with_result(self, executor: Executor) -> None:
        future: Future[Any] = executor.submit(operator.add, 2, 3)
        assert future.result(timeout=30) == 5

    def test_exception_is_carried_by_the_future(self, executor: Executor) -> None:
        import pytest

        future = executor.submit(operator.truediv, 1, 0)
        with pytest.raises(ZeroDivisionError):
            future.result(timeout=30)

    def test_many_submissions(self, executor: Executor) -> None:
        futures = [executor.submit(operator.mul, i, i) for i in range(50)]
        assert [f.result(timeout=60) for f in futures] == [i * i for i in range(50)]
