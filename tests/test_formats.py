"""Data formats: DataFrames, Arrow tables and numpy arrays written in the format their
target's suffix names, compressed by a further suffix, read back as the same kind of value,
read by other libraries, on local files, on S3 (moto) and from Dask workers; mismatches and
missing libraries exit 2; fingerprints are stable across processes."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import textwrap

import pytest

from targetrun.serializers.make import serializer
from targetrun.serializers.compression import Compressed
from targetrun.testing import SerializerContract

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")
pq = pytest.importorskip("pyarrow.parquet")
zstandard = pytest.importorskip("zstandard")


def pandas_frame():
    return pd.DataFrame(
        {"day": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02"]), "amount": [1.5, 2.0, 3.25],
         "city": pd.Categorical(["paris", "lyon", "paris"]), "n": np.array([1, 2, 3], dtype="int32")},
        index=pd.Index([10, 20, 30], name="order_id"),
    )


def plain_frame():  # what csv and json can carry: the reader infers int64, float64 and str
    return pd.DataFrame({"n": [1, 2, 3], "amount": [1.5, 2.0, 3.25], "city": ["paris", "lyon", "paris"]})


POLARS = lambda: pl.DataFrame({"n": [1, 2], "city": ["paris", "lyon"]})  # noqa: E731
ARROW = lambda: pa.table({"n": [1, 2], "city": ["paris", "lyon"]})  # noqa: E731

CASES = {
    "parquet, pandas (dtypes and index kept)": ("parquet", pandas_frame, {"a": 1}),
    "parquet, polars": ('parquet {"frame":"polars"}', POLARS, [1, 2]),
    "parquet, arrow": ('parquet {"frame":"arrow"}', ARROW, "text"),
    "feather, pandas (dtypes and index kept)": ("feather", pandas_frame, {"a": 1}),
    "feather, polars": ('feather {"frame":"polars"}', POLARS, np.arange(2)),
    "feather, arrow": ('feather {"frame":"arrow"}', ARROW, {"a": 1}),
    "csv, pandas": ("csv", plain_frame, {"a": 1}),
    "csv with options": ('csv {"sep":";"}', plain_frame, {"a": 1}),
    "csv, polars": ('csv {"frame":"polars"}', POLARS, {"a": 1}),
    "csv, arrow": ('csv {"frame":"arrow"}', ARROW, {"a": 1}),
    "frame-json, pandas": ("frame-json", plain_frame, {"a": 1}),
    "frame-json, polars": ('frame-json {"frame":"polars"}', POLARS, ARROW()),
    "jsonl, pandas": ("jsonl", plain_frame, [{"a": 1}]),
    "jsonl, polars": ('jsonl {"frame":"polars"}', POLARS, {"a": 1}),
    "npy": ("npy", lambda: np.arange(12, dtype="float32").reshape(3, 4), [1, 2]),
    "npz": ("npz", lambda: {"x": np.arange(3), "y": np.eye(2)}, {"x": [1]}),
    "npy refuses object arrays": ("npy", lambda: np.arange(3), np.array([{}, None], dtype=object)),
    ".json by value: a DataFrame": ('by-suffix {"suffix":".json"}', plain_frame, np.arange(2)),
    ".json by value: a dict": ('by-suffix {"suffix":".json"}', lambda: {"a": [1, 2]}, np.arange(2)),
    "parquet+gz": ("parquet+gz", pandas_frame, {"a": 1}),
    "csv+bz2": ("csv+bz2", plain_frame, {"a": 1}),
    "npy+xz": ("npy+xz", lambda: np.arange(5), {"a": 1}),
    "json+zst": ("json+zst", lambda: {"a": [1, 2.5]}, {1, 2}),
    "feather+zst, polars": ('feather+zst {"frame":"polars"}', POLARS, {"a": 1}),
}


class TestFormats(SerializerContract):
    """Every built-in format (and compression) passes the contract plugins pass."""

    @pytest.fixture(params=list(CASES))
    def case(self, request):
        return CASES[request.param]

    @pytest.fixture
    def serializer(self, case):
        return serializer(case[0])

    @pytest.fixture
    def sample(self, case):
        return case[1]()

    @pytest.fixture
    def unrepresentable(self, case):
        return case[2]


def test_compression_keeps_the_trust_rule_and_refuses_what_it_cannot_read():
    assert serializer("pickle+gz").executes_code and serializer('by-suffix+gz {"suffix":".pkl"}').executes_code
    assert not serializer("parquet+zst").executes_code and not serializer('by-suffix+xz {"suffix":".json"}').executes_code
    from targetrun.serializers.base import SerializationError

    for codec in ("gz", "bz2", "xz", "zst"):
        with pytest.raises(SerializationError, match=f"not readable as {codec}-compressed json"):
            serializer(f"json+{codec}").load(io.BytesIO(b"plain, not compressed"))


def test_compressed_serializers_are_the_format_inside_the_codec(tmp_path):
    value = {"a": list(range(100))}
    for codec, opener in (("gz", gzip.open), ("bz2", bz2.open), ("xz", lzma.open)):
        path = tmp_path / f"v.json.{codec}"
        with open(path, "wb") as f:
            Compressed(serializer("json"), codec).dump(value, f)
        with opener(path, "rt") as f:
            assert json.load(f) == value
    with open(tmp_path / "v.json.zst", "wb") as f:
        Compressed(serializer("json"), "zst").dump(value, f)
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO((tmp_path / "v.json.zst").read_bytes())).read()
    assert json.loads(raw) == value


# -- end to end, local files ------------------------------------------------------------

STEPS = '''
import numpy as np, pandas as pd, polars as pl, pyarrow as pa
from pandas.testing import assert_frame_equal

def frame():
    return pd.DataFrame(
        {"day": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02"]), "amount": [1.5, 2.0, 3.25],
         "city": pd.Categorical(["paris", "lyon", "paris"]), "n": np.array([1, 2, 3], dtype="int32")},
        index=pd.Index([10, 20, 30], name="order_id"))

def plain():
    return pd.DataFrame({"n": [1, 2, 3], "amount": [1.5, 2.0, 3.25], "city": ["paris", "lyon", "paris"]})

def polars_frame():
    return pl.DataFrame({"n": [1, 2], "city": ["paris", "lyon"]})

def arrow_table():
    return pa.table({"n": [1, 2], "city": ["paris", "lyon"]})

def array():
    return np.arange(12, dtype="int16").reshape(3, 4)

def arrays():
    return {"x": np.arange(3), "y": np.eye(2)}

def a_dict():
    return {"rows": 3}

def check(pq, feather, arrow, csv, csv_semi, csvgz, js, jsl, jszst, pol, tab, npy, npz, d):
    for exact in (pq, feather, arrow):
        assert_frame_equal(exact, frame())  # dtypes (categorical, int32, datetime) and index kept
    for lossy in (csv, csv_semi, csvgz, js, jsl, jszst):
        assert_frame_equal(lossy, plain())
    assert isinstance(pol, pl.DataFrame) and pol.equals(polars_frame())
    assert isinstance(tab, pa.Table) and tab.equals(arrow_table())
    assert np.array_equal(npy, array()) and npy.dtype == np.int16
    assert set(npz) == {"x", "y"} and np.array_equal(npz["y"], np.eye(2))
    assert d == {"rows": 3}
    return "ok"
'''

PIPELINE = """
tasks:
  pq: {{run: steps:frame, target: '{base}/clean.parquet'}}
  feather: {{run: steps:frame, target: '{base}/clean.feather'}}
  arrow: {{run: steps:frame, target: '{base}/clean.arrow'}}
  csv: {{run: steps:plain, target: '{base}/plain.csv'}}
  csv_semi: {{run: steps:plain, target: '{base}/semi.csv', serializer: {{name: csv, options: {{sep: ";"}}}}}}
  csvgz: {{run: steps:plain, target: '{base}/plain.csv.gz'}}
  js: {{run: steps:plain, target: '{base}/plain.json'}}
  jsl: {{run: steps:plain, target: '{base}/plain.jsonl'}}
  jszst: {{run: steps:plain, target: '{base}/plain.json.zst'}}
  pol: {{run: steps:polars_frame, target: '{base}/polars.parquet'}}
  tab: {{run: steps:arrow_table, target: '{base}/table.feather'}}
  npy: {{run: steps:array, target: '{base}/a.npy.bz2'}}
  npz: {{run: steps:arrays, target: '{base}/b.npz'}}
  d: {{run: steps:a_dict, target: '{base}/d.json'}}
  check:
    run: steps:check
    needs: [pq, feather, arrow, csv, csv_semi, csvgz, js, jsl, jszst, pol, tab, npy, npz, d]
    target: '{base}/check.txt'
