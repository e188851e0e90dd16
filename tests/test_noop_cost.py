"""What a no-op costs, held by what it does rather than by a clock: which reporters see
each event, how often `status` decodes a checkpoint record, what a cached Pipelinefile
load and a no-op run import. Each of these was a measured part of the 10,000-task no-op
(benchmarks/bench_vs_make.py); the figures themselves are the benchmarks' business."""

from __future__ import annotations

import json
import sqlite3
import tracemalloc

import pytest

from targetrun import model
from targetrun.events import Broadcast, RecordingReporter, RunStarted, TaskSkipped
from targetrun.model import Action, Checkpoint, Decision, Reason
from targetrun.pipelinefile import load_pipeline, spec_cache_file
from targetrun.store import sqlite as sqlite_store
from targetrun.store.base import Recorded, StoreOptions

from tests.test_imports import loaded_after

SKIP = Decision(Action.SKIP, Reason.TARGET_EXISTS)


class _OnlyRunStarted(RecordingReporter):
    def wants(self, kind: type) -> bool:
        return kind is RunStarted


def test_broadcast_sends_a_reporter_only_the_kinds_it_wants():
    everything, picky = RecordingReporter(), _OnlyRunStarted()
    fan = Broadcast(everything, picky)
    for event in (RunStarted("r", "p", (), 2, 0), TaskSkipped("a", SKIP), TaskSkipped("b", SKIP)):
        fan.handle(event)
    assert [type(e) for e in everything.events] == [RunStarted, TaskSkipped, TaskSkipped]  # no `wants`: all
    assert [type(e) for e in picky.events] == [RunStarted]
    assert fan.wants(TaskSkipped) and Broadcast(picky).wants(RunStarted) and not Broadcast(picky).wants(TaskSkipped)


def _many(n: int) -> str:
    return "tasks:\n" + "".join(f"  t{i}: {{shell: 'echo {i} > {{output}}', target: out/t{i}.txt}}\n" for i in range(n))


def test_status_decodes_each_checkpoint_record_at_most_once(project, monkeypatch):
    """It used to read every record twice: once to plan, once more to say what each
    output was "made with" -- which only records keeping parameters or a date can say,
    and still do."""
    proj = project("params: {city: berlin}\n" + _many(30) +
                   "  fetch: {shell: 'echo {params.city} > {output}', target: out/data.txt}\n")
    assert proj.cli("run", "-q").code == 0
    decoded: list[object] = []
    real = sqlite_store.checkpoint_of  # every record read becomes a Checkpoint here

    def counting(doc: object) -> Checkpoint:
        decoded.append(doc)
        return real(doc)

    monkeypatch.setattr(sqlite_store, "checkpoint_of", counting)
    status = proj.cli("status", "-p", "city=paris")
    assert status.code == 0 and "0 of 31 tasks would run" in status.out, status.out + status.err
    assert "(made with city=berlin)" in status.out
    assert len(decoded) <= 31 + 1  # each record once, and the one that kept a parameter again


def test_status_of_unchanged_targets_decodes_no_checkpoint_record(project, monkeypatch):
    """Status judges every existing target for staleness; a record made by today's code
    that keeps no parameters, inputs or deps cannot be stale, and the store says so
    without decoding it. A changed command is still found, decoded and said."""
    proj = project("tasks:\n" + "".join(f"  t{i}: {{shell: 'echo {i} > {{output}}', target: out/t{i}.txt}}\n"
                                        for i in range(30)))
    assert proj.cli("run", "-q").code == 0
    decoded: list[object] = []
    real = sqlite_store.checkpoint_of

    def counting(doc: object) -> Checkpoint:
        decoded.append(doc)
        return real(doc)

    monkeypatch.setattr(sqlite_store, "checkpoint_of", counting)
    status = proj.cli("status")
    assert status.code == 0 and "0 of 30 tasks would run" in status.out and "stale" not in status.out
    assert decoded == []
    proj.file.write_text(proj.file.read_text().replace("echo 7 >", "echo seven >"))
    status = proj.cli("status")
    assert status.code == 0 and "0 of 30 tasks would run" in status.out
    assert [line for line in status.out.splitlines() if "stale" in line] == \
        [line for line in status.out.splitlines() if line.startswith("t7 ")]
    assert "(stale: code changed — command)" in status.out and len(decoded) == 1


