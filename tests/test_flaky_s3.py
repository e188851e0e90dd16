"""An S3 server that answers some requests with 500/503, or too slowly, in the middle of a run.

The real moto S3 app, served on its own port behind a small WSGI layer that, for the
requests a rule matches (method, and a pattern over the decoded path and query), answers
an S3 error or sleeps first. Nothing in targetrun, s3fs or botocore is replaced.

After each fault: a distinct exit code (3), a one-paragraph message without a traceback
or a credential, no partial object at a target, no target re-run or overwritten because a
request failed ("cannot tell" is never "missing"), and the next run, once the server
answers again, skips what exists and finishes the rest.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Project


@dataclass
class Rule:
    method: str
    pattern: str
    status: int = 503
    sleep: float = 0.0
    times: int | None = None  # None: every matching request
    hits: int = 0


class Faults:
    """The rules a FlakyS3 server applies, changed by the test (or a task) while it runs."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.lock = threading.Lock()

    def add(self, method: str, pattern: str, **kwargs: Any) -> Rule:
        rule = Rule(method, pattern, **kwargs)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def match(self, method: str, target: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.method == method and re.search(rule.pattern, target):
                    if rule.times is not None and rule.hits >= rule.times:
                        continue
                    rule.hits += 1
                    return rule
        return None

    def wrap(self, app: Any) -> Any:
        def flaky(environ: dict[str, Any], start_response: Any) -> Any:
            target = urllib.parse.unquote(environ.get("PATH_INFO", "")) + "?" + environ.get("QUERY_STRING", "")
            if environ.get("HTTP_X_AMZ_COPY_SOURCE"):
                target += " copy-from:" + urllib.parse.unquote(environ["HTTP_X_AMZ_COPY_SOURCE"])
            rule = self.match(environ["REQUEST_METHOD"], target)
            if rule is not None:
                if rule.sleep:
                    time.sleep(rule.sleep)
                if rule.status:
                    code = {503: "SlowDown", 403: "AccessDenied"}.get(rule.status, "InternalError")
                    body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                            "<Message>injected fault</Message></Error>").encode()
                    start_response(f"{rule.status} Injected", [("Content-Type", "application/xml"),
                                                               ("Content-Length", str(len(body)))])
                    return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]
            return app(environ, start_response)

        return flaky


class FlakyS3:
    def __init__(self) -> None:
        self.faults = Faults()
        self.endpoint = ""
        self._server: Any = None

    def start(self) -> None:
        from moto.moto_server.threaded_moto_server import MotoRequestHandler
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = self.faults.wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def flaky(s3: Any) -> Iterator[FlakyS3]:
    """A second door onto the S3 server's objects (moto's store is one per process), with faults."""
    server = FlakyS3()
    server.start()
    yield server
    server.stop()


TASKS = '''
import os

def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")

def make(name, **upstream):
    _log(name)
    return name + ":" + ",".join(sorted(str(v) for v in upstream.values()))

FAULT = None  # set by the test: called by `fault`

def fault(name="fault", **upstream):
    _log(name)
    if FAULT is not None:
        FAULT()
    return name + ":" + ",".join(sorted(str(v) for v in upstream.values()))
'''

SECRET = "sEcReT-never-shown-7781"


def pipeline(endpoint: str) -> str:
    return f"""
    results:
      lake:
        url: s3://test-bucket/flaky
        options:
          key: AKIAFLAKYKEY00000000
          secret: "${{LAKE_SECRET}}"
          client_kwargs: {{endpoint_url: "{endpoint}"}}
          config_kwargs: {{connect_timeout: 1, read_timeout: 1, retries: {{max_attempts: 2, mode: standard}}}}
    defaults: {{result: lake, serializer: json}}
    tasks:
      a: {{run: flakytasks:make, args: {{name: a}}, target: a.json}}
      b: {{run: flakytasks:make, args: {{name: b}}, needs: [a], target: b.json}}
      c: {{run: flakytasks:fault, args: {{name: c}}, needs: [b], target: c.json}}
      d: {{run: flakytasks:make, args: {{name: d}}, needs: [c], target: d.json}}
    """