"""


def read_back_by_other_libraries(open_bytes):
    """What pandas and polars wrote, read by a different library (or none)."""
    expected = pandas_frame()
    table = pq.read_table(io.BytesIO(open_bytes("clean.parquet")))  # pyarrow reads pandas' parquet
    assert table.column("amount").to_pylist() == [1.5, 2.0, 3.25]
    assert table.to_pandas().index.tolist() == expected.index.tolist()
    import pyarrow.feather as feather

    assert feather.read_table(io.BytesIO(open_bytes("clean.arrow"))).num_rows == 3
    assert pl.read_parquet(io.BytesIO(open_bytes("clean.parquet")))["amount"].to_list() == [1.5, 2.0, 3.25]
    assert pl.read_csv(io.BytesIO(open_bytes("plain.csv")))["city"].to_list() == ["paris", "lyon", "paris"]
    assert open_bytes("semi.csv").decode().splitlines()[0] == "n;amount;city"
    assert gzip.decompress(open_bytes("plain.csv.gz")) == open_bytes("plain.csv")
    assert json.loads(open_bytes("plain.json"))[0] == {"n": 1, "amount": 1.5, "city": "paris"}
    assert [json.loads(line)["n"] for line in open_bytes("plain.jsonl").splitlines()] == [1, 2, 3]
    assert pd.read_parquet(io.BytesIO(open_bytes("polars.parquet")))["n"].tolist() == [1, 2]  # pandas reads polars'
    assert np.load(io.BytesIO(bz2.decompress(open_bytes("a.npy.bz2")))).shape == (3, 4)
    assert json.loads(open_bytes("d.json")) == {"rows": 3}


def test_tables_and_arrays_round_trip_through_their_formats(project):
    proj = project(PIPELINE.format(base="lake"), steps=STEPS)
    base = str(proj.root / "lake")
    result = proj.cli("run", "--json")
    assert result.code == 0, result.text
    recorded = {o["task"]: o["checkpoint"]["serializer"] for o in json.loads(result.out)["runs"][0]["tasks"]}
    # The reference recorded with each checkpoint is the concrete one, with what reading needs.
    assert recorded["js"] == "frame-json" and recorded["d"] == "json" and recorded["csvgz"] == "csv+gz"
    assert recorded["pol"] == 'parquet {"frame":"polars"}' and recorded["csv_semi"] == 'csv {"sep":";"}'
    assert recorded["tab"] == 'feather {"frame":"arrow"}' and recorded["npy"] == "npy+bz2"
    read_back_by_other_libraries(lambda name: (proj.root / "lake" / name).read_bytes())

    # A fresh run reads every upstream back from its checkpoint (not from memory).
    os.remove(os.path.join(base, "check.txt"))
    result = proj.cli("run")
    assert result.code == 0 and "ran      check" in result.out, result.text
    assert proj.cli("show", "pol").code == 0


def test_a_value_that_does_not_fit_its_target_is_exit_2_naming_task_type_and_formats(project, steps):
    proj = project("""
        tasks:
          stats: {run: steps:const, args: {value: {rows: 3}}, target: out/stats.parquet, max_retries: 3}
        """, steps=steps)
    result = proj.cli("run")
    assert result.code == 2, result.text
    assert "task 'stats' returned a dict" in result.out and "out/stats.parquet" in result.out
    assert "parquet takes a pandas DataFrame, a polars DataFrame or a pyarrow Table" in result.out
    assert "formats that take a dict" in result.out and "json (.json)" in result.out
    assert proj.counts() == {"const": 1}  # not retried: the same value would not fit either
    assert not proj.exists("out/stats.parquet")


def test_a_missing_library_is_exit_2_naming_the_extra(project, steps, tmp_path):
    blocked = tmp_path / "blocked"
    (blocked / "zstandard").mkdir(parents=True)
    (blocked / "zstandard" / "__init__.py").write_text("raise ImportError('zstandard is not installed here')\n")
    proj = project("tasks:\n  t: {run: steps:const, target: out/t.json.zst}\n", steps=steps)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), os.getcwd()])}
    result = subprocess.run([sys.executable, "-m", "targetrun", "run", "-f", str(proj.file)], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "needs the zstandard library" in result.stdout and "pip install 'targetrun[zstd]'" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_serializer_options_are_checked_when_the_file_is_validated(project, steps):
    proj = project("""
        tasks:
          t: {run: steps:const, target: out/t.csv, serializer: {name: csv, options: {delimiter: ";"}}}
        """, steps=steps)
    result = proj.cli("validate")
    assert result.code == 2 and "no option 'delimiter'" in result.err and "sep" in result.err, result.text
    proj.write("Pipelinefile.yaml", "tasks:\n  t: {run: steps:const, target: out/t.pq, serializer: parqet}\n")
    result = proj.cli("validate")
    assert result.code == 2 and "unknown serializer 'parqet'" in result.err and "parquet" in result.err, result.text


def test_fingerprints_of_tables_and_arrays_are_stable_across_processes(tmp_path):
    """An in-memory value's fingerprint is its content's, and the bytes a format writes
    are the same in every process (so a checkpoint's sha256 is too)."""
    probe = textwrap.dedent("""
        import hashlib, io, sys
        import numpy as np, pandas as pd, polars as pl, pyarrow as pa
        from targetrun.fingerprint import of_value
        from targetrun.serializers.make import serializer
        df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=pd.Index([3, 4], name="k"))
        values = [df, np.arange(6).reshape(2, 3), pl.DataFrame({"a": [1]}), pa.table({"a": [1]}), [df, {"x": df}]]
        print(*(of_value(v) for v in values))
        for ref in ("parquet", "feather", "csv+gz", "npy"):
            f = io.BytesIO()
            serializer(ref).dump(values[1] if ref == "npy" else df, f)
            print(hashlib.sha256(f.getvalue()).hexdigest())
    """)
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONHASHSEED": seed}) for seed in ("1", "2")]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    from targetrun.fingerprint import of_value

    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=pd.Index([3, 4], name="k"))
    assert of_value(df) == runs[0].stdout.split()[0]
    assert of_value(df) != of_value(df.assign(a=[1, 3])) and of_value(df) != of_value(df.set_axis([3, 5]))
    assert of_value(np.arange(3)) != of_value(np.arange(3, dtype="int32"))


