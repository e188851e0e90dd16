"""Seeded bucket shapes, built on the real moto S3 server and GCS emulator: the batched
existence check (the planner's TargetChecker, and ``stat_many`` that ``status`` uses)
answers every target as checking each key on its own does, for no more requests.

Unlike tests/test_listing_shapes.py (hypothesis over one layout family), each seed here
draws a whole bucket: a random depth of shared or unshared prefixes; targets one per
prefix, many per prefix, or mixed; keys that are prefixes of other keys (``a/b`` and
``a/b/c`` both targets, both objects); directory markers (``a/b/``); a target that is a
folder only; names with spaces, unicode, ``%``, ``+``, ``?``, ``#``, ``..``; target URLs
with a trailing slash; crowds of over 1,000 keys around a target so that listings page;
an empty bucket, a missing bucket, and a versioned bucket whose deleted objects leave
delete markers. Some of those are forced by the seed's number, so that every seed run
covers them all (checked at the end).

Requests are counted as tests/test_listing_requests.py counts them: botocore's send event
on S3, each request the emulator parses on GCS.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from targetrun.errors import StorageError
from targetrun.storage.base import TargetChecker
from targetrun.storage.fsspec import FsspecStorage
from tests import test_listing_shapes
from tests.test_listing_shapes import Sends

BUCKET = "shapes-bucket"
NAMES = ["a", "b", "x y", "é", "日本", "\U0001f600", "%", "%2F", "+", "?", "#", "..", "=", "~", "!", "[x]", "*", "0", "z",
         ";", "-", "."]
# the GCS emulator, not GCS: '#' and '?' cut its path, '..' and '.' segments are refused, a
# ';' (which aiohttp sends unescaped) ends its path -- an existing object read as missing
GCS_UNFIT = {"#", "?", "..", ".", ";", "%2F", "%"}
CANNOT = "cannot tell"
FEATURES = {"empty bucket", "missing bucket", "delete markers", "one per prefix", "many per prefix", "pages",
            "prefix of another target", "marker", "folder", "trailing slash", "depth 0", "depth 3"}


@dataclass
class Shape:
    seed: int
    bucket: str = "normal"  # normal, empty, missing, versioned
    objects: set[str] = field(default_factory=set)
    targets: list[str] = field(default_factory=list)  # keys after the bucket (a few end in '/')
    deleted: list[str] = field(default_factory=list)  # removed from a versioned bucket: delete markers
    features: set[str] = field(default_factory=set)

    def truth(self, target: str) -> bool | str:
        if self.bucket == "missing":
            return CANNOT
        key = target.rstrip("/")
        return key in self.objects or any(o.startswith(key + "/") for o in self.objects)


def make_shape(seed: int, *, gcs: bool = False) -> Shape:
    r = random.Random(seed)
    shape = Shape(seed, bucket={0: "empty", 1: "missing", 2: "versioned", 3: "versioned"}.get(seed, "normal"))
    names = [n for n in NAMES if not (gcs and n in GCS_UNFIT)]

    def name() -> str:
        return "".join(r.choice(names) for _ in range(r.randint(1, 3)))

    depth = [0, 3][seed % 2] if seed < 6 else r.randint(0, 3)
    shape.features.add(f"depth {depth}")
    parent = "/".join(name() + str(i) for i in range(depth))
    layout = ("one per prefix", "many per prefix", "mixed")[seed % 3]
    if layout == "one per prefix":
        folders = [f"{parent}/dt={i:02d}{name()}".lstrip("/") for i in range(r.randint(3, 8))]
        counts = [1] * len(folders)
    else:
        folders = [("/".join([parent] + [name() + str(i) for _ in range(r.randint(0, 2))])).strip("/")
                   for i in range(r.randint(1, 3))]
        counts = [r.choice([1, 3, 5] if layout == "mixed" else [3, 4, 6]) for _ in folders]
    shape.features.add(layout)
    for folder, count in zip(folders, counts):
        absent = r.random() < 0.15  # the whole prefix may not exist
        for j in range(count):
            key = f"{folder}/{name()}{j}".lstrip("/")
            kind = "missing" if absent else r.choice(["file", "file", "folder", "marker", "missing", "prefix"])
            shape.targets.append(key)
            if kind == "file":
                shape.objects.add(key)
            elif kind == "folder":  # objects under it, none at it
                shape.objects.add(f"{key}/{name()}")
                shape.features.add("folder")
            elif kind == "marker":
                shape.objects.add(f"{key}/")
                shape.features.add("marker")
            elif kind == "prefix":  # `a/b` and `a/b/c`, both objects and targets; `a/b/d` a missing one
                shape.objects.update((key, f"{key}/c"))
                shape.targets += [f"{key}/c", f"{key}/d"]
                shape.features.add("prefix of another target")
        if not absent:
            shape.objects.update(f"{folder}/{name()}.n{i}".lstrip("/") for i in range(r.choice([0, 2, 6])))
            if r.random() < 0.3 and folder:
                shape.objects.add(folder + "/")
    if seed % 10 == 6:  # a crowd of keys around one target: listings page, or seek past it
        target = r.choice(shape.targets)
        mode = ("before", "extend", "after", "under")[seed % 4]
        around = {"before": target[:-1] + chr(max(0x21, ord(target[-1]) - 1)), "extend": target + "-",
                  "after": target + "0", "under": target + "/"}[mode]
        shape.objects.update(f"{around}{i:05d}" for i in range(1100))
        shape.features.add("pages")
    for i, target in enumerate(shape.targets):
        if r.random() < 0.08:
            shape.targets[i] = target + "/"
            shape.features.add("trailing slash")
    shape.targets = list(dict.fromkeys(shape.targets))[: 5 if shape.bucket == "missing" else None]
    if shape.bucket == "versioned":
        # delete markers on files that are targets with nothing below them (moto lists a deleted
        # `a/b/` or `a/b/c` as a common prefix `a/b/`, which S3 does not; not what is checked here)
        keys = {t.rstrip("/") for t in shape.targets}
        files = sorted(k for k in shape.objects & keys if not any(o.startswith(k + "/") for o in shape.objects | keys))
        shape.deleted = r.sample(files, min(3, len(files)))
        shape.features.add("delete markers")
    shape.features.add({"empty": "empty bucket", "missing": "missing bucket"}.get(shape.bucket, "bucket"))
    return shape


@dataclass
class Figures:
    """One shape's answers and request counts, per way of asking."""

    shape: Shape
    answers: dict[str, dict[str, bool | str]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)

    def row(self) -> str:
        s = self.shape
        return (f"seed {s.seed:2d} {s.bucket:9s} targets {len(s.targets):2d} objects {len(s.objects):4d}: "
                + ", ".join(f"{how} {n}" for how, n in self.requests.items()))