def test_the_store_judges_records_as_the_python_rule_does(tmp_path, capsys):
    """What SQLite decides without decoding (json_extract) agrees with may_differ, the
    rule every other store applies, on records as odd as a store may hold."""
    from targetrun.model import StaleKind
    from targetrun.store.base import may_differ

    code = {"code": {"shell": "shell:1"}}
    store = _store_with(tmp_path, {
        "/p/same": _record("/p/same", **code, inputs={}, params={}),
        "/p/same-older": _record("/p/same-older", **code),  # no inputs or params kept
        "/p/empty-made": _record("/p/empty-made", **code, made_with={}, made_for=""),
        "/p/null-deps": _record("/p/null-deps", **code, deps=None),
        "/p/spaced": '{"task": "t", "location": "/p/spaced", "serializer": "text", "size": 1, "hash": "h", '
                     '"run_id": "r", "written_at": 1.0, "code": {"shell": "shell:1"}, "inputs": { }}',
        "/p/code": _record("/p/code", code={"shell": "shell:2"}),
        "/p/no-code": _record("/p/no-code"),
        "/p/with": _record("/p/with", **code, made_with={"city": "berlin"}),
        "/p/for": _record("/p/for", **code, made_for="2026-11-01"),
        "/p/inputs": _record("/p/inputs", **code, inputs={"x": "1"}),
        "/p/deps": _record("/p/deps", **code, deps={}),
        "/p/broken": "{not json",
    })
    try:
        every = ["/p/same", "/p/same-older", "/p/empty-made", "/p/null-deps", "/p/spaced", "/p/code", "/p/no-code",
                 "/p/with", "/p/for", "/p/inputs", "/p/deps"]
        for kinds in (frozenset(StaleKind), frozenset((StaleKind.CODE,)), frozenset((StaleKind.CODE, StaleKind.DEPS))):
            found = store.checkpoints_that_differ([*every, "/p/broken", "/p/none"], '{"shell":"shell:1"}', kinds)
            assert sorted(found) == sorted(every)  # the malformed record is left out, as by checkpoints()
            records = store.checkpoints(every)
            assert {loc for loc, r in found.items() if r is not None} == \
                {loc for loc, r in records.items() if may_differ(r, '{"shell":"shell:1"}', kinds)}, kinds
            assert {loc: r for loc, r in found.items() if r is not None} == \
                {loc: r for loc, r in records.items() if found[loc] is not None}
            # each location judged by its own code, in one query: the same answer
            codes = dict.fromkeys([*every, "/p/broken", "/p/none"], '{"shell":"shell:1"}')
            codes["/p/code"] = '{"shell":"shell:2"}'
            each = store.checkpoints_that_differ_each(codes, kinds)
            assert each == {**found, "/p/code": None}, kinds  # its own code is the same: nothing else kept
            assert each == sqlite_store.StateStore.checkpoints_that_differ_each(store, codes, kinds), kinds
        assert {loc for loc, r in found.items() if r is not None} == {"/p/code", "/p/no-code", "/p/deps"}
        assert "unreadable" in capsys.readouterr().err
    finally:
        store.close()


def test_status_asks_the_store_again_only_about_records_planning_did_not_read(project, monkeypatch):
    """Planning read (or found nothing to read in) the record of every target it looked
    at; "made with" takes what it needs from the plan and asks the store only about the
    targets planning did not read, in the one lookup that also tells the recorded sizes
    planning did not decode (here, none: `up`, which nothing needs, was read to judge
    `down` against it)."""
    proj = project("params: {city: berlin}\n" + _many(20) +
                   "  fetch: {shell: 'echo {params.city} > {output}', target: out/data.txt}\n"
                   "  up: {shell: 'echo {params.city} > {output}', target: out/up.txt}\n"
                   "  down: {shell: 'cat {needs.up} > {output}', needs: [up], target: out/down.txt}\n")
    assert proj.cli("run", "-q").code == 0
    asked: list[list[str]] = []
    real = sqlite_store.SqliteStore.recorded_for_status

    def counting(self: sqlite_store.SqliteStore, locations: list[str]) -> dict[str, Recorded]:
        asked.append(locations)
        return real(self, locations)

    monkeypatch.setattr(sqlite_store.SqliteStore, "recorded_for_status", counting)
    status = proj.cli("status", "-p", "city=paris")
    assert status.code == 0 and "0 of 23 tasks would run" in status.out, status.out + status.err
    made = {line.split()[0] for line in status.out.splitlines() if "made with city=berlin" in line}
    assert made == {"fetch", "up", "down"}, status.out
    # one lookup: the targets whose size planning did not decode (their records keep
    # nothing to judge); not `fetch` or `down`, nor `up`, which nothing needs: planning
    # read it to judge `down` against it
    assert len(asked) == 1
    assert sorted(asked[0]) == sorted(f"{{root}}/out/t{i}.txt" for i in range(20))