@pytest.fixture
def lake(project: Callable[..., Project], flaky: FlakyS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.setenv("LAKE_SECRET", SECRET)
    proj = project(pipeline(flaky.endpoint), flakytasks=TASKS)
    monkeypatch.syspath_prepend(str(proj.root))
    monkeypatch.delitem(sys.modules, "flakytasks", raising=False)
    yield proj


def objects(s3: Any) -> dict[str, bytes]:
    found = s3.find("test-bucket/flaky", withdirs=False)
    return {k.split("/flaky/", 1)[1]: s3.cat_file(k) for k in found}


def states(result: Any) -> dict[str, str]:
    return {t["task"]: t["state"] for t in json.loads(result.out)["tasks"]}


def assert_one_paragraph(text: str, says: str) -> None:
    """The error (on stderr, or a failed task's line in the table) says ``says``, on one
    line, without a traceback or a credential."""
    assert "Traceback" not in text, text
    assert SECRET not in text and "AKIAFLAKYKEY" not in text, text
    lines = [line for line in text.splitlines() if says in line]
    assert lines, text


def assert_clean_recovery(lake: Project, s3: Any, flaky: FlakyS3) -> None:
    """Once the server answers again, a plain run re-runs nothing that exists and finishes."""
    flaky.faults.clear()
    before, there = dict(lake.counts()), {k: v for k, v in objects(s3).items() if ".targetrun-" not in k}
    rerun = lake.cli("run", "--json")
    assert rerun.code == 0, rerun.text
    done = objects(s3)
    assert set(done) == {"a.json", "b.json", "c.json", "d.json"}, done  # and no staging file left
    assert {k: done[k] for k in there} == there  # what existed is not overwritten
    assert {t: lake.counts().get(t) for t in "abcd" if f"{t}.json" in there} == \
        {t: before.get(t) for t in "abcd" if f"{t}.json" in there}  # ... nor re-run
    again = lake.cli("run", "--json")
    assert again.code == 0 and states(again)["d"] == "skipped", again.text


@pytest.mark.parametrize("method, where, says", [
    ("HEAD", r"/flaky/c\.json\?", "cannot tell whether s3://test-bucket/flaky/c.json exists"),
    ("GET", r"list-type=2", "cannot tell whether s3://test-bucket/flaky"),  # every listing
    ("PUT", r"/flaky/\.c\.json\.targetrun-", "cannot write s3://test-bucket/flaky/c.json"),  # c's staged upload
    ("PUT", r"copy-from:.*\.c\.json\.targetrun-",  # the server-side copy that commits it
     "cannot move the new checkpoint onto s3://test-bucket/flaky/c.json"),
])
def test_a_request_that_keeps_failing_is_exit_3_and_the_next_run_recovers(lake, s3, flaky, method, where, says):
    flaky.faults.add(method, where, status=503)
    result = lake.cli("run")
    assert result.code == 3, result.text
    assert_one_paragraph(result.text, says)
    assert not any(".targetrun-" in k for k in objects(s3) if k == "c.json")
    assert "d.json" not in objects(s3)
    assert_clean_recovery(lake, s3, flaky)


def test_a_head_that_fails_is_never_missing_the_target_is_not_rerun_or_overwritten(lake, s3, flaky):
    status = 500  # 503 (retried by s3fs with a back-off) is in the test above
    assert lake.cli("run").code == 0
    made = objects(s3)
    calls = lake.counts()
    s3.rm_file("test-bucket/flaky/d.json")  # d must run: its need c is checked
    lake.write("Pipelinefile.yaml", pipeline(flaky.endpoint).replace("needs: [c], target: d.json",
                                                                      "needs: [c], target: d.json, cache_for: 1h"))
    flaky.faults.add("HEAD", r"/flaky/c\.json\?", status=status)
    flaky.faults.add("GET", r"list-type=2", status=status)
    for command in (["status"], ["run"], ["run", "d"]):
        result = lake.cli(*command)
        assert result.code == 3, (command, result.text)
        assert_one_paragraph(result.err, "cannot tell whether s3://test-bucket/flaky")
    assert lake.counts() == calls  # nothing ran
    assert objects(s3) == {k: v for k, v in made.items() if k != "d.json"}


def test_requests_that_fail_once_are_retried_and_the_run_succeeds(lake, s3, flaky):
    for method, where in (("HEAD", r"/flaky/"), ("GET", r"list-type=2"), ("PUT", r"/flaky/\."),
                          ("PUT", r"copy-from:"), ("DELETE", r"/flaky/")):
        flaky.faults.add(method, where, status=503, times=1)
    result = lake.cli("run", "--json")
    assert result.code == 0, result.text
    assert set(objects(s3)) == {"a.json", "b.json", "c.json", "d.json"}
    assert all(rule.hits == 1 for rule in flaky.faults.rules), [(r.method, r.pattern, r.hits) for r in flaky.faults.rules]


def test_a_server_too_slow_to_answer_is_exit_3_not_missing(lake, s3, flaky):
    assert lake.cli("run").code == 0
    calls = lake.counts()
    # A shorter wait and one attempt a request (s3fs still retries each a few times): the
    # same verdict as the shared settings give, in a quarter of the time.
    pipelinefile = lake.root / "Pipelinefile.yaml"
    pipelinefile.write_text(pipelinefile.read_text().replace(
        "read_timeout: 1, retries: {max_attempts: 2,", "read_timeout: 0.4, retries: {max_attempts: 1,"))
    flaky.faults.add("HEAD", r"/flaky/", status=0, sleep=1.0)
    flaky.faults.add("GET", r"list-type=2", status=0, sleep=1.0)
    started = time.monotonic()
    result = lake.cli("run")
    assert result.code == 3, result.text
    assert_one_paragraph(result.err, "cannot tell whether s3://test-bucket/flaky")
    assert time.monotonic() - started < 60
    assert lake.counts() == calls
    assert_clean_recovery(lake, s3, flaky)


def test_the_server_fails_while_the_run_is_in_the_middle(lake, s3, flaky, monkeypatch):
    """c's task turns every request into a 500: c's checkpoint cannot be written, d never
    runs; a and b stay, trusted; the next run skips them."""
    import flakytasks as tasks

    monkeypatch.setattr(tasks, "FAULT", lambda: [flaky.faults.add(m, r".", status=500)
                                                 for m in ("GET", "HEAD", "PUT", "POST", "DELETE")])
    result = lake.cli("run")
    assert result.code == 3, result.text
    assert_one_paragraph(result.text, "s3://test-bucket/flaky/c.json")
    assert set(objects(s3)) == {"a.json", "b.json"}
    monkeypatch.setattr(tasks, "FAULT", None)
    flaky.faults.clear()
    rerun = lake.cli("run", "--json")
    assert rerun.code == 0, rerun.text
    assert states(rerun) == {"a": "not needed", "b": "skipped", "c": "succeeded", "d": "succeeded"}
    assert lake.counts() == {"a": 1, "b": 1, "c": 2, "d": 1}


def test_the_staging_copy_that_cannot_be_deleted_after_the_commit(lake, s3, flaky):
    """The commit on S3 is a copy then a delete of the staged key; the delete keeps failing.
    The target holds the new checkpoint, its prepared record vouches for it: the next run
    finishes the write (records it, removes the staged key) instead of running c again."""
    flaky.faults.add("DELETE", r"/flaky/\.c\.json\.targetrun-", status=500)
    result = lake.cli("run")
    assert result.code == 3, result.text
    assert_one_paragraph(result.text, "the new checkpoint is at s3://test-bucket/flaky/c.json, but its staged copy")
    made = objects(s3)
    assert "c.json" in made and any(".c.json.targetrun-" in k for k in made), made
    flaky.faults.clear()
    rerun = lake.cli("run", "--json")
    assert rerun.code == 0, rerun.text
    assert states(rerun)["c"] in ("skipped", "not needed"), rerun.out
    assert lake.counts()["c"] == 1
    assert set(objects(s3)) == {"a.json", "b.json", "c.json", "d.json"}
    assert objects(s3)["c.json"] == made["c.json"]