def ask(storage: FsspecStorage, protocol: str, shape: Shape, how: str) -> dict[str, bool | str]:
    urls = [f"{protocol}://{BUCKET}/{t}" for t in shape.targets]
    if how == "per key":
        answers: dict[str, bool | str] = {}
        for url, target in zip(urls, shape.targets):
            try:
                answers[target] = storage.exists(url)
            except StorageError:
                answers[target] = CANNOT
        return answers
    try:
        if how == "stat_many":
            stats = storage.stat_many(urls)
            return {t: stats[u] is not None for u, t in zip(urls, shape.targets)}
        checker = TargetChecker(lambda _key: storage)
        checker.expect("", urls)  # as the planner does: all up front, then asked in batches
        cut = random.Random(shape.seed).randint(1, len(urls))
        found = {**checker.check_urls("", urls[:cut]), **checker.check_urls("", urls[cut:])}
        return {t: found[u] for u, t in zip(urls, shape.targets)}
    except StorageError:
        return dict.fromkeys(shape.targets, CANNOT)


def compare(shapes: list[Figures], features: set[str] = FEATURES) -> None:
    table = "\n".join(f.row() for f in shapes)
    for f in shapes:
        truth = {t: f.shape.truth(t) for t in f.shape.targets}
        assert f.answers["per key"] == truth, (f.row(), table)  # the server holds what the shape says
        for how in ("batched", "stat_many"):
            wrong = {t: (a, truth[t]) for t, a in f.answers[how].items() if a != truth[t]}
            assert not wrong, (how, wrong, f.row())
            assert f.requests[how] <= f.requests["per key"], (how, f.row(), table)
    assert features <= set().union(*(f.shape.features for f in shapes)), table