def test_status_asks_the_store_once_about_a_record_planning_did_not_read(project, redis_url):
    """`status` asked the store twice about each existing target planning did not read --
    what it was made with, then the size its record says was written -- two round trips
    (MGETs on Redis) reading the same records. One question answers both; each record is
    asked for once to describe it, and the answers are the same (made with, recorded,
    rewritten)."""
    import threading

    import redis

    proj = project(f"cache: {redis_url}\nparams: {{city: berlin}}\n" + _many(3) +
                   "  up: {shell: 'echo {params.city} > {output}', target: out/up.txt}\n"
                   "  down: {shell: 'cat {needs.up} > {output}', needs: [up], target: out/down.txt}\n"
                   "  mid: {shell: 'echo 1 > {output}', target: out/mid.txt}\n"
                   "  end: {shell: 'cat {needs.mid} > {output}', needs: [mid], target: out/end.txt}\n")
    assert proj.cli("run", "-q").code == 0
    (proj.root / "out" / "mid.txt").write_text("rewritten by hand\n")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    commands: list[str] = []
    try:
        with client.monitor() as monitor:
            def watch() -> None:
                for seen in monitor.listen():
                    if seen["command"] == "ECHO status-done":
                        return
                    commands.append(seen["command"])

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            status = proj.cli("status", "-p", "city=paris")
            client.echo("status-done")
            watcher.join(10)
    finally:
        client.close()
    assert not watcher.is_alive()
    assert status.code == 0, status.out + status.err
    rows = {line.split()[0]: line for line in status.out.splitlines() if line.strip()}
    assert "made with city=berlin" in rows["up"] and "made with city=berlin" in rows["down"], status.out
    assert "made with" not in rows["mid"] and "changed since it was recorded" in rows["mid"], status.out
    lookups = [[key.strip('"') for key in command.split()[1:]] for command in commands if command.startswith("MGET")]
    # `mid`, which nothing needs: read by planning (with `up`: to judge `end` against it)
    # and by the staleness judge; described from what planning read. It was asked for five
    # times (alone to judge `end`; made with; again by its absolute path, as a record older
    # than root-marked keys, since it kept no parameters; then its size)
    assert sum("targetrun:ckpt:{root}/out/mid.txt" in keys for keys in lookups) == 2, lookups
    # 12 round trips were 4: planning reads the requested targets' records (five commands,
    # once each: was one lookup per command) and the upstreams it does not walk; status
    # describes what planning did not read, and judges what nothing needs
    assert len(lookups) == 4, lookups
    assert not [key for keys in lookups for key in keys if str(proj.root) in key], lookups

def test_status_of_a_chain_reads_the_records_nothing_needs_in_one_lookup(project, monkeypatch):
    """Only the last task of a chain is needed; every target above it is judged as if it
    were asked for, against its upstream's recorded output. Those records come from the
    one lookup of the targets nothing needs, not from one lookup per upstream -- and an
    upstream rebuilt into other bytes still makes the task below it stale."""
    chain = "".join(f"  t{i}: {{shell: 'cat {{needs.t{i - 1}}} > {{output}}', needs: [t{i - 1}], target: out/t{i}.txt}}\n"
                    for i in range(1, 40))
    proj = project("tasks:\n  t0: {shell: 'echo 0 > {output}', target: out/t0.txt}\n" + chain)
    assert proj.cli("run", "-q").code == 0
    proj.file.write_text(proj.file.read_text().replace("echo 0 >", "echo 1 >"))
    assert proj.cli("run", "-q", "--force", "t0", "t0").code == 0  # t0 alone, into new bytes
    lookups = _count_record_lookups(monkeypatch)
    status = proj.cli("status")
    assert status.code == 0 and "0 of 40 tasks would run" in status.out, status.out + status.err
    stale = [line.split()[0] for line in status.out.splitlines() if "stale" in line]
    assert stale == ["t1"] and "(stale: inputs changed — t0)" in status.out
    assert len(lookups) <= 3, lookups  # not one per task


