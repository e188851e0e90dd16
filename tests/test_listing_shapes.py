"""Random bucket shapes: the batched existence check against the truth, and its cost.

Each example builds a bucket on the real moto S3 server (or the GCS emulator): targets
at one or two levels below a shared parent, one or several per prefix, some existing as
objects, some as folders (``key/part-0``) or as a bare directory marker (``key/``), some
missing in a prefix that exists, some whose prefix does not exist at all; unrelated
objects ("noise") beside them and in the parent, a crowd of keys that sort just before a
target, and names with spaces, ``+``, ``%``, ``=`` and non-ASCII letters.

For every shape:

(a) the answer for every target equals the truth, computed with the raw API (boto3's
    ``head_object`` and a one-key listing of ``key/``; the emulator's JSON API), and that
    truth equals what the example put in;
(b) the requests the check makes (counted the way tests/test_listing_requests.py counts:
    botocore's send event on S3, each request the emulator parses on GCS) are never more
    than checking each key on its own; where listings answer every target (one target per
    prefix under a shared parent, or three or more in each prefix) never more than one per
    target (plus one look at the bucket when nothing at all was found); and targets one per
    prefix under a shared parent cost about one request per 1,000 objects under that parent.
"""

from __future__ import annotations

import itertools
import json
import math
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targetrun.storage.base import TargetChecker
from targetrun.storage.fsspec import FsspecStorage

BUCKET = "shape-bucket"
FILE, FOLDER, MARKER, MISSING = "file", "folder", "marker", "missing"

# name pieces that S3 and GCS accept and that exercise encoding and sort order
PIECES = ["a", "b", "part", "x y", "p+q", "r%20s", "k=v", "dt=2025-01-0", "é", "日本", "z~", "n-1", "m_2", "c.d"]
name = st.lists(st.sampled_from(PIECES), min_size=1, max_size=3).map("".join)


@dataclass
class Shape:
    parent: str
    targets: dict[str, str] = field(default_factory=dict)  # key -> FILE/FOLDER/MARKER/MISSING
    objects: set[str] = field(default_factory=set)
    crowd: list[str] = field(default_factory=list)  # also in objects: many keys sorting just before a target
    one_per_prefix: bool = False  # every target alone in its own prefix, all under ``parent``

    def truth(self, key: str) -> bool:
        return key in self.objects or any(o.startswith(key + "/") for o in self.objects)


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    parent = "p-" + draw(name)
    shape = Shape(parent)
    one_per_prefix = draw(st.booleans())
    if one_per_prefix:
        folders = [f"{parent}/{n}{i}" for i, n in enumerate(draw(st.lists(name, min_size=3, max_size=40)))]
        per_folder = [1] * len(folders)
        shape.one_per_prefix = True
    else:
        depth = draw(st.integers(1, 2))
        folders = [f"{parent}/" + "/".join(f"{draw(name)}{i}" for _ in range(depth))
                   for i in range(draw(st.integers(1, 4)))]
        per_folder = [draw(st.integers(1, 8)) for _ in folders]
    for folder, count in zip(folders, per_folder):
        names = draw(st.lists(name, min_size=count, max_size=count, unique=True))
        absent_folder = draw(st.booleans()) and draw(st.integers(0, 3)) == 0  # the whole prefix may not exist
        for n in names:
            key = f"{folder}/{n}.out"
            kind = MISSING if absent_folder else draw(st.sampled_from([FILE, FILE, FOLDER, MARKER, MISSING, MISSING]))
            shape.targets[key] = kind
            if kind == FILE:
                shape.objects.add(key)
            elif kind == FOLDER:
                shape.objects.add(f"{key}/part-0")
            elif kind == MARKER:
                shape.objects.add(f"{key}/")
        if absent_folder:
            continue
        # noise beside the targets: unrelated names, names that extend a target's name
        # (``t.out.bak``, ``t.out b`` sorts between ``t.out`` and ``t.out/``), a marker of
        # the folder itself
        for i in range(draw(st.integers(0, 5))):
            shape.objects.add(f"{folder}/{draw(name)}.noise{i}")
        for n in names:
            if draw(st.integers(0, 3)) == 0:
                shape.objects.add(f"{folder}/{n}.out" + draw(st.sampled_from([".bak", " b", "!", "0", "-x/y"])))
        if draw(st.booleans()):
            shape.objects.add(f"{folder}/")
    # a crowd that sorts just before one target (a listing that begins too early pages through
    # it), or just after it, before ``target/`` (a page that ends there has not decided it)
    if draw(st.booleans()):
        # the first target a listing seeks: the first of the fullest prefix (or of them all)
        by_folder: dict[str, list[str]] = {}
        for key in sorted(shape.targets):
            by_folder.setdefault(key.rsplit("/", 1)[0], []).append(key)
        victim = min(max(by_folder.values(), key=len)) if not one_per_prefix else min(shape.targets)
        before = victim[:-1] + chr(ord(victim[-1]) - 1)
        if draw(st.booleans()):  # ... or between it and its folder ("t.out-00001" sorts before "t.out/")
            before = victim + draw(st.sampled_from(["-", ".", " "]))
        shape.crowd = [f"{before}{i:05d}" for i in range(draw(st.sampled_from([10, 1100, 1100, 2300])))]
        shape.objects.update(shape.crowd)
    # noise in the parent, and in a sibling of the parent that sorts inside its range
    for i in range(draw(st.integers(0, 4))):
        shape.objects.add(f"{parent}/{draw(name)}-loose{i}")
    if draw(st.booleans()):
        shape.objects.add(f"{parent}/")
        shape.objects.update(f"{parent}-sibling/{i}" for i in range(3))
    return shape