# -- S3 -------------------------------------------------------------------------------------


def s3_storages() -> Callable[[], tuple[FsspecStorage, Sends]]:
    """Fresh storages (nothing known of any bucket) on one counted client: making a client
    takes about 0.1 s, ten times what a shape's checks take."""
    fs = FsspecStorage("s3").fs
    _ = fs.s3  # the client's setup is not counted
    sends = Sends()
    fs.s3.meta.events.register("before-send.s3", sends)

    def make() -> tuple[FsspecStorage, Sends]:
        storage = FsspecStorage("s3")
        storage._fs = fs
        sends.n = 0
        return storage, sends

    return make


def build_s3(server: Any, client: Any, shape: Shape) -> None:
    server.reset()
    if shape.bucket == "missing":
        return
    client.create_bucket(Bucket=BUCKET)
    if shape.bucket == "versioned":
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    if shape.bucket != "empty":
        server.seed({f"{BUCKET}/{k}": b"1" for k in shape.objects})
    else:
        shape.objects = set()
    for key in shape.deleted:
        client.delete_object(Bucket=BUCKET, Key=key)
        shape.objects.discard(key)


@pytest.fixture
def s3_client(s3: Any, s3_server: Any) -> Iterator[Any]:
    import boto3

    yield boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing",
                       aws_secret_access_key="testing", region_name="us-east-1")


def measure(shape: Shape, make: Callable[[], tuple[FsspecStorage, Sends]], protocol: str) -> Figures:
    figures = Figures(shape)
    for how in ("per key", "batched", "stat_many"):
        storage, sends = make()
        figures.answers[how] = ask(storage, protocol, shape, how)
        figures.requests[how] = sends.n
    return figures


def test_s3_seeded_bucket_shapes_answer_as_per_key_checks_for_no_more_requests(s3_client: Any, s3_server: Any) -> None:
    figures, make = [], s3_storages()
    for seed in range(8):
        shape = make_shape(seed)
        build_s3(s3_server, s3_client, shape)
        figures.append(measure(shape, make, "s3"))
    compare(figures)


def test_s3_a_key_and_keys_below_it_in_one_listing_page(s3_client: Any, s3_server: Any) -> None:
    """``out/a`` is an object and a folder (``out/a/c``): a listing of ``out/`` with a
    delimiter has both ``out/a`` and the prefix ``out/a/``. Sorting the page compared their
    sizes and ages (a TypeError), and every target of the prefix was "cannot tell" (exit 3)."""
    shape = Shape(0, objects={"out/a", "out/a/c", "out/b"}, targets=["out/a", "out/a/c", "out/b", "out/d"])
    build_s3(s3_server, s3_client, shape)
    assert_key_and_keys_below(*s3_storages()(), "s3")


def assert_key_and_keys_below(storage: FsspecStorage, sends: Sends, protocol: str) -> None:
    urls = [f"{protocol}://{BUCKET}/out/{name}" for name in ("a", "a/c", "b", "d")]
    checker = TargetChecker(lambda _key: storage)
    checker.expect("", urls)
    assert list(checker.check_urls("", urls).values()) == [True, True, True, False]
    assert sends.n == 2, sends.n  # one listing of out/, one of out/a/ (a target below a target is in another folder)
    # the object's size, as a check of that one key tells it (not the folder's 0 and no age)
    assert checker.known_stats("", urls[:1]) == {urls[0]: storage.info(urls[0])}
    assert storage.info(urls[0]) is not None and storage.info(urls[0]).size == 1  # type: ignore[union-attr]


