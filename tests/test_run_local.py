"""End-to-end `targetrun run` / `status` on local storage, through the CLI in process."""

from __future__ import annotations

import json
import sqlite3

import pytest

CHAIN = """
name: chain
tasks:
  a:
    run: steps:const
    args: {value: 1, name: a}
    target: out/a.json
  b:
    run: steps:inc
    needs: {x: a}
    args: {name: b}
    target: out/b.json
  c:
    run: steps:inc
    needs: {x: b}
    args: {name: c}
    target: out/c.json
"""


@pytest.fixture
def chain(project, steps):
    return project(CHAIN, steps=steps)


def test_cold_run_then_everything_skipped(chain):
    first = chain.cli("run")
    assert first.code == 0, first.text
    assert chain.counts() == {"a": 1, "b": 1, "c": 1}
    assert json.loads(chain.read("out/c.json")) == 3
    second = chain.cli("run")
    assert second.code == 0
    assert chain.counts() == {"a": 1, "b": 1, "c": 1}
    assert "skipped  c" in second.out and "target exists" in second.out
    assert chain.cli("status", "--check").code == 0


def test_deleted_intermediate_is_not_rebuilt_for_the_sink(chain):
    chain.cli("run")
    (chain.root / "out/b.json").unlink()
    assert chain.cli("run").code == 0
    assert chain.counts() == {"a": 1, "b": 1, "c": 1}  # demand-driven: c exists, b not needed
    assert not chain.exists("out/b.json")
    assert chain.cli("run", "b").code == 0
    assert chain.counts() == {"a": 1, "b": 2, "c": 1}  # a exists: read, not rerun
    assert json.loads(chain.read("out/b.json")) == 2


def test_force_reruns_the_task_and_requested_dependents_only(project, steps):
    proj = project(CHAIN + """
  side:
    run: steps:inc
    needs: {x: a}
    args: {name: side}
    target: out/side.json
""", steps=steps)
    assert proj.cli("run").code == 0
    result = proj.cli("run", "c", "--force", "a")
    assert result.code == 0, result.text
    assert proj.counts() == {"a": 2, "b": 2, "c": 2, "side": 1}  # side needs a but was not requested
    assert proj.cli("run", "--force", "b").code == 0
    assert proj.counts() == {"a": 2, "b": 3, "c": 3, "side": 1}  # a's target exists: read, not rerun


def test_force_all(chain):
    chain.cli("run")
    assert chain.cli("run", "--force-all").code == 0
    assert chain.counts() == {"a": 2, "b": 2, "c": 2}


def test_dry_run_prints_decisions_and_runs_nothing(chain):
    chain.cli("run")
    (chain.root / "out/c.json").unlink()
    (chain.root / "out/b.json").unlink()
    result = chain.cli("run", "--dry-run")
    assert result.code == 0
    assert chain.counts() == {"a": 1, "b": 1, "c": 1}
    assert "would run c" in " ".join(result.out.split()) and "target missing" in result.out
    assert "skipped  a" in result.out


def test_json_summary(chain):
    result = chain.cli("run", "--json")
    doc = json.loads(result.out)
    assert doc["ok"] is True and doc["exit_code"] == 0
    states = {t["task"]: t["state"] for t in doc["tasks"]}
    assert states == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    c = next(t for t in doc["tasks"] if t["task"] == "c")
    assert c["checkpoint"]["size"] == 2 and len(c["checkpoint"]["sha256"]) == 64
    again = json.loads(chain.cli("run", "--json").out)
    assert [t["reason"] for t in again["tasks"] if t["task"] == "c"] == ["target exists"]
    assert {t["state"] for t in again["tasks"]} == {"skipped", "not needed"}


def test_status_reports_reasons(chain):
    chain.cli("run")
    (chain.root / "out/c.json").unlink()
    status = chain.cli("status", "--json")
    doc = json.loads(status.out)
    rows = {t["task"]: t for t in doc["tasks"]}
    assert rows["c"]["state"] == "will run: target missing"
    assert rows["b"]["state"] == "target exists" and rows["b"]["size"] == 2
    assert rows["a"]["state"].startswith("not needed")
    assert doc["would_run"] == ["c"]
    assert chain.cli("status", "--check").code == 1
    plain = chain.cli("status")
    assert "will run: target missing" in plain.out and "\x1b[" not in plain.out


def test_state_store_records_checkpoints(chain):
    chain.cli("run")
    db = sqlite3.connect(chain.root / ".targetrun/state.db")
    rows = db.execute("SELECT task, record FROM checkpoints ORDER BY task").fetchall()
    db.close()
    records = [(task, json.loads(r)) for task, r in rows]
    assert [(t, r["size"], len(r["hash"]), r["serializer"]) for t, r in records] == [
        ("a", 2, 64, "json"), ("b", 2, 64, "json"), ("c", 2, 64, "json")]
    assert all(r["location"].endswith(f"out/{t}.json") and r["duration"] >= 0 for t, r in records)