def test_fingerprints_follow_content_not_memory_layout():
    """Equal tables pickle differently when pandas or numpy lay them out differently in
    memory; their fingerprints are the same, so a validator does not see a change."""
    import pickle

    from targetrun.fingerprint import of_value

    one_block = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
    two_blocks = pd.DataFrame({"a": [1, 2]})
    two_blocks["b"] = [3, 4]
    c_order = np.arange(6).reshape(2, 3)
    fortran = np.asfortranarray(c_order)
    assert pickle.dumps(one_block, protocol=4) != pickle.dumps(two_blocks, protocol=4)
    assert pickle.dumps(c_order, protocol=4) != pickle.dumps(fortran, protocol=4)
    assert of_value(one_block) == of_value(two_blocks) and of_value(c_order) == of_value(fortran)
    assert of_value({"x": [one_block]}) == of_value({"x": [two_blocks]})


# -- S3 and Dask ------------------------------------------------------------------------


def test_formats_on_s3_through_the_atomic_upload(project, s3):
    base = "s3://test-bucket/lake"
    proj = project(PIPELINE.format(base=base), steps=STEPS)
    result = proj.cli("run")
    assert result.code == 0, result.text
    read_back_by_other_libraries(lambda name: s3.cat_file(f"{base}/{name}"))
    assert not [k for k in s3.find("test-bucket") if ".staging" in k or ".tmp" in k]
    s3.rm_file(f"{base}/check.txt")
    result = proj.cli("run")  # downstream reads every format back from S3
    assert result.code == 0 and "ran      check" in result.out, result.text