def test_status_reads_the_records_of_upstreams_it_does_not_walk_in_one_lookup(project, monkeypatch):
    """Each needed task whose target exists is judged against its upstream's recorded
    output; an upstream the walk does not look at (Make: the target is there) was read
    from the store one at a time -- 5,000 round trips for 5,000 pairs on Redis. A wave's
    upstreams are read in one lookup, and what they say still holds (an upstream rebuilt
    into other bytes makes the task below it stale)."""
    pairs = "".join(f"  a{i}: {{shell: 'echo {i} > {{output}}', target: out/a{i}.txt}}\n"
                    f"  b{i}: {{shell: 'cat {{needs.a{i}}} > {{output}}', needs: [a{i}], target: out/b{i}.txt}}\n"
                    for i in range(15))
    proj = project("tasks:\n" + pairs)
    assert proj.cli("run", "-q").code == 0
    proj.file.write_text(proj.file.read_text().replace("echo 3 >", "echo 33 >"))
    assert proj.cli("run", "-q", "--force", "a3", "a3").code == 0  # a3 alone, into new bytes
    lookups = _count_record_lookups(monkeypatch)
    status = proj.cli("status")
    assert status.code == 0 and "0 of 30 tasks would run" in status.out, status.out + status.err
    stale = [line.split()[0] for line in status.out.splitlines() if "stale" in line]
    assert stale == ["b3"] and "(stale: inputs changed — a3)" in status.out, status.out
    assert len(lookups) <= 3, lookups  # not one per pair


def _count_record_lookups(monkeypatch) -> list[int]:
    """How many locations each later lookup of checkpoint records asks the real SQLite store for."""
    lookups: list[int] = []
    real = sqlite_store.SqliteStore.checkpoints

    def counting(self: sqlite_store.SqliteStore, locations: list[str]) -> dict[str, Checkpoint]:
        lookups.append(len(locations))
        return real(self, locations)

    monkeypatch.setattr(sqlite_store.SqliteStore, "checkpoints", counting)
    return lookups


def _store_with(tmp_path, records: dict[str, str]) -> sqlite_store.SqliteStore:
    store = sqlite_store.SqliteStore.open(str(tmp_path / "state.db"), StoreOptions())
    store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.executemany("INSERT INTO checkpoints (location, task, run_id, record) VALUES (?, ?, ?, ?)",
                       [(loc, "t", "r", text) for loc, text in records.items()])
    return sqlite_store.SqliteStore.open(str(tmp_path / "state.db"), StoreOptions())


def _record(location: str, **extra: object) -> str:
    return json.dumps({"task": "t", "location": location, "serializer": "text", "size": 1, "hash": "h",
                       "run_id": "r", "written_at": 1.0, **extra})


def test_the_store_selects_the_records_that_kept_parameters_or_a_date(tmp_path, capsys):
    store = _store_with(tmp_path, {
        "/p/plain": _record("/p/plain"),
        "/p/with": _record("/p/with", made_with={"city": "berlin"}),
        "/p/for": _record("/p/for", made_for="2026-11-01"),
        "/p/empty": _record("/p/empty", made_with={}),  # as some older runs wrote it: says nothing
        "/p/broken": "{not json",
    })
    try:
        found = store.checkpoints_made_with(["/p/plain", "/p/with", "/p/for", "/p/empty", "/p/broken", "/p/none"])
        assert sorted(found) == ["/p/for", "/p/with"]
        assert found["/p/with"].made_with == {"city": "berlin"} and found["/p/for"].made_for == "2026-11-01"
        assert "unreadable" in capsys.readouterr().err  # a malformed record is reported, as by checkpoints()
        # the generic rule (any other store) agrees
        generic = sqlite_store.StateStore.checkpoints_made_with(store, ["/p/plain", "/p/with", "/p/for", "/p/empty"])
        assert sorted(generic) == ["/p/for", "/p/with"]
    finally:
        store.close()


