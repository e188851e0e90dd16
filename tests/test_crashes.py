"""SIGKILL at 20 moments spread over a run on local disk, at 12 on S3 (the same seams: each
kill there costs an S3 client's start-up, ~1.5 s).

The tasks write their checkpoints slowly (a pickle that pauses between chunks, a shell
command that writes line by line), so many of the kills land in the middle of a write.

After every kill: each target that exists is byte for byte what an undisturbed run makes
(nothing partial or corrupt) and has a record in the state store that vouches for those
bytes, and the next run completes (never asking for --trust) with exactly the undisturbed
outputs and no staging file left.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fsspec

from targetrun.store.rooted import RootedStore
from targetrun.store.sqlite import SqliteStore

KILLS = 20
TASKS = '''
import time

class Slow:
    """Pickling pauses here, so a checkpoint file grows over ~200 ms: kills land mid-write."""
    def __reduce__(self):
        time.sleep(0.005)
        return (str, ("s",))

    def __len__(self):  # like the "s" it unpickles to
        return 1

def gen(n):
    return [part for i in range(n) for part in (bytes([i % 256]) * 65536, Slow())]

def double(values):
    return [len(v) * 2 for v in values]

def summary(values, lines):
    return {"count": len(values), "total": sum(values), "lines": len(lines.splitlines())}
'''

PIPELINE = """
name: crash
results:
  lake: {lake}
defaults: {{result: lake}}
tasks:
  gen: {{run: jobs:gen, args: {{n: 40}}, target: out/gen.pkl}}
  double: {{run: jobs:double, needs: {{values: gen}}, target: out/double.json}}
  lines:
    shell: "for i in $(seq 60); do echo line $i; sleep 0.005; done > {{output}}"
    target: out/lines.txt
  summary: {{run: jobs:summary, needs: {{values: double, lines: lines}}, target: out/summary.json}}
  cached: {{run: jobs:gen, args: {{n: 2}}, cache_for: 1h}}
"""
TARGETS = ("out/gen.pkl", "out/double.json", "out/lines.txt", "out/summary.json")


def make(folder: Path, lake: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "jobs.py").write_text(TASKS)
    (folder / "Pipelinefile.yaml").write_text(textwrap.dedent(PIPELINE.format(lake=lake)))
    return folder


def run(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-q", "-f", str(folder / "Pipelinefile.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(process: subprocess.Popen[str]) -> None:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err


def outputs(base: str) -> dict[str, bytes]:
    found = {}
    for rel in TARGETS:
        try:
            with fsspec.open(f"{base}/{rel}", "rb") as f:
                found[rel] = f.read()
        except FileNotFoundError:
            pass
    return found


def store_answers(folder: Path, base: str, found: dict[str, bytes]) -> None:
    """The store opens and answers, and vouches for every target there is: its record (or
    the record prepared for it by a run killed just before committing) has its bytes."""
    vouches_for_every_target(RootedStore(SqliteStore(str(folder / ".targetrun/state.db")), str(folder), "crash"),
                             base, found)  # as targetrun opens it


def vouches_for_every_target(store: RootedStore, base: str, found: dict[str, bytes]) -> None:
    """:func:`store_answers` with ``store`` open (closed here), whichever store it is."""
    try:
        store.runs("crash")
        store.last_task_records("crash")
        store.list_cache("crash")
        for rel, data in found.items():
            location = f"{base}/{rel}"
            records = [store.checkpoint(location)] + [p.checkpoint for p in store.pending_writes(location)]
            vouched = {(r.size, r.content_hash) for r in records if r is not None}
            assert (len(data), hashlib.sha256(data).hexdigest()) in vouched, f"{rel} is at its target without a record"
    finally:
        store.close()


def no_staging(base: str) -> None:
    fs, path = fsspec.core.url_to_fs(base)
    fs.invalidate_cache()  # a listing cached by an earlier check would hide what is there now
    left = [name for name in fs.find(path) if ".targetrun-" in name.rsplit("/", 1)[-1]]
    assert left == [], f"staging files survived the next run: {left}"


def kill_and_recover(tmp_path: Path, lake_of, options: str = "", kills: int = KILLS) -> None:
    reference = make(tmp_path / "reference", lake_of("reference", options))
    began = time.monotonic()
    finish(run(reference))
    duration = time.monotonic() - began
    expected = outputs(lake_of("reference", ""))
    assert set(expected) == set(TARGETS)

    folder = make(tmp_path / "victim", lake_of("victim", options))
    base = lake_of("victim", "")
    for point in range(kills):
        process = run(folder)
        time.sleep(duration * (point + 0.5) / kills)
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
        found = outputs(base)
        for rel, data in found.items():
            assert data == expected[rel], f"kill {point}: {rel} is partial or corrupt"
        store_answers(folder, base, found)
        if point % 4 == 3:  # now and then, finish the run and start again from nothing
            finish(run(folder))  # exit 0: no --trust asked for the project's own pickles
            assert outputs(base) == expected
            no_staging(base)
            fs, path = fsspec.core.url_to_fs(base)
            fs.rm(f"{path}/out", recursive=True)
    finish(run(folder))
    assert outputs(base) == expected
    no_staging(base)


def test_sigkill_anywhere_on_local_disk(tmp_path):
    kill_and_recover(tmp_path, lambda name, _options: str(tmp_path / name / "lake"))


def test_sigkill_anywhere_on_s3(tmp_path, s3, s3_server):
    options = (f"{{url: 's3://test-bucket/{{name}}', options: {{key: testing, secret: testing, "
               f"client_kwargs: {{endpoint_url: '{s3_server.endpoint}'}}}}}}")

    def lake(name: str, with_options: str) -> str:
        return with_options.replace("{name}", name) if with_options else f"s3://test-bucket/{name}"

    kill_and_recover(tmp_path, lake, options, kills=12)