def test_failure_blocks_dependents_and_exits_1(project, steps):
    proj = project("""
    tasks:
      bad:
        run: steps:fail
        target: out/bad.txt
      after:
        run: steps:inc
        needs: {x: bad}
        target: out/after.json
      other:
        run: steps:const
        args: {name: other}
        target: out/other.json
    """, steps=steps)
    result = proj.cli("run", "--keep-going")
    assert result.code == 1
    assert "FAILED   bad" in result.out and "RuntimeError: this task always fails" in result.out
    assert "blocked  after" in result.out
    assert proj.exists("out/other.json") and not proj.exists("out/bad.txt")
    assert "Traceback" in result.out  # the task's own traceback, indented under the failure


def test_without_keep_going_nothing_new_starts_after_a_failure(project, steps):
    proj = project("""
    tasks:
      bad:
        run: steps:fail
        target: out/bad.txt
      other:
        run: steps:const
        args: {name: other}
        target: out/other.json
    """, steps=steps)
    result = proj.cli("run", "--json")
    assert result.code == 1
    states = {t["task"]: t["state"] for t in json.loads(result.out)["tasks"]}
    assert states == {"bad": "failed", "other": "cancelled"}


def test_retries_keep_inputs_and_succeed(project, steps):
    proj = project("""
    tasks:
      src:
        run: steps:const
        args: {value: 5, name: src}
        target: out/src.json
      flaky:
        run: steps:flaky
        args: {times: 2}
        max_retries: 2
        retry_delay: 0s
        target: out/flaky.json
    """, steps=steps)
    result = proj.cli("run")
    assert result.code == 0, result.text
    assert proj.counts() == {"src": 1, "flaky": 3}
    assert [line.split()[0] for line in result.out.splitlines()].count("retry") == 2


def test_retries_exhausted_fail(project, steps):
    proj = project("""
    tasks:
      flaky:
        run: steps:flaky
        args: {times: 5}
        max_retries: 1
        target: out/flaky.json
    """, steps=steps)
    result = proj.cli("run")
    assert result.code == 1
    assert proj.counts() == {"flaky": 2}
    assert "after 2 attempts" in result.out


def test_task_without_target_always_runs_and_is_checkpointed(project, steps):
    proj = project("""
    tasks:
      a:
        run: steps:const
        args: {value: 7, name: a}
    """, steps=steps)
    assert proj.cli("run").code == 0
    assert proj.cli("run").code == 0
    assert proj.counts() == {"a": 2}
    assert proj.cli("show", "a").out.strip() == "7"
    location = proj.cli("show", "a", "--location").out.strip()
    assert "/.targetrun/results/" in location and location.endswith("/a.pkl")


def test_show_prints_a_target_value(chain):
    chain.cli("run")
    assert chain.cli("show", "c").out.strip() == "3"
    assert chain.cli("show", "c", "--location").out.strip() == str(chain.root / "out/c.json")
    missing = chain.cli("show", "nope")
    assert missing.code == 2 and "unknown task 'nope'" in missing.err


def test_unknown_task_name_did_you_mean(chain):
    result = chain.cli("run", "bb")
    assert result.code == 2
    assert "did you mean 'b'" in result.err and "Traceback" not in result.err


def test_callable_problems_are_found_before_anything_runs(project, steps):
    proj = project("""
    tasks:
      ok:
        run: steps:const
        args: {name: ok}
        target: out/ok.json
      broken:
        run: steps:inc
        args: {y: 1}
        needs: {x: ok}
        target: out/broken.json
    """, steps=steps)
    result = proj.cli("run")
    assert result.code == 2
    assert "line 7" in result.err and "has no parameter 'y' (from args)" in result.err
    assert proj.counts() == {}
    proj.write("Pipelinefile.yaml", "tasks:\n  x:\n    run: nosuchmodule:f\n")
    result = proj.cli("run")
    assert result.code == 2 and "line 3" in result.err and "nosuchmodule" in result.err


def test_same_module_name_in_two_pipelines(project):
    one = project("tasks:\n  t:\n    run: mod:f\n    target: out.txt\n", mod="def f():\n    return 'one'\n")
    two = project("tasks:\n  t:\n    run: mod:f\n    target: out.txt\n", mod="def f():\n    return 'two'\n")
    assert one.cli("run").code == 0 and two.cli("run").code == 0
    assert one.read("out.txt") == "one" and two.read("out.txt") == "two"


def test_graph_formats(chain):
    text = chain.cli("graph").out
    assert text.splitlines()[0].startswith("c") and "└── b" in text and "a  -> out/a.json" in text
    assert '"a" -> "b";' in chain.cli("graph", "--format", "dot").out
    assert "flowchart LR" in chain.cli("graph", "--format", "mermaid").out


def test_validate(chain):
    result = chain.cli("validate")
    assert result.code == 0 and "ok, 3 tasks" in result.out