def test_s3_keys_under_an_empty_folder_name_are_checked_as_they_are(s3_client: Any, s3_server: Any) -> None:
    """``a//b`` (a template's empty value: ``{prefix}/{name}``), ``/x`` and ``/f/g`` are keys
    S3 keeps as they are. Their folders (``a/``, ``/f``) are no folders fsspec lists: ``a/``
    loses its slash and the listing of ``a`` has ``a//`` as a common prefix, ``/f`` is not
    found. ``stat_many`` (status) read those listings and said the existing targets were
    missing; the planner listed ``a/`` for nothing, a request more than checking each key."""
    objects = {"a//b1", "a//b2", "a//b3", "/x", "/y", "/z", "a/c", "/f/g1", "/f/g2", "/f/g3", "h//i/j1", "h//i/j2", "h//i/j3"}
    shape = Shape(0, objects=objects, targets=["a//b1", "a//b2", "a//b3", "a//d", "/x", "/y", "/z", "/w", "a/c",
                                               "/f/g1", "/f/g2", "/f/g3", "h//i/j1", "h//i/j2", "h//i/j3"])
    build_s3(s3_server, s3_client, shape)
    figures = measure(shape, s3_storages(), "s3")
    truth = {t: shape.truth(t) for t in shape.targets}
    assert figures.answers == {"per key": truth, "batched": truth, "stat_many": truth}, figures.answers
    assert figures.requests["batched"] <= figures.requests["per key"], figures.row()
    assert figures.requests["stat_many"] <= figures.requests["per key"], figures.row()


# -- GCS ------------------------------------------------------------------------------------


gcs_world = test_listing_shapes.gcs_world  # the emulator, every request it parses counted


def build_gcs(server: Any, endpoint: str, shape: Shape) -> None:
    """The shape's objects straight into the emulator's store (as ``S3Server.seed`` does on
    S3: an upload each would take seconds); what is checked goes through HTTP."""
    from gcp_storage_emulator.handlers.objects import _make_object_resource

    server.wipe()
    if shape.bucket == "missing":
        return
    storage = server._storage
    storage.create_bucket(BUCKET, {"kind": "storage#bucket", "name": BUCKET, "id": BUCKET})
    if shape.bucket == "empty":
        shape.objects = set()
    for key in shape.objects:
        storage.create_file(BUCKET, key, b"1", _make_object_resource(endpoint, BUCKET, key, "text/plain", "1"))


def test_gcs_seeded_bucket_shapes_answer_as_per_key_checks_for_no_more_requests(
        gcs_world: tuple[Any, str, Sends]) -> None:
    server, endpoint, sends = gcs_world

    def make() -> tuple[FsspecStorage, Sends]:
        storage = FsspecStorage("gs")
        _ = storage.fs  # (makes no request)
        sends.n = 0
        return storage, sends

    figures = []
    for seed in (0, 1, 4, 5, 6, 8, 9, 10):
        shape = make_shape(seed, gcs=True)
        if shape.bucket == "versioned":
            shape.bucket, shape.deleted = "normal", []
        build_gcs(server, endpoint, shape)
        figures.append(measure(shape, make, "gs"))
    compare(figures, FEATURES - {"delete markers"})


def test_gcs_a_key_and_keys_below_it_in_one_listing_page(gcs_world: tuple[Any, str, Sends]) -> None:
    server, endpoint, sends = gcs_world
    import gcsfs

    fs = gcsfs.GCSFileSystem(endpoint_url=endpoint, token="anon", project="test-project", skip_instance_cache=True)
    server.wipe()
    fs.mkdir(BUCKET)
    fs.pipe({f"{BUCKET}/{k}": b"1" for k in ("out/a", "out/a/c", "out/b")})
    storage = FsspecStorage("gs")
    storage.fs.ls(BUCKET)
    sends.n = 0
    assert_key_and_keys_below(storage, sends, "gs")


# -- faults: a listing that cannot answer ---------------------------------------------------


@pytest.fixture(scope="module")
def flaky_server(s3_server: Any) -> Iterator[Any]:
    """A second door onto the S3 server's objects that answers the requests a rule matches
    with an error (tests/test_flaky_s3.py); one for the module (stopping one takes 0.5 s)."""
    from tests.test_flaky_s3 import FlakyS3

    server = FlakyS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def flaky_s3(s3: Any, s3_client: Any, flaky_server: Any) -> Iterator[Any]:
    s3_client.create_bucket(Bucket=BUCKET)
    flaky_server.faults.clear()
    yield flaky_server
    flaky_server.faults.clear()


