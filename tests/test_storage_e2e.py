"""The same end-to-end scenarios on local disk, memory://, S3 (moto) and GCS (emulator).

One parametrised suite: cold run, second run all skipped, status --json, --force, and a
partial failure then a rerun that skips what was done. The S3 and GCS servers are real
servers on 127.0.0.1 started by the fixtures in tests/backends.py.
"""

from __future__ import annotations

import json
import uuid

import fsspec
import pytest

PIPELINE = """
name: e2e
results:
  lake:
    url: {url}
defaults:
  result: lake
tasks:
  numbers:
    run: steps:const
    args: {{value: [3, 1, 2], name: numbers}}
    target: raw/numbers.json
  words:
    shell: "printf 'b a c' > {{output}}"
    target: raw/words.txt
  report:
    run: steps:total
    needs: {{n: numbers, w: words}}
    args: {{name: report}}
    target: "out/report-{{today}}.pkl"
  size:
    shell: "wc -c < {{needs.numbers}} | tr -d ' ' > {{output}}"
    needs: [numbers]
    target: out/size.txt
  fragile:
    run: steps:flaky
    args: {{times: "{{params.failures}}", name: fragile}}
    target: out/fragile.json
params:
  failures: 0
"""

REPORT = '''
def total(name="total", **values):
    _log(name)
    return {"n": sum(values["n"]), "w": values["w"].split()}
'''


@pytest.fixture(params=["local", "memory", "s3", "gcs"])
def lake(request, tmp_path):
    kind = request.param
    if kind == "local":
        return str(tmp_path / "lake")
    if kind == "memory":
        return f"memory://e2e-{uuid.uuid4().hex}"
    request.getfixturevalue("s3" if kind == "s3" else "gcs")
    return f"{'s3' if kind == 's3' else 'gs'}://test-bucket/lake-{uuid.uuid4().hex[:8]}"


def read(url: str) -> bytes:
    with fsspec.open(url, "rb") as f:
        return f.read()


def states(result) -> dict[str, str]:
    return {t["task"]: t["state"] for t in json.loads(result.out)["tasks"]}


def test_end_to_end_on_every_storage(project, steps, lake):
    scenario(project(PIPELINE.format(url=lake), steps=steps + REPORT), lake)


def scenario(proj, lake: str, *executor: str) -> None:
    """Cold run, second run all skipped, status --json, --force: on any storage and executor."""
    first = proj.cli("run", "--json", "--date", "2026-11-01", *executor)
    assert first.code == 0, first.text
    assert set(states(first).values()) == {"succeeded"}
    assert json.loads(read(f"{lake}/raw/numbers.json")) == [3, 1, 2]
    assert read(f"{lake}/raw/words.txt") == b"b a c"
    assert read(f"{lake}/out/size.txt") == b"10\n"  # the shell task read a local copy of numbers

    second = proj.cli("run", "--json", "--date", "2026-11-01", *executor)
    assert second.code == 0 and states(second) == {"report": "skipped", "fragile": "skipped", "size": "skipped",
                                                    "numbers": "not needed", "words": "not needed"}

    status = json.loads(proj.cli("status", "--json", "--date", "2026-11-01").out)
    rows = {t["task"]: t for t in status["tasks"]}
    assert all(row["exists"] for row in rows.values()) and rows["words"]["size"] == 5
    assert status["would_run"] == []

    forced = proj.cli("run", "--json", "--date", "2026-11-01", "--force", "numbers", *executor)
    assert states(forced) == {"numbers": "succeeded", "words": "skipped", "report": "succeeded",
                              "size": "succeeded", "fragile": "skipped"}
    assert proj.counts() == {"numbers": 2, "report": 2, "fragile": 1}  # shell tasks do not log


def test_partial_failure_then_rerun(project, steps, lake):
    proj = project(PIPELINE.format(url=lake), steps=steps + REPORT)
    failed = proj.cli("run", "--json", "--keep-going", "-p", "failures=5", "--date", "2026-11-01")
    assert failed.code == 1
    assert states(failed) == {"numbers": "succeeded", "words": "succeeded", "report": "succeeded",
                              "size": "succeeded", "fragile": "failed"}
    fs, _, _ = fsspec.get_fs_token_paths(lake)
    assert not fs.exists(f"{lake}/out/fragile.json")
    rerun = proj.cli("run", "--json", "--date", "2026-11-01")
    assert rerun.code == 0, rerun.text
    assert states(rerun) == {"numbers": "not needed", "words": "not needed", "report": "skipped",
                             "size": "skipped", "fragile": "succeeded"}