def test_pipelinefile_found_in_parent_folder(chain, monkeypatch):
    sub = chain.root / "deep" / "er"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    from targetrun.cli import invoke
    import io

    out, err = io.StringIO(), io.StringIO()
    assert invoke(["run", "-q"], out, err) == 0, err.getvalue()
    assert chain.exists("out/c.json")


def test_no_pipelinefile_is_a_usage_error(tmp_path, monkeypatch):
    from targetrun.cli import invoke
    import io

    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    assert invoke(["run"], io.StringIO(), err) == 2
    assert "no Pipelinefile.yaml" in err.getvalue()


def test_edited_pipelinefile_is_reloaded(chain):
    chain.cli("run")
    text = chain.file.read_text().replace("value: 1", "value: 10").replace("out/a.json", "out/a10.json")
    chain.file.write_text(text)
    assert chain.cli("run", "a").code == 0
    assert json.loads(chain.read("out/a10.json")) == 10


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_values_flow_between_tasks_on_pools(chain, executor):
    result = chain.cli("run", "-j", "2", "--executor", executor)
    assert result.code == 0, result.text
    assert json.loads(chain.read("out/c.json")) == 3


def test_serializer_precedence(project, steps):
    proj = project("""
    defaults:
      serializer: pickle
    tasks:
      t:
        run: steps:text
        target: out/t.txt
      j:
        run: steps:const
        target: out/j.json
      p:
        run: steps:const
        target: out/p.data
      own:
        run: steps:const
        serializer: json
        target: out/own.data
    """, steps=steps)
    assert proj.cli("run").code == 0
    assert proj.read("out/t.txt") == "hello"  # the suffix beats defaults
    assert json.loads(proj.read("out/j.json")) == 1
    assert (proj.root / "out/p.data").read_bytes().startswith(b"\x80")  # no suffix rule: the default
    assert json.loads(proj.read("out/own.data")) == 1  # the task's own key beats everything


def test_inline_results_live_in_the_state_store(project, steps):
    proj = project("""
    tasks:
      small:
        run: steps:const
        args: {value: {"a": [1, 2]}, name: small}
        result: inline
        target: small.json
      big:
        run: steps:text
        args: {value: "{params.blob}", name: big}
        result: inline
      after:
        run: steps:total
        needs: {x: small}
        args: {name: after}
        target: out/after.json
    params:
      blob: x
    """, steps=steps.replace("return sum(values.values())", "return len(values['x']['a'])"))
    assert proj.cli("run", "after").code == 0
    assert not proj.exists("small.json")  # it lives in the store, not on disk
    assert json.loads(proj.read("out/after.json")) == 2
    assert proj.cli("show", "small").out.strip() == json.dumps({"a": [1, 2]}, indent=2)
    again = proj.cli("run", "after", "--force", "after")
    assert again.code == 0 and "skipped  small        target exists" in again.out  # the inline target exists
    too_big = proj.cli("run", "big", "-p", "blob=" + "y" * 70_000)
    assert too_big.code == 2 and "the most `result: inline` keeps" in too_big.out  # a value that does not fit: exit 2


def test_task_output_goes_to_log_files(project):
    proj = project("""
    tasks:
      talk:
        run: chatty:talk
        target: out/talk.txt
      fails:
        run: chatty:boom
        target: out/boom.txt
      sh:
        shell: "echo to-stderr >&2; echo result"
        target: out/sh.txt
    """, chatty='''
import sys

def talk():
    print("hello from the task")
    print("warning!", file=sys.stderr)
    return "done"

def boom():
    print("about to fail")
    raise ValueError("nope")
''')
    result = proj.cli("run", "--keep-going")
    assert result.code == 1
    assert "hello from the task" not in result.out  # captured, not mixed into the run's output
    log = proj.cli("logs", "talk")
    assert log.code == 0 and "hello from the task" in log.out and "warning!" in log.out
    failed = proj.cli("logs", "fails").out
    assert "about to fail" in failed and "ValueError: nope" in failed and "attempt 1: failed" in failed
    assert "to-stderr" in proj.cli("logs", "sh").out and proj.read("out/sh.txt") == "result\n"
    missing = proj.cli("logs", "nope")
    assert missing.code == 2 and "unknown task" in missing.err


def test_parallel_tasks_keep_their_own_output(project):
    lines = ["tasks:"] + [f"  t{i}: {{run: chatty:talk, args: {{me: t{i}}}, target: out/t{i}.txt}}" for i in range(4)]
    proj = project("\n".join(lines) + "\n", chatty='''
import time

def talk(me):
    for n in range(5):
        print(me, n)
        time.sleep(0.01)
    return me
''')
    assert proj.cli("run", "-j", "4", "--executor", "threads").code == 0
    for i in range(4):
        log = proj.cli("logs", f"t{i}").out
        assert [line.split()[0] for line in log.splitlines()[2:]] == [f"t{i}"] * 5