# -- S3 --------------------------------------------------------------------------------


class Sends:
    def __init__(self) -> None:
        self.n = 0
        self.seen: list[str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.n += 1
        self.seen.append(str(getattr(kwargs.get("request"), "url", ""))[-60:])  # S3: what was asked


@pytest.fixture
def s3_world(s3: Any, s3_server: Any) -> Iterator[tuple[Any, Any]]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    yield s3_server, client


def s3_truth(client: Any, key: str) -> bool:
    """Independently of targetrun: a HEAD of the key, then one key of a listing of ``key/``."""
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=BUCKET, Key=key)
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchKey"):
            raise
    return bool(client.list_objects_v2(Bucket=BUCKET, Prefix=key + "/", MaxKeys=1).get("KeyCount"))


def s3_storage() -> tuple[FsspecStorage, Sends]:
    storage = FsspecStorage("s3")
    storage.fs.info(BUCKET)
    sends = Sends()
    storage.fs.s3.meta.events.register("before-send.s3", sends)
    return storage, sends


def batched(storage: FsspecStorage, protocol: str, keys: list[str]) -> dict[str, bool]:
    urls = [f"{protocol}://{BUCKET}/{k}" for k in keys]
    checker = TargetChecker(lambda _key: storage)
    checker.expect("", urls)
    return {url.split("/", 3)[3]: answer for url, answer in checker.check_urls("", urls).items()}


def assert_cost(shape: Shape, listed: int, per_key: int) -> None:
    targets = len(shape.targets)
    found_nothing = not any(shape.truth(k) for k in shape.targets)
    assert listed <= per_key, (listed, per_key)
    folders: dict[str, int] = {}
    for key in shape.targets:
        folders[key.rsplit("/", 1)[0]] = folders.get(key.rsplit("/", 1)[0], 0) + 1
    if shape.one_per_prefix or min(folders.values()) >= 3:  # every target answered by a listing
        assert listed <= targets + found_nothing, (listed, targets)
    if shape.one_per_prefix:
        under = sum(1 for o in shape.objects if o.startswith(shape.parent + "/"))
        assert listed <= math.ceil(under / 1000) + 1 + found_nothing, (listed, under)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(shape=shapes())
def test_s3_any_bucket_shape_is_answered_truly_for_no_more_than_per_key_requests(
        s3_world: tuple[Any, Any], shape: Shape) -> None:
    server, client = s3_world
    server.reset()
    client.create_bucket(Bucket=BUCKET)
    server.seed({f"{BUCKET}/{k}": b"1" for k in shape.objects})
    keys = sorted(shape.targets)
    truth = {k: s3_truth(client, k) for k in keys}
    assert truth == {k: shape.truth(k) for k in keys}  # the server holds what the example put in

    storage, sends = s3_storage()
    assert batched(storage, "s3", keys) == truth
    listed = sends.n
    storage, sends = s3_storage()
    assert {k: storage.exists(f"s3://{BUCKET}/{k}") for k in keys} == truth
    assert_cost(shape, listed, sends.n)


def test_s3_a_crowd_sorting_just_before_the_targets_is_not_paged_through(s3_world: tuple[Any, Any]) -> None:
    """Three targets in a folder of 2,000 keys that sort just before the first of them
    (``.../t1`` after ``.../t0nnnn``): the listing starts at the first target, not at the
    first key sharing all but its last letter."""
    server, client = s3_world
    server.reset()
    client.create_bucket(Bucket=BUCKET)
    server.seed({f"{BUCKET}/crowd/t0{i:04d}": b"1" for i in range(2000)} | {f"{BUCKET}/crowd/t1": b"1"})
    storage, sends = s3_storage()
    assert batched(storage, "s3", ["crowd/t1", "crowd/t2", "crowd/t3"]) == {
        "crowd/t1": True, "crowd/t2": False, "crowd/t3": False}
    assert sends.n == 1, sends.n  # was 3: two pages of the crowd (StartAfter "crowd/t"), then the targets


