"""The check right after a checkpoint's write (``engine/work.py`` ``_verify``) on a real
object store: the write lands, then the object is gone before anyone reads it back.

How that happens for real: another client deletes it (a cleanup job, a lifecycle rule, a
second pipeline sharing the prefix). The test puts that other client in front of the real
moto S3 server, with the timing made certain: the moment the staged object's write has
been answered, and before the next request for it (the check) is served, the other client
sends its own DELETE (its own s3fs client, over HTTP). Neither targetrun's s3fs client nor
moto is changed; the object is really gone.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any
from urllib.parse import unquote

import pytest

STEPS = '''
def made():
    return {"value": 41}

def user(made):
    return made["value"] + 1
'''


class DeletesWhatWasJustWritten:
    """WSGI wrapper of the S3 server: each staged checkpoint (``.targetrun-`` in its key)
    that a PUT wrote is deleted by another client just before the next request about it."""

    def __init__(self, app: Any, endpoint: str) -> None:
        import fsspec

        self.app = app
        self.other = fsspec.filesystem("s3", key="testing", secret="testing", skip_instance_cache=True,
                                       client_kwargs={"endpoint_url": endpoint}, use_listings_cache=False)
        self.written: set[str] = set()
        self.active = True  # False: the other client has stopped
        self.deleted: list[str] = []
        self.seen: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        self.seen.append((method, path))
        if method != "PUT" and path in self.written:
            self.written.discard(path)
            self.other.rm_file(unquote(path).lstrip("/"))
            self.deleted.append(path)
        answer = self.app(environ, start_response)
        if self.active and method == "PUT" and ".targetrun-" in path and not environ.get("QUERY_STRING"):
            self.written.add(path)
        return answer


@pytest.fixture
def deleter(s3, s3_server, monkeypatch):
    server = s3_server._server  # the werkzeug server in front of moto's app (tests/backends.py)
    wrapper = DeletesWhatWasJustWritten(server.app, s3_server.endpoint)
    monkeypatch.setattr(server, "app", wrapper)
    return wrapper


@pytest.mark.parametrize("kind", ["python", "shell"])
def test_a_checkpoint_gone_right_after_its_write_fails_the_task_unrecorded(project, s3, deleter, kind):
    task = ("run: steps:made\n        target: made.json" if kind == "python"
            else 'shell: "echo 41 > {output}"\n        target: made.txt')
    target = "made.json" if kind == "python" else "made.txt"
    proj = project(f"""
    results:
      lake: {{url: "s3://test-bucket/verify"}}
    defaults: {{result: lake}}
    tasks:
      made:
        {task}
    """, steps=STEPS)
    result = proj.cli("run", "--json")
    assert deleter.deleted, deleter.seen  # the other client did delete a staged write
    assert result.code == 3, result.text
    assert f"the checkpoint for s3://test-bucket/verify/{target} is missing right after it was written" in result.text
    assert "Traceback" not in result.text
    document = json.loads(result.out)
    assert [(t["task"], t["state"]) for t in document["tasks"]] == [("made", "failed")]
    assert s3.find("test-bucket") == []  # nothing at the target, nor beside it
    db = sqlite3.connect(proj.root / ".targetrun" / "state.db")
    try:  # no record (nor a prepared one) vouches for what is not there
        assert [db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("checkpoints", "pending")] == [0, 0]
    finally:
        db.close()
    status = json.loads(proj.cli("status", "--json").out)
    assert [(t["task"], t["state"], t["reason"]) for t in status["runs"][0]["tasks"]] == \
        [("made", "will run: target missing", "target missing")]  # no record vouches for a target that is not there
    # The other client has stopped: the next run writes, checks and records it.
    deleter.active = False
    rerun = proj.cli("run", "--json")
    assert rerun.code == 0, rerun.text
    assert [t["state"] for t in json.loads(rerun.out)["tasks"]] == ["succeeded"]
    assert proj.cli("status", "--check").code == 0