@pytest.fixture(scope="module")
def dask_processes():
    import logging

    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    yield cluster
    cluster.close()


@pytest.mark.parametrize("workers", ["in-process", "processes"])
def test_formats_from_dask_workers(project, s3, s3_server, request, workers):
    """Worker processes write and read every format on S3 (their storage options come from
    the Pipelinefile: the test's fsspec config does not reach them)."""
    cluster = request.getfixturevalue("dask_cluster" if workers == "in-process" else "dask_processes")
    lake = f"s3://test-bucket/dask-{workers}"
    options = f"{{key: testing, secret: testing, client_kwargs: {{endpoint_url: '{s3_server.endpoint}'}}}}"
    header = f"results:\n  lake:\n    url: {lake}\n    options: {options}\ndefaults:\n  result: lake\ntasks:"
    proj = project(PIPELINE.format(base="data").replace("tasks:", header, 1), steps=STEPS)
    base = f"{lake}/data"
    result = proj.cli("run", "--scheduler", cluster.scheduler_address)
    assert result.code == 0, result.text
    read_back_by_other_libraries(lambda name: s3.cat_file(f"{base}/{name}"))


def test_an_external_parquet_on_s3_is_read_as_a_dataframe(project, s3):
    """A parquet file no run recorded (made by another tool) is data that cannot run code:
    downstream tasks read it without --trust, as a pandas DataFrame."""
    with s3.open("s3://test-bucket/external/orders.parquet", "wb") as f:
        pq.write_table(pa.table({"amount": [1.5, 2.5]}), f)
    proj = project("""
        tasks:
          orders: {run: steps:never, target: 's3://test-bucket/external/orders.parquet'}
          total: {run: steps:total, needs: [orders], target: 's3://test-bucket/total.json'}
        """, steps="def never(): raise AssertionError('the target exists')\n"
                   "def total(orders): return [type(orders).__name__, float(orders['amount'].sum())]\n")
    result = proj.cli("run")
    assert result.code == 0, result.text
    assert json.loads(s3.cat_file("s3://test-bucket/total.json")) == ["DataFrame", 4.0]