def test_s3_a_page_ending_between_a_target_and_its_folder_goes_on_from_the_folder(s3_world: tuple[Any, Any]) -> None:
    """Targets ``reports/sum`` (missing), ``reports/sum2``, ``reports/sum3`` among 1,500 keys
    ``reports/sum-NNNN``, which sort between ``reports/sum`` and ``reports/sum/``: the first
    page ends there, having decided nothing. The next begins at ``reports/sum/``, not again
    at ``reports/sum``: no progress then stopped the listing and checked every target per
    key, one request more than per-key checks."""
    server, client = s3_world
    server.reset()
    client.create_bucket(Bucket=BUCKET)
    server.seed({f"{BUCKET}/reports/sum-{i:04d}": b"1" for i in range(1500)} | {f"{BUCKET}/reports/sum3": b"1"})
    targets = ["reports/sum", "reports/sum2", "reports/sum3"]
    storage, sends = s3_storage()
    assert batched(storage, "s3", targets) == {"reports/sum": False, "reports/sum2": False, "reports/sum3": True}
    listed = sends.n
    storage, sends = s3_storage()
    per_key(storage, targets)
    assert listed <= 2 < sends.n, (listed, sends.n)

    # a target among those keys is not jumped over
    targets = ["reports/sum", "reports/sum-1200", "reports/sum-1200x", "reports/sum2", "reports/sum3"]
    storage, sends = s3_storage()
    assert batched(storage, "s3", targets) == {"reports/sum": False, "reports/sum-1200": True,
                                               "reports/sum-1200x": False, "reports/sum2": False, "reports/sum3": True}


def per_key(storage: FsspecStorage, keys: list[str]) -> dict[str, bool]:
    return {k: storage.exists(f"s3://{BUCKET}/{k}") for k in keys}


# -- GCS ---------------------------------------------------------------------------------


@pytest.fixture
def gcs_world(gcs: Any, gcs_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str, Sends]]:
    import gcp_storage_emulator.server as gse

    server, endpoint = gcs_emulator
    sends = Sends()
    original = gse.RequestHandler.parse_request

    def counting(self: Any) -> bool:
        sends()
        return bool(original(self))

    monkeypatch.setattr(gse.RequestHandler, "parse_request", counting)
    yield server, endpoint, sends


def gcs_truth(endpoint: str, key: str) -> bool:
    """Independently of targetrun: the JSON API's object GET, then a listing of ``key/``."""
    quoted = urllib.parse.quote(key, safe="")
    try:
        with urllib.request.urlopen(f"{endpoint}/storage/v1/b/{BUCKET}/o/{quoted}") as r:
            return bool(json.load(r).get("name") == key)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    query = urllib.parse.urlencode({"prefix": key + "/", "maxResults": 1})
    with urllib.request.urlopen(f"{endpoint}/storage/v1/b/{BUCKET}/o?{query}") as r:
        return bool(json.load(r).get("items"))


_examples = itertools.count()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(shape=shapes())
def test_gcs_any_bucket_shape_is_answered_truly_for_no_more_than_per_key_requests(
        gcs_world: tuple[Any, str, Sends], shape: Shape) -> None:
    import gcsfs

    server, endpoint, sends = gcs_world
    server.wipe()
    fs = gcsfs.GCSFileSystem(endpoint_url=endpoint, token="anon", project="test-project", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    shape.objects -= set(shape.crowd[200:])  # the emulator has no bulk seed: one upload each
    fs.pipe({f"{BUCKET}/{k}": b"1" for k in shape.objects})
    keys = sorted(shape.targets)
    truth = {k: gcs_truth(endpoint, k) for k in keys}
    assert truth == {k: shape.truth(k) for k in keys}

    storage = FsspecStorage("gs")
    storage.fs.ls(BUCKET)  # the client's setup is not counted
    sends.n = 0
    assert batched(storage, "gs", keys) == truth
    listed = sends.n
    storage = FsspecStorage("gs")
    storage.fs.ls(BUCKET)
    sends.n = 0
    assert {k: storage.exists(f"gs://{BUCKET}/{k}") for k in keys} == truth
    assert_cost(shape, listed, sends.n)


def test_gcs_a_target_checked_alone_costs_one_request_when_it_exists(gcs_world: tuple[Any, str, Sends]) -> None:
    """One key checked on its own (a target alone in its prefix): gcsfs's ``info`` sends the
    object GET and a listing together, two requests whatever the answer; an existing
    object needs only the first. A missing one, or a folder, takes the listing too."""
    server, endpoint, sends = gcs_world
    server.wipe()
    import gcsfs

    fs = gcsfs.GCSFileSystem(endpoint_url=endpoint, token="anon", project="test-project", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    fs.pipe({f"{BUCKET}/t/file.out": b"1", f"{BUCKET}/t/folder.out/part-0": b"1", f"{BUCKET}/t/marker.out/": b""})
    storage = FsspecStorage("gs")
    storage.fs.ls(BUCKET)  # the client's setup is not counted
    cost = {}
    for name, there in (("file", True), ("folder", True), ("marker", True), ("missing", False)):
        sends.n = 0
        assert storage.exists(f"gs://{BUCKET}/t/{name}.out") is there, name
        cost[name] = sends.n
    storage.exists(f"gs://{BUCKET}/t/file.out")  # (the bucket is known now)
    assert cost == {"file": 1, "folder": 2, "marker": 2, "missing": 2 + 1}, cost  # + the bucket's check, once
