"""Requests spent answering "which targets exist?" on object stores, per bucket shape.

Upper bounds, counted at the client (botocore's send event on S3) or at the emulator
(each HTTP request it parses on GCS), against a real moto server and GCS emulator:

* dense prefixes: one listing per prefix;
* one target per prefix under a shared parent (Hive-style ``dt=YYYY-MM-DD``): one
  recursive listing of the parent, not one or two requests per target;
* a few targets in a crowded prefix: never more than the per-key checks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from targetrun.storage.base import TargetChecker
from targetrun.storage.fsspec import FsspecStorage


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.n += 1


def days(n: int) -> list[str]:
    start = dt.date(2025, 1, 1)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]


def hive_keys(bucket: str) -> list[str]:
    return [f"{bucket}/events/dt={day}/part.json" for day in days(365)]


def dense_keys(bucket: str) -> list[str]:
    return [f"{bucket}/dense/p{i % 3}/t{i}.json" for i in range(300)]


def crowded(bucket: str) -> tuple[list[str], list[str]]:
    """1,200 other objects, and 3 targets (2 existing) among them."""
    others = [f"{bucket}/crowd/a{i:05d}.json" for i in range(1200)]
    return others, [f"{bucket}/crowd/m1.json", f"{bucket}/crowd/m2.json", f"{bucket}/crowd/m3.json"]


def check(storage: FsspecStorage, protocol: str, keys: list[str]) -> dict[str, bool]:
    urls = [f"{protocol}://{k}" for k in keys]
    checker = TargetChecker(lambda _key: storage)
    checker.expect("", urls)
    answers = checker.check_urls("", urls)
    return {url.split("://", 1)[1]: answer for url, answer in answers.items()}


def per_key(storage: FsspecStorage, protocol: str, keys: list[str]) -> dict[str, bool]:
    return {k: storage.exists(f"{protocol}://{k}") for k in keys}


# -- S3 ---------------------------------------------------------------------------------


@pytest.fixture
def fresh_s3(s3: Any) -> Callable[[], tuple[FsspecStorage, Counter]]:
    def make() -> tuple[FsspecStorage, Counter]:
        storage = FsspecStorage("s3")
        storage.fs.info("test-bucket")
        counter = Counter()
        storage.fs.s3.meta.events.register("before-send.s3", counter)
        return storage, counter
    return make


def test_s3_hive_partitions_take_one_listing_not_a_request_per_target(s3: Any, fresh_s3: Any) -> None:
    keys = hive_keys("test-bucket")
    s3.pipe({k: b"1\n" for k in keys[::2]})
    storage, counter = fresh_s3()
    answers = check(storage, "s3", keys)
    assert answers == {k: i % 2 == 0 for i, k in enumerate(keys)}
    assert counter.n <= 2, counter.n  # was 2 per missing target, 1 per existing (~550)


def test_s3_dense_prefixes_take_one_listing_each(s3: Any, fresh_s3: Any) -> None:
    keys = dense_keys("test-bucket")
    s3.pipe({k: b"1\n" for k in keys[::2]})
    storage, counter = fresh_s3()
    assert check(storage, "s3", keys) == {k: i % 2 == 0 for i, k in enumerate(keys)}
    assert counter.n <= 3, counter.n


def test_s3_few_targets_in_a_crowded_prefix_cost_no_more_than_per_key(s3: Any, s3_server: Any, fresh_s3: Any) -> None:
    others, targets = crowded("test-bucket")
    s3_server.seed({k: b"1\n" for k in [*others, *targets[:2]]})
    storage, counter = fresh_s3()
    assert check(storage, "s3", targets) == {targets[0]: True, targets[1]: True, targets[2]: False}
    listed = counter.n
    storage, counter = fresh_s3()
    per_key(storage, "s3", targets)
    assert listed <= min(counter.n, 1), (listed, counter.n)  # the page that holds them; was 2 pages of the crowd


def test_s3_targets_spread_through_a_crowded_prefix_cost_at_most_one_request_each(s3: Any, s3_server: Any,
                                                                                  fresh_s3: Any) -> None:
    """4 targets 700 keys apart among 2,800 objects: each request starts at the next target
    (StartAfter), never pages through the crowd between them. Two of them are missing, one
    is a folder, so per-key checks would take 7 requests."""
    crowd = [f"test-bucket/spread/k{i:05d}" for i in range(2800)]
    targets = [f"test-bucket/spread/k{i:05d}x" for i in (0, 700, 1400, 2100)]
    s3_server.seed({k: b"1" for k in [*crowd, targets[0], f"{targets[1]}/part-0"]})
    storage, counter = fresh_s3()
    assert check(storage, "s3", targets) == dict(zip(targets, (True, True, False, False)))
    listed = counter.n
    storage, counter = fresh_s3()
    assert per_key(storage, "s3", targets) == dict(zip(targets, (True, True, False, False)))
    # one request from the first target (it reaches the second), one from the third (it
    # reaches the fourth); paging through the whole crowd took 3
    assert listed <= 2 < len(targets) < counter.n, (listed, counter.n)


def test_s3_a_target_that_is_a_folder_exists_in_a_recursive_listing(s3: Any, fresh_s3: Any) -> None:
    keys = [f"test-bucket/parts/dt={day}/part.json" for day in days(4)]
    s3.pipe({f"{keys[0]}/chunk-0": b"1", keys[1]: b"1"})
    storage, counter = fresh_s3()
    assert check(storage, "s3", keys) == {keys[0]: True, keys[1]: True, keys[2]: False, keys[3]: False}
    assert counter.n == 1  # one recursive listing; per key it was 6

    from targetrun.errors import StorageError

    storage, _ = fresh_s3()  # a missing bucket stays "cannot tell", never "missing"
    with pytest.raises(StorageError, match="does not exist"):
        check(storage, "s3", [k.replace("test-bucket", "no-such-bucket") for k in keys])


# -- GCS ----------------------------------------------------------------------------------


@pytest.fixture
def gcs_requests(gcs: Any, gcs_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts every HTTP request the emulator parses."""
    import gcp_storage_emulator.server as gse

    counter = Counter()
    original = gse.RequestHandler.parse_request

    def counting(self: Any) -> bool:
        counter()
        return bool(original(self))

    monkeypatch.setattr(gse.RequestHandler, "parse_request", counting)
    return counter


def test_gcs_listing_requests_per_shape(gcs: Any, gcs_requests: Counter) -> None:
    hive, dense = hive_keys("test-bucket")[:60], dense_keys("test-bucket")
    gcs.pipe({k: b"1\n" for k in [*hive[::2], *dense[::2]]})
    storage = FsspecStorage("gs")
    storage.fs.info("test-bucket/" + hive[0].split("/", 1)[1])
    gcs_requests.n = 0
    assert check(storage, "gs", hive) == {k: i % 2 == 0 for i, k in enumerate(hive)}
    assert gcs_requests.n <= 2, gcs_requests.n
    gcs_requests.n = 0
    assert check(storage, "gs", dense) == {k: i % 2 == 0 for i, k in enumerate(dense)}
    assert gcs_requests.n <= 3, gcs_requests.n