def flaky_storage(endpoint: str) -> tuple[FsspecStorage, Sends]:
    storage = FsspecStorage("s3", {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint},
                                   "config_kwargs": {"retries": {"total_max_attempts": 1}}})
    sends = Sends()
    storage.fs.s3.meta.events.register("before-send.s3", sends)
    return storage, sends


def test_s3_listings_refused_but_reads_allowed_answer_as_per_key_checks(s3_server: Any, flaky_s3: Any) -> None:
    """A policy with s3:GetObject and no s3:ListBucket (a common read-only grant): every
    listing is refused (403). What exists is answered per key, as a check of each key
    alone answers it; what a key's own check cannot tell either stays "cannot tell",
    never "missing"."""
    s3_server.seed({f"{BUCKET}/out/{n}": b"1" for n in ("a", "b", "c")})
    flaky_s3.faults.add("GET", r"list-type=2", status=403)
    urls = [f"s3://{BUCKET}/out/{n}" for n in ("a", "b", "c", "d")]
    storage, sends = flaky_storage(flaky_s3.endpoint)
    checker = TargetChecker(lambda _key: storage)
    checker.expect("", urls)
    assert checker.check_urls("", urls[:3]) == dict.fromkeys(urls[:3], True)  # was "cannot tell" for all
    assert sends.n == 1 + 3  # the refused listing, then one HEAD each
    with pytest.raises(StorageError, match=r"cannot tell whether s3://shapes-bucket/out/d exists") as caught:
        checker.check_urls("", urls[3:])  # HEAD 404, then the listing of out/d/ that tells a folder: refused
    assert "testing" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_s3_a_listing_that_fails_after_its_first_page_answers_as_per_key_checks(s3_server: Any, flaky_s3: Any) -> None:
    """1,500 keys; targets the first page reaches and targets beyond it. The second request
    fails (500): nothing the first page saw is lost, and no target is "missing" because
    the listing stopped -- each is answered as its own check answers it."""
    s3_server.seed({f"{BUCKET}/crowd/k{i:04d}": b"1" for i in range(1500)})
    targets = [f"s3://{BUCKET}/crowd/k{i:04d}{x}" for i, x in ((5, ""), (6, "x"), (7, ""), (1400, ""), (1401, "x"))]
    truth = dict(zip(targets, (True, False, True, True, False)))  # what each key's own check says
    flaky_s3.faults.add("GET", r"list-type=2.*start-after=crowd%2Fk1", status=500)
    storage, sends = flaky_storage(flaky_s3.endpoint)
    checker = TargetChecker(lambda _key: storage)
    checker.expect("", targets)
    assert checker.check_urls("", targets) == truth
    # the first page answered the first three: 2 listing requests, then per key 1 + 2 for the
    # last two and one look at the bucket -- not 8, every target checked again
    assert sends.n == 6, "\n".join(sends.seen)


def test_run_and_status_where_listings_are_refused(project: Any, flaky_s3: Any, s3: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI on a read-only grant (listings refused, reads allowed): what exists is skipped
    and shown; a target no check can tell is exit 3 in one paragraph, never "missing"
    (nothing runs), without a traceback or the credentials."""
    import json
    import sys

    from tests.test_flaky_s3 import SECRET, TASKS, assert_one_paragraph, pipeline

    monkeypatch.setenv("LAKE_SECRET", SECRET)
    lake = project(pipeline(flaky_s3.endpoint), flakytasks=TASKS)
    monkeypatch.syspath_prepend(str(lake.root))
    monkeypatch.delitem(sys.modules, "flakytasks", raising=False)
    assert lake.cli("run").code == 0
    calls = lake.counts()
    flaky_s3.faults.add("GET", r"list-type=2", status=403)
    status = lake.cli("status", "--json")
    assert status.code == 0, status.text  # was exit 3: "cannot tell whether s3://test-bucket/flaky exists"
    assert {t["task"]: (t["exists"], t["size"]) for t in json.loads(status.out)["tasks"]} == {
        "a": (True, 5), "b": (True, 7), "c": (True, 9), "d": (True, 11)}
    s3.rm_file("test-bucket/flaky/d.json")
    result = lake.cli("run")
    assert result.code == 3, result.text
    assert_one_paragraph(result.err, "cannot tell whether s3://test-bucket/flaky/d.json exists")
    assert lake.counts() == calls