def test_reading_parquet_from_s3_spools_to_a_file_not_memory(project, s3, monkeypatch):
    """A large checkpoint is downloaded once, hashed on the way into a temporary file, and
    the format reads that file: read_value's buffer rolls over to disk past its limit."""
    import targetrun.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "SPOOL_IN_MEMORY", 1024)
    rolled = []
    real = checkpoints.tempfile.SpooledTemporaryFile

    class Watching(real):  # type: ignore[misc, valid-type]
        def rollover(self):
            rolled.append(True)
            super().rollover()

    monkeypatch.setattr(checkpoints.tempfile, "SpooledTemporaryFile", Watching)
    proj = project("""
        tasks:
          big: {run: steps:big, target: 's3://test-bucket/big.parquet'}
          use: {run: steps:use, needs: [big], target: 's3://test-bucket/use.json'}
        """, steps="import pandas as pd\n"
                   "def big(): return pd.DataFrame({'x': range(50_000)})\n"
                   "def use(big): return int(big['x'].sum())\n")
    assert proj.cli("run", "big").code == 0
    result = proj.cli("run", "use")
    assert result.code == 0, result.text
    assert json.loads(s3.cat_file("s3://test-bucket/use.json")) == sum(range(50_000)) and rolled
    assert pq.read_table(io.BytesIO(s3.cat_file("s3://test-bucket/big.parquet"))).num_rows == 50_000


# -- parquet checkpoints on a local disk: one read, hashed while it decodes ---------------


def local_checkpoint(tmp_path, value, ref="parquet"):
    """A real checkpoint written the way a worker writes one: staged while hashed, then
    committed. Returns the storage, the target and the record to check it against."""
    from targetrun.checkpoints import Expected
    from targetrun.engine.work import write_value
    from targetrun.storage.local import LocalStorage

    storage = LocalStorage()
    target = str(tmp_path / f"value.{ref.split()[0]}")
    staging = storage.staging_url(target, "t1")
    size, digest = write_value(storage, staging, value, ref, shown=target)
    storage.commit(staging, target)
    return storage, target, Expected(size, digest)


