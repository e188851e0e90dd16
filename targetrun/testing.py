"""Contract test suites and fakes, shipped for plugin authors.

A storage backend passes :class:`StorageContract` by subclassing it in a pytest test
class and providing a ``storage`` fixture plus a ``base_url`` fixture (a folder or prefix
the test may write under). The same holds for serializers, executors and state stores
(:class:`StateStoreContract`, fixture ``store``)::

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
from targetrun.model import CacheEntry, Checkpoint, TaskState
from targetrun.storage.base import Storage
from targetrun.store.base import LastRun, PendingWrite, RunRecord, RunStatus, StateStore, TaskRecord

__all__ = ["FakeClock", "RecordingReporter", "StorageContract", "SerializerContract", "ExecutorContract",
           "StateStoreContract", "same_value"]


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
        from targetrun.serializers.make import serializer as by_ref

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


class StateStoreContract:
    """What every state store must do (SQLite, Redis, a plugin's). Fixture: ``store``, a
    new, empty store; the contract closes nothing it did not open."""

    PIPELINE = "contract"

    def _checkpoint(self, task: str, location: str, run_id: str, written_at: float = 1_800_000_000.0) -> Checkpoint:
        return Checkpoint(task=task, location=location, serializer="json", size=3, content_hash="ab" * 32,
                          run_id=run_id, written_at=written_at, inputs={"x": "1"}, params={"p": "2"})

    def _record(self, task: str, run_id: str, state: TaskState = TaskState.SUCCEEDED, error: str | None = None,
                finished: float = 1_800_000_001.0) -> TaskRecord:
        return TaskRecord(run_id=run_id, pipeline=self.PIPELINE, task=task, state=state, finished=finished,
                          duration=1.0, attempts=1, error=error, started=finished - 1.0, worker="host:1")

    def test_runs_are_recorded_and_listed_newest_first(self, store: StateStore) -> None:
        for index, run_id in enumerate(["r1", "r2", "r3"]):
            store.begin_run(RunRecord(run_id, self.PIPELINE, started=1_800_000_000.0 + index, requested=("a",)))
        store.finish_run("r2", RunStatus.FAILED, 1_800_000_010.0, "1 failed")
        assert [r.run_id for r in store.runs(self.PIPELINE)] == ["r3", "r2", "r1"]
        assert [r.run_id for r in store.runs(self.PIPELINE, limit=1)] == ["r3"]
        finished = store.run("r2")
        assert finished is not None and finished.status is RunStatus.FAILED and finished.counts == "1 failed"
        assert finished.finished == 1_800_000_010.0 and finished.requested == ("a",)
        assert store.run("nope") is None and store.runs("another pipeline") == []

    def test_a_task_record_keeps_its_checkpoint(self, store: StateStore) -> None:
        store.begin_run(RunRecord("r1", self.PIPELINE, started=1_800_000_000.0))
        checkpoint = self._checkpoint("a", "out/a.json", "r1")
        store.record_task(self._record("a", "r1"), checkpoint)
        assert store.checkpoint("out/a.json") == checkpoint
        assert store.checkpoints(["out/a.json", "out/none.json"]) == {"out/a.json": checkpoint}
        assert store.run_checkpoints("r1") == {"a": checkpoint}
        last = store.last_task_records(self.PIPELINE)["a"]
        assert last.state is TaskState.SUCCEEDED and last.run_id == "r1"
        assert store.task_checkpoints(self.PIPELINE, "a") == [checkpoint]
        store.forget_checkpoint("out/a.json")
        assert store.checkpoint("out/a.json") is None

    def test_the_latest_task_record_wins(self, store: StateStore) -> None:
        for run_id, state, finished in [("r1", TaskState.FAILED, 1_800_000_001.0),
                                        ("r2", TaskState.SUCCEEDED, 1_800_000_002.0)]:
            store.begin_run(RunRecord(run_id, self.PIPELINE, started=finished - 1))
            store.record_task(self._record("a", run_id, state, finished=finished), None)
        assert store.last_task_records(self.PIPELINE)["a"].run_id == "r2"
        assert set(store.task_records("r1", self.PIPELINE)) <= {"a"}
        # what status shows of it: the same record, less what it does not show
        assert store.last_runs(self.PIPELINE) == {"a": LastRun("r2", TaskState.SUCCEEDED, 1_800_000_002.0, None)}
        assert store.last_runs("another pipeline") == {}

    def test_cache_entries(self, store: StateStore) -> None:
        store.begin_run(RunRecord("r1", self.PIPELINE, started=1_800_000_000.0))
        entry = CacheEntry("k1", "v1", self.PIPELINE, "a", self._checkpoint("a", "out/a.json", "r1"), 1_800_003_600.0)
        store.record_task(self._record("a", "r1"), entry.checkpoint, entry)
        assert store.cache_entries(["k1", "k2"]).get("k1") == [entry]
        assert not store.cache_entries(["k2"]).get("k2")
        assert store.list_cache(self.PIPELINE) == [entry] and store.list_cache("another pipeline") == []
        assert store.delete_cache(expired_before=1_800_000_000.0) == 0  # not expired yet
        assert store.delete_cache(key="k1") == 1
        assert store.list_cache(self.PIPELINE) == []

    def test_blobs(self, store: StateStore) -> None:
        assert store.get_blob("inline://a") is None
        store.put_blob("inline://a", b"\x00bytes")
        assert store.get_blob("inline://a") == b"\x00bytes"
        store.delete_blob("inline://a")
        assert store.get_blob("inline://a") is None

    def test_a_lock_has_one_owner_until_released(self, store: StateStore) -> None:
        assert store.acquire("t", "me", 60.0) is True
        assert store.acquire("t", "you", 60.0) is False
        assert store.lock_owner("t") == "me"
        held = store.lock_lease("t")
        assert held is not None and held[0] == "me" and 0 < held[1] <= 60.0
        store.renew(["t"], "me", 60.0)
        store.release("t", "you")  # not the owner: nothing happens
        assert store.lock_owner("t") == "me"
        store.release("t", "me")
        assert store.lock_owner("t") is None and store.lock_lease("t") is None
        assert store.acquire("t", "you", 60.0) is True

    def test_pending_writes(self, store: StateStore) -> None:
        store.begin_run(RunRecord("r1", self.PIPELINE, started=1_800_000_000.0))
        pending = PendingWrite("r1", "out/a.json", "out/.a.json.tmp", "local")
        store.intend_write(pending)
        assert store.pending_writes() == [pending] and store.pending_writes("out/b.json") == []
        checkpoint = self._checkpoint("a", "out/a.json", "r1")
        store.prepare_write(pending.staging, checkpoint, None)
        assert store.pending_writes("out/a.json")[0].checkpoint == checkpoint
        store.record_task(self._record("a", "r1"), checkpoint, staging=pending.staging)  # commits and ends it
        assert store.pending_writes() == [] and store.checkpoint("out/a.json") == checkpoint
        store.intend_write(pending)
        store.drop_pending(pending.staging)
        assert store.pending_writes() == []
        # whether the target was absent before the attempt outlives the prepared record
        # (engine/recovery.py removes what a killed run's own code wrote there)
        marked = PendingWrite("r1", "out/b.json", "out/.b.json.tmp", "local", absent=True)
        store.intend_write(marked)
        store.prepare_write(marked.staging, self._checkpoint("b", "out/b.json", "r1"), None)
        assert [p.absent for p in store.pending_writes()] == [True]
        store.drop_pending(marked.staging)

    def test_outcomes_of_a_run(self, store: StateStore) -> None:
        from targetrun.model import Action, Decision, Reason, TaskOutcome

        assert store.run_outcomes("r1") is None
        store.record_outcomes("r1", [TaskOutcome("a", TaskState.SKIPPED, Decision(Action.SKIP, Reason.TARGET_EXISTS),
                                                 "out/a.json")], "2026-11-30")
        kept = store.run_outcomes("r1")
        assert kept is not None and kept.date == "2026-11-30"
        assert [(m.task, m.state, m.target) for m in kept.marks] == [("a", TaskState.SKIPPED, "out/a.json")]

    def test_pruned_runs_keep_each_tasks_latest_record(self, store: StateStore) -> None:
        for index, run_id in enumerate(["r1", "r2"]):
            store.begin_run(RunRecord(run_id, self.PIPELINE, started=1_800_000_000.0 + index))
            store.record_task(self._record("a", run_id, finished=1_800_000_001.0 + index), None)
        assert store.prune_runs(self.PIPELINE, ["r1"]) == 1
        assert [r.run_id for r in store.runs(self.PIPELINE)] == ["r2"]
        assert store.last_task_records(self.PIPELINE)["a"].run_id == "r2"

    def test_recorded_gives_each_recorded_location_its_size(self, store: StateStore) -> None:
        """``status``: which targets a run recorded, and the size each record says was
        written (None: a record of no content, as a folder's); a location without a record
        is left out."""
        from dataclasses import replace

        store.begin_run(RunRecord("r1", self.PIPELINE, started=1_800_000_000.0))
        store.record_task(None, self._checkpoint("a", "out/a.json", "r1"))
        store.record_task(None, replace(self._checkpoint("f", "out/folder", "r1"), size=0, content_hash=""))
        assert store.recorded(["out/a.json", "out/folder", "out/none.json"]) == {"out/a.json": 3, "out/folder": None}
        assert store.recorded([]) == {}

    def test_checkpoints_that_differ_each_judges_each_record_by_its_own_code(self, store: StateStore) -> None:
        """A plan asks once for records of tasks that run different commands: each record
        is None where its own code is the same and nothing else of the kinds asked differs."""
        from dataclasses import replace

        from targetrun.model import StaleKind

        base = replace(self._checkpoint("a", "out/a.json", "r1"), inputs={}, params={})
        records = {
            "out/a.json": replace(base, code={"shell": "shell:a"}),
            "out/b.json": replace(base, location="out/b.json", code={"shell": "shell:b"}),
            "out/c.json": replace(base, location="out/c.json", code={"shell": "shell:c"}),
            "out/made.json": replace(base, location="out/made.json", code={"shell": "shell:a"}, made_for="2026-11-01"),
        }
        store.begin_run(RunRecord("r1", self.PIPELINE, started=1_800_000_000.0))
        for record in records.values():
            store.record_task(None, record)
        codes = {"out/a.json": '{"shell":"shell:a"}', "out/b.json": '{"shell":"shell:b"}',
                 "out/c.json": '{"shell":"shell:changed"}', "out/made.json": '{"shell":"shell:a"}',
                 "out/none.json": '{"shell":"shell:a"}'}
        found = store.checkpoints_that_differ_each(codes, frozenset(StaleKind))
        assert found == {"out/a.json": None, "out/b.json": None, "out/c.json": records["out/c.json"],
                         "out/made.json": records["out/made.json"]}
        only_code = store.checkpoints_that_differ_each(codes, frozenset((StaleKind.CODE,)))
        assert {loc for loc, record in only_code.items() if record is not None} == {"out/c.json"}
        assert store.checkpoints_that_differ_each({}, frozenset(StaleKind)) == {}

    def test_recorded_for_status_gives_size_and_what_made_it(self, store: StateStore) -> None:
        """``status`` asks once about existing targets planning did not read: each recorded
        location with the size its record says was written (None: no content, a folder's)
        and the record when it keeps parameter values or a date; one without a record is
        left out. The same answer as :meth:`recorded` and :meth:`checkpoints_made_with`."""
        from dataclasses import replace

        from targetrun.store.base import Recorded

        records = {
            "out/a.json": self._checkpoint("a", "out/a.json", "r1"),
            "out/folder": replace(self._checkpoint("f", "out/folder", "r1"), size=0, content_hash=""),
            "out/with.json": replace(self._checkpoint("w", "out/with.json", "r1"), size=7, made_with={"city": "oslo"}),
            "out/for": replace(self._checkpoint("d", "out/for", "r1"), size=0, content_hash="", made_for="2026-11-01"),
        }
        store.begin_run(RunRecord("r1", self.PIPELINE, started=1_800_000_000.0))
        for record in records.values():
            store.record_task(None, record)
        asked = [*records, "out/none.json"]
        assert store.recorded_for_status(asked) == {
            "out/a.json": Recorded(3, None), "out/folder": Recorded(None, None),
            "out/with.json": Recorded(7, records["out/with.json"]), "out/for": Recorded(None, records["out/for"])}
        assert {loc: found.size for loc, found in store.recorded_for_status(asked).items()} == store.recorded(asked)
        assert {loc: found.made for loc, found in store.recorded_for_status(asked).items() if found.made} == \
            store.checkpoints_made_with(asked)
        assert store.recorded_for_status([]) == {}

    def test_checkpoints_that_differ_leaves_out_only_what_cannot_be_stale(self, store: StateStore) -> None:
        """A record is returned where judging it for the kinds asked about may find
        something stale; None where it cannot (same code, nothing else those kinds
        compare); a location without a record is left out."""
        from dataclasses import replace

        from targetrun.model import StaleKind

        code = {"shell": "shell:1"}
        base = replace(self._checkpoint("a", "out/same.json", "r1"), inputs={}, params={}, code=code)
        records = {
            "out/same.json": base,
            "out/other-code.json": replace(base, code={"shell": "shell:2"}),
            "out/no-code.json": replace(base, code=None),
            "out/made-with.json": replace(base, made_with={"city": "berlin"}),
            "out/made-for.json": replace(base, made_for="2026-11-01"),
            "out/inputs.json": replace(base, inputs={"x": "1"}),
            "out/deps.json": replace(base, deps={"data.csv": "sha256:1"}),
        }
        store.begin_run(RunRecord("r1", self.PIPELINE, started=1_800_000_000.0))
        for location, record in records.items():
            store.record_task(None, replace(record, location=location))
        asked = [*records, "out/none.json"]
        every = frozenset(StaleKind)
        found = store.checkpoints_that_differ(asked, '{"shell":"shell:1"}', every)
        assert sorted(found) == sorted(records)
        assert found["out/same.json"] is None
        assert {loc for loc, record in found.items() if record is not None} == set(records) - {"out/same.json"}
        assert found["out/made-with.json"] == replace(records["out/made-with.json"], location="out/made-with.json")
        only_code = store.checkpoints_that_differ(asked, '{"shell":"shell:1"}', frozenset((StaleKind.CODE,)))
        assert {loc for loc, record in only_code.items() if record is not None} == \
            {"out/other-code.json", "out/no-code.json"}
        assert sorted(only_code) == sorted(records)