def test_the_store_answers_status_once_even_about_malformed_records(tmp_path, capsys):
    """The one question ``status`` asks reads a record that is not JSON, or whose size is
    not a whole number, as :meth:`checkpoints` does: the first reported and left out, the
    second decoded -- and agrees with the generic rule (any other store)."""
    store = _store_with(tmp_path, {
        "/p/plain": _record("/p/plain"),
        "/p/folder": _record("/p/folder", hash=""),
        "/p/with": _record("/p/with", made_with={"city": "berlin"}),
        "/p/empty": _record("/p/empty", made_with={}),
        "/p/float": _record("/p/float", size=2.0),
        "/p/broken": "{not json",
    })
    try:
        asked = ["/p/plain", "/p/folder", "/p/with", "/p/empty", "/p/float", "/p/broken", "/p/none"]
        found = store.recorded_for_status(asked)
        assert {loc: r.size for loc, r in found.items()} == {"/p/plain": 1, "/p/folder": None, "/p/with": 1,
                                                             "/p/empty": 1, "/p/float": 2}
        assert [loc for loc, r in found.items() if r.made is not None] == ["/p/with"]
        assert found["/p/with"].made is not None and found["/p/with"].made.made_with == {"city": "berlin"}
        assert "unreadable" in capsys.readouterr().err
        assert found == sqlite_store.StateStore.recorded_for_status(store, asked)
    finally:
        store.close()


class _CountingJson:
    """The json module, counting the documents decoded."""

    def __init__(self) -> None:
        self.loads_calls = 0

    def loads(self, text: str | bytes) -> object:
        self.loads_calls += 1
        return json.loads(text)

    def __getattr__(self, name: str) -> object:
        return getattr(json, name)


def test_records_read_together_are_decoded_in_one_piece(tmp_path, capsys, monkeypatch):
    """Records are decoded in one piece when all are well formed; a malformed one among
    them sends the batch row by row, so it alone is reported and left out."""
    good = {f"/p/{i}": _record(f"/p/{i}", inputs={"x": str(i)}) for i in range(5)}
    store = _store_with(tmp_path, {**good, "/p/two": _record("/p/two") + "," + _record("/p/extra")})
    counting = _CountingJson()
    monkeypatch.setattr(sqlite_store, "json", counting)
    try:
        assert sorted(store.checkpoints(list(good))) == sorted(good)
        assert counting.loads_calls == 1
        assert {loc: c.inputs for loc, c in store.checkpoints(list(good)).items()} == \
            {loc: {"x": loc.rsplit("/", 1)[1]} for loc in good}
        assert capsys.readouterr().err == ""
        mixed = store.checkpoints([*good, "/p/two"])
        assert sorted(mixed) == sorted(good)  # the record holding two objects is not read as one
        assert "unreadable" in capsys.readouterr().err
    finally:
        store.close()


def test_a_cached_pipelinefile_is_rebuilt_without_running_the_model_constructors(tmp_path, monkeypatch):
    """The cache holds only data: loading it fills the frozen dataclasses as their own
    constructors would (same values, defaults filled in) without calling them."""
    path = tmp_path / "Pipelinefile.yaml"
    path.write_text("params: {city: berlin, when: 2026-11-01}\n"
                    "results: {store: {url: out, options: {k: v}}}\n"
                    "tasks:\n"
                    "  a: {run: 'm:f', args: {x: [1, 2], y: {z: null}}, target: a.json, cache_for: 1h}\n"
                    "  b: {shell: 'cat {needs.a}', needs: [a], target: b.txt, result: store, max_retries: 2}\n")
    parsed = load_pipeline(str(path))  # parses, validates, writes the cache

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise AssertionError("a constructor ran while loading the spec cache")

    monkeypatch.setattr(model.TaskSpec, "__init__", refuse)
    monkeypatch.setattr(model.PipelineSpec, "__init__", refuse)
    cached = load_pipeline(str(path))
    monkeypatch.undo()
    assert cached == parsed and cached is not parsed
    assert cached.tasks["b"].checkpoint is True and cached.tasks["b"].deps == ()  # defaults filled in
    # a cache file of another shape (a field the class lacks, a required one missing) is a miss
    cache = spec_cache_file(str(path))
    with open(cache, "rb") as f:
        written = json.loads(f.read())
    table = written["tasks"]  # the tasks as one table: a column per field some task sets, a row per task
    assert table["\0"] == "TaskTable" and table["fields"][0] == "name" and len(table["rows"]) == 2
    for change in ("unknown field", "missing name", "short row", "twice the same task", "task as an object"):
        doc = json.loads(json.dumps(written))
        table = doc["tasks"]
        if change == "unknown field":
            table["fields"].append("surprise")
            for row in table["rows"]:
                row.append(1)
        elif change == "missing name":
            table["fields"].pop(0)
            for row in table["rows"]:
                row.pop(0)
        elif change == "short row":
            table["rows"][1].pop()
        elif change == "twice the same task":
            table["rows"][1][0] = table["rows"][0][0]
        else:
            doc["tasks"] = {"a": {"\0": "TaskSpec", "surprise": 1}}
        with open(cache, "w") as f:
            json.dump(doc, f)
        assert load_pipeline(str(path)) == parsed, change  # parsed again, not built from the odd file