def test_a_local_parquet_checkpoint_is_read_once_into_memory_not_copied_into_a_spool(tmp_path, monkeypatch):
    """Parquet decodes from one in-memory buffer anyway, so a local checkpoint is read
    straight into it and hashed there: no spooled temporary copy of a file already on disk.
    A format that streams (json) still goes through the spool, which shows the watch works."""
    import targetrun.checkpoints as checkpoints
    from targetrun.checkpoints import read_value

    spooled = []
    real = checkpoints.tempfile.SpooledTemporaryFile

    class Watching(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            spooled.append(True)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(checkpoints.tempfile, "SpooledTemporaryFile", Watching)
    df = pd.DataFrame({"x": range(50_000), "y": [i / 4 for i in range(50_000)]})
    storage, target, expected = local_checkpoint(tmp_path, df)
    back = read_value(storage, target, "parquet", expected=expected, trust=False, task="t")
    pd.testing.assert_frame_equal(back, df)
    assert spooled == []
    storage, target, expected = local_checkpoint(tmp_path, {"a": 1}, "json")
    assert read_value(storage, target, "json", expected=expected, trust=False, task="t") == {"a": 1}
    assert spooled == [True]


def damage_decodable(path):
    """Change one stored float (2.5 -> 3.5) of an uncompressed parquet file in place: same
    size, and pyarrow still decodes it (only the sha256 can tell)."""
    with open(path, "rb") as f:
        data = f.read()
    old, new = np.float64(2.5).tobytes(), np.float64(3.5).tobytes()
    assert data.count(old) >= 1
    with open(path, "r+b") as f:
        f.seek(data.index(old))
        f.write(new)
    assert 3.5 in pq.read_table(path).column("amount").to_pylist()


@pytest.mark.parametrize("damage", ["same size and still decodes", "grown", "truncated"])
def test_a_local_parquet_checkpoint_changed_after_it_was_recorded_is_refused_even_if_it_decodes(tmp_path, damage):
    """The read that decodes while it hashes returns nothing from bytes that differ from the
    record: CorruptCheckpoint, whatever the decoder made of them (a decodable edit included),
    and a grown file is measured to its real size without being loaded whole."""
    from targetrun.checkpoints import CorruptCheckpoint, read_value

    df = pd.DataFrame({"amount": [1.25, 2.5] * 1000})
    storage, target, expected = local_checkpoint(tmp_path, df, 'parquet {"compression":"none"}')
    if damage == "same size and still decodes":
        damage_decodable(target)
        why = "its content is not what was written (sha256 differs)"
    elif damage == "grown":
        with open(target, "ab") as f:
            f.write(b"\0" * 3_000_000)
        why = f"it is {expected.size + 3_000_000:,} bytes, {expected.size:,} were written"
    else:
        os.truncate(target, expected.size - 1)
        why = f"it is {expected.size - 1:,} bytes, {expected.size:,} were written"
    with pytest.raises(CorruptCheckpoint) as refused:
        read_value(storage, target, 'parquet {"compression":"none"}', expected=expected, trust=True, task="t")
    assert refused.value.problem == why


def test_a_format_that_can_run_code_and_reads_whole_loads_nothing_before_the_check(tmp_path, monkeypatch):
    """Only a format that cannot run code decodes while the bytes are hashed. One that can
    (a plugin pickling whole files) gets the bytes in memory too, but its ``load`` is never
    called on bytes that differ from the record -- not even with --trust."""
    import pickle

    from targetrun.checkpoints import CorruptCheckpoint, read_value
    from targetrun.serializers.base import SERIALIZERS, Serializer

    loaded = []

    class WholePickle(Serializer):
        name = "whole-pickle"
        reads_whole = True  # executes_code stays True, as for any serializer that does not say

        def dump(self, value, f):
            f.write(pickle.dumps(value))

        def load(self, f):
            data = f.read()
            loaded.append(data)
            return pickle.loads(data)

    monkeypatch.setitem(SERIALIZERS._loaded, "whole-pickle", WholePickle)
    storage, target, expected = local_checkpoint(tmp_path, {"amount": 2.5}, "whole-pickle")
    assert read_value(storage, target, "whole-pickle", expected=expected, trust=False, task="t") == {"amount": 2.5}
    assert len(loaded) == 1
    with open(target, "rb") as f:
        data = f.read()
    with open(target, "wb") as f:
        f.write(pickle.dumps({"amount": 3.5}))  # same size, other content
    assert len(pickle.dumps({"amount": 3.5})) == len(data)
    with pytest.raises(CorruptCheckpoint, match="sha256 differs"):
        read_value(storage, target, "whole-pickle", expected=expected, trust=True, task="t")
    assert len(loaded) == 1