def test_a_local_no_op_run_does_not_import_package_metadata(tmp_path):
    """importlib.metadata (with email, zipfile, ...) is for the `code` validator's library
    versions; a run that judges no code does not pay for it."""
    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  a:\n    shell: echo hi\n    target: a.txt\n")
    (tmp_path / "a.txt").write_text("hi\n")
    run = (f"from targetrun.cli import invoke\nimport io, sys\n"
           f"assert invoke(['run', '-q', '-f', {str(tmp_path / 'Pipelinefile.yaml')!r}], io.StringIO(), sys.stderr) == 0")
    loaded_after(run, ())  # the first run validates and caches the spec
    assert loaded_after(run, ("email", "zipfile")) == []


def test_the_console_script_pauses_collection_while_planning_and_resumes_it_for_tasks(tmp_path):
    """The garbage collector is paused from start-up through planning (everything made
    then stays alive) and running again before any task runs: a Python task's module is
    imported while it is paused, its function runs with it on."""
    import subprocess
    import sys

    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  probe: {run: 'probe:seen', target: seen.json}\n")
    (tmp_path / "probe.py").write_text("import gc\nPAUSED_AT_IMPORT = not gc.isenabled()\n\n"
                                       "def seen():\n    return [PAUSED_AT_IMPORT, gc.isenabled()]\n")
    done = subprocess.run([sys.executable, "-m", "targetrun", "run", "-q"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "seen.json").read_text()) == [True, True]


def test_the_cli_called_in_process_leaves_the_callers_collector_alone(project):
    """Only the console script pauses and freezes the collector: a program (or a test) that
    calls the CLI in-process keeps collecting its own cycles."""
    import gc

    proj = project("tasks:\n  a: {shell: 'echo a > {output}', target: out/a.txt}\n")
    frozen = gc.get_freeze_count()
    assert proj.cli("run").code == 0 and proj.cli("status").code == 0 and proj.cli("run", "--dry-run").code == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen


@pytest.mark.parametrize("cached", [True, False], ids=["from the spec cache", "parsed"])
def test_a_loaded_pipeline_keeps_a_few_hundred_bytes_a_task(tmp_path, cached):
    """Issue 13: 100,000 tasks in under 300 MB. What a task's spec keeps all run long is its
    slotted TaskSpec, its name, target and line: tasks share their command, their empty
    args and the offsets of their keys' lines (about 1 KB a task before)."""
    n = 2000
    path = tmp_path / "Pipelinefile.yaml"
    path.write_text("defaults: {serializer: text}\ntasks:\n" + "".join(
        f"  t{i}:\n    shell: 'echo 0 > {{output}}'\n    target: out/t{i}.txt\n" for i in range(n)))
    load_pipeline(str(path))  # writes the cache
    tracemalloc.start()
    try:
        spec = load_pipeline(str(path), use_cache=cached)
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(spec.tasks) == n and spec.tasks["t7"].line_of("target") == 3 * 7 + 5
    assert kept / n < 600, f"{kept / n:.0f} bytes a task"  # ~1,000 before, ~400 now
