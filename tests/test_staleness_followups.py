"""Gaps the deps and parameter staleness work left (DESIGN.md "Staleness", §3's status
categories), each through the CLI in-process:

1. a task whose declared dep is missing: ``status``, ``run --dry-run`` and their JSON say
   what ``run`` then does (it fails, exit 2), from the one decision both make; a dep that
   another task makes is either ordered (that task is upstream) or refused, never a race;
2. a parameter used only in a templated dep is a parameter the task uses (``made_with``);
3. a remote dep in a bucket that does not exist is "cannot tell" (exit 3), never missing.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from targetrun.engine.decide import Facts, decide, fails_for_missing_deps
from targetrun.model import CacheEntry, CachePolicy, Checkpoint, Reason, Validator
from tests.conftest import Project
from tests.test_staleness_deps import PIPELINE

FETCH = PIPELINE  # one task with deps and a deps validator, as tests/test_staleness_deps.py writes it

AFTER = """
  after:
    shell: "echo after > {output}"
    needs: [fetch]
    target: out/after.txt
"""


def put(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def rows(done_out: str) -> dict[str, dict[str, object]]:
    return {row["task"]: row for row in json.loads(done_out)["tasks"]}


# -- 1. a missing dep: predicted as run does it ---------------------------------------------


def test_status_and_dry_run_say_a_task_with_a_missing_dep_will_fail_as_run_then_does(project):
    proj = project(FETCH.format(deps='["data/nope.csv"]') + AFTER)
    said = "will fail: dep data/nope.csv is missing"

    status = proj.cli("status")
    assert status.code == 0 and said in status.out, status.text
    table = rows(proj.cli("status", "--json").out)
    assert table["fetch"]["state"] == said and table["fetch"]["reason"] == "dep missing", table["fetch"]
    assert table["fetch"]["action"] == "run"  # in the run's set: it is taken up, and fails there
    blocked = "will not run: 'fetch' will fail (dep data/nope.csv is missing)"
    assert table["after"]["state"] == blocked and table["after"]["reason"] == "upstream will fail", table["after"]
    assert proj.cli("status", "--check").code == 1  # not satisfied

    dry = proj.cli("run", "--dry-run")
    assert dry.code == 0 and said in dry.text, dry.text
    planned = rows(proj.cli("run", "--dry-run", "--json").out)
    assert planned["fetch"]["decision"] == said and planned["fetch"]["reason"] == "dep missing", planned["fetch"]
    assert planned["after"]["decision"] == blocked, planned["after"]

    done = proj.cli("run", "--json")
    assert done.code == 2, done.text
    ran = rows(done.out)
    assert ran["fetch"]["state"] == "failed" and ran["after"]["state"] == "upstream failed", ran
    assert "dep data/nope.csv is missing: nothing is there and no task makes it" in ran["fetch"]["error"]
    assert ran["fetch"]["decision"] == said and ran["after"]["decision"] == blocked  # the verdicts status showed
    assert not proj.exists("out/fetch.txt") and not proj.exists("out/after.txt")


def test_a_missing_dep_of_a_task_whose_target_exists_is_only_stale(project):
    """Make does not remake a target whose prerequisite vanished... it stops; targetrun keeps
    the target (the dep is not needed to keep it) and says it is stale -- nothing runs."""
    proj = project(FETCH.format(deps='["data/a.csv"]').replace("    cache_validator: [deps]\n", ""))
    put(proj.root, "data/a.csv", "a\n")
    assert proj.cli("run").code == 0
    (proj.root / "data/a.csv").unlink()
    table = rows(proj.cli("status", "--json").out)
    assert table["fetch"]["reason"] == "target exists", table
    assert proj.cli("status", "--check").code == 0
    assert proj.cli("run").code == 0


def test_a_glob_dep_matching_nothing_is_not_predicted_to_fail(project):
    proj = project(FETCH.format(deps='["conf/*.ini"]'))
    table = rows(proj.cli("status", "--json").out)
    assert table["fetch"]["state"] == "will run: target missing", table
    assert proj.cli("run").code == 0


def test_a_dep_that_appears_is_found_by_the_next_status(project):
    proj = project(FETCH.format(deps='["data/a.csv"]'))
    assert rows(proj.cli("status", "--json").out)["fetch"]["reason"] == "dep missing"
    put(proj.root, "data/a.csv", "a\n")
    assert rows(proj.cli("status", "--json").out)["fetch"]["state"] == "will run: target missing"
    assert proj.cli("run").code == 0


def test_a_forced_task_with_a_missing_dep_is_predicted_to_fail_too(project):
    proj = project(FETCH.format(deps='["data/a.csv"]'))
    put(proj.root, "data/a.csv", "a\n")
    assert proj.cli("run").code == 0
    (proj.root / "data/a.csv").unlink()
    planned = rows(proj.cli("run", "--dry-run", "--json", "--force", "fetch").out)
    assert planned["fetch"]["reason"] == "dep missing", planned
    assert proj.cli("run", "--force", "fetch").code == 2


def test_a_dep_that_appears_before_its_task_is_due_lets_it_run(project):
    """Planning said it would fail; an upstream task put the file there meanwhile (not as
    its target: nothing could tell beforehand). The run asks again when the task is due."""
    proj = project("""
name: appears
tasks:
  prepare:
    shell: "mkdir -p data && echo a > data/a.csv && echo done > {output}"
    target: out/prepare.txt
  fetch:
    shell: "cat data/a.csv > {output}"
    target: out/fetch.txt
    needs: [prepare]
    deps: ["data/a.csv"]
""")
    assert rows(proj.cli("status", "--json").out)["fetch"]["reason"] == "dep missing"
    done = proj.cli("run", "--json")
    assert done.code == 0, done.text
    fetch = rows(done.out)["fetch"]
    assert fetch["state"] == "succeeded" and fetch["decision"] == "will run: deps changed (dep data/a.csv appeared since planning)", fetch
    assert proj.read("out/fetch.txt") == "a\n"



NOW, HOUR, T = 1_800_000_000.0, 3600.0, "/out/t.json"


def _entry(written_at: float) -> CacheEntry:
    return CacheEntry("k", "v", "p", "t", Checkpoint("t", "/c/v", "json", 2, "ab", "r", written_at), written_at + HOUR)


def test_missing_deps_turn_every_run_into_a_failure_and_keep_every_skip() -> None:
    """The rule alone, over each kind of fact: a task kept needs none of its deps; one that
    runs -- forced, expired, missing, code that does not parse -- fails instead."""
    cases = [Facts(None, T, True, NOW, forced=Reason.FORCED), Facts(None, T, True, NOW), Facts(None, T, False, NOW),
             Facts(None, None, True, NOW), Facts(None, None, False, NOW),
             Facts(CachePolicy(float("inf"), Validator.NEVER_USE), T, True, NOW),
             Facts(CachePolicy(HOUR), T, True, NOW, mtime=NOW - 60), Facts(CachePolicy(HOUR), T, True, NOW),
             Facts(CachePolicy(HOUR), None, False, NOW, entries=(_entry(NOW - 60),)),
             Facts(CachePolicy(HOUR), None, False, NOW, entries=(_entry(NOW - 2 * HOUR),))]
    for facts in cases:
        before, kept = decide(facts)
        after = fails_for_missing_deps(before, ("data/x.csv",))
        if before.runs:
            assert (after.reason, after.detail) == (Reason.DEPS_MISSING, "dep data/x.csv is missing")
            assert after.describe() == "will fail: dep data/x.csv is missing"
            assert fails_for_missing_deps(after, ()).describe() == \
                "will run: deps changed (dep data/x.csv appeared since planning)"
        else:
            assert after == before and (kept is None or before.reason is Reason.CACHE_HIT), facts


# -- 1b. a dep another task makes -----------------------------------------------------------

MAKER = """
name: made
tasks:
  make_x:
    shell: "echo x > {output}"
    target: data/x.csv
  use_x:
    shell: "cat data/x.csv > {output}"
    target: out/use.txt
    deps: ["data/x.csv"]
"""


def test_a_dep_another_task_makes_without_being_needed_is_refused_before_anything_runs(project):
    """Make would order them; without `needs:` nothing does, so the reader could run first
    or read it half-written. Refused, exit 2, naming both tasks and what to write."""
    proj = project(MAKER)
    for args in (("validate",), ("status",), ("run", "--dry-run"), ("run",), ("run", "-j", "2")):
        done = proj.cli(*args)
        assert done.code == 2, (args, done.text)
        said = done.err or done.out
        assert "data/x.csv" in said and "make_x" in said and "use_x" in said, done.text
        assert "needs:" in said and "tasks.use_x.deps.0" in said and "Traceback" not in done.text
    assert not proj.exists("data/x.csv") and not proj.exists("out/use.txt")


def test_a_dep_inside_a_folder_dep_another_task_makes_is_refused_too(project):
    proj = project(MAKER.replace('deps: ["data/x.csv"]', 'deps: ["data/"]'))
    done = proj.cli("status")
    assert done.code == 2 and "make_x" in done.err, done.text


def test_a_mapped_childs_dep_another_task_makes_is_refused_or_ordered(project):
    mapped = MAKER.replace('cat data/x.csv > {output}"\n    target: out/use.txt',
                           'cat data/x.csv > {output}"\n    foreach: [x]\n    target: "out/{item}.txt"')
    mapped = mapped.replace('deps: ["data/x.csv"]', 'deps: ["data/{item}.csv"]')
    assert "foreach" in mapped
    proj = project(mapped)
    done = proj.cli("status")
    assert done.code == 2 and "make_x" in done.err and "use_x[0]" in done.err, done.text
    proj = project(mapped.replace('deps: ["data/{item}.csv"]', 'deps: ["data/{item}.csv"]\n    needs: [make_x]'))
    done = proj.cli("run")
    assert done.code == 0 and proj.read("out/x.txt") == "x\n", done.text


def test_a_dep_an_upstream_task_makes_is_ordered_and_not_predicted_missing(project):
    proj = project(MAKER.replace('deps: ["data/x.csv"]', 'deps: ["data/x.csv"]\n    needs: [make_x]'))
    table = rows(proj.cli("status", "--json").out)
    assert table["use_x"]["state"] == "will run: target missing", table
    done = proj.cli("run", "-j", "2")
    assert done.code == 0, done.text
    assert proj.read("out/use.txt") == "x\n"


# -- 2. a parameter used only in a templated dep --------------------------------------------


def recorded(proj: Project, like: str) -> dict[str, object]:
    db = sqlite3.connect(proj.root / ".targetrun/state.db")
    try:
        (record,) = db.execute("SELECT record FROM checkpoints WHERE location LIKE ?", (like,)).fetchone()
    finally:
        db.close()
    return dict(json.loads(record))


def test_a_parameter_used_only_in_a_dep_reads_as_a_parameter_change(project):
    proj = project(FETCH.format(deps='["data/{params.which}.csv"]'))
    put(proj.root, "data/a.csv", "a\n")
    put(proj.root, "data/b.csv", "b\n")
    assert proj.cli("run").code == 0
    assert recorded(proj, "%fetch.txt")["made_with"] == {"which": "a"}
    row = rows(proj.cli("status", "--json", "-p", "which=b").out)["fetch"]

    stale = {s["what"]: s["detail"] for s in row["stale"]}  # type: ignore[union-attr]
    assert stale["parameters"] == "which: a → b", row
    assert stale.get("deps", "dep data/a.csv is gone, new dep data/b.csv") == "dep data/a.csv is gone, new dep data/b.csv"
    assert row["state"] == "will run: parameters changed (which: a → b)", row


def test_a_record_from_before_deps_params_counted_is_not_stale_on_upgrade(project):
    proj = project(FETCH.format(deps='["data/{params.which}.csv"]'))
    put(proj.root, "data/a.csv", "a\n")
    assert proj.cli("run").code == 0
    db = sqlite3.connect(proj.root / ".targetrun/state.db")
    try:  # as an older targetrun wrote it: the dep's parameter not among those it used
        (location, record) = db.execute("SELECT location, record FROM checkpoints").fetchone()
        old = json.loads(record)
        old["made_with"], old["params"] = {}, {}
        db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(old), location))
        db.commit()
    finally:
        db.close()
    row = rows(proj.cli("status", "--json").out)["fetch"]
    assert row["stale"] == [] and row["reason"] == "target exists", row
    assert proj.cli("status", "--check").code == 0


# -- 3. a remote dep in a bucket that does not exist ------------------------------------------


def test_a_remote_dep_in_a_missing_bucket_is_cannot_tell_not_missing(project, s3):
    """As for targets: s3fs says "not found" for a key of a bucket that does not exist, which
    is a typo or no permission -- exit 3, never "missing" (nor "will fail")."""
    proj = project(FETCH.format(deps='["s3://no-such-bucket/ref/units.csv"]'))
    for args in (("status",), ("status", "--json"), ("run", "--dry-run"), ("run",)):
        done = proj.cli(*args)
        assert done.code == 3, (args, done.text)
        assert "no-such-bucket" in done.err and "is missing" not in done.text, (args, done.text)
        assert "Traceback" not in done.text
    assert not proj.exists("out/fetch.txt")


def test_a_remote_dep_missing_in_a_bucket_that_exists_is_missing(project, s3):
    proj = project(FETCH.format(deps='["s3://test-bucket/ref/units.csv"]'))
    assert rows(proj.cli("status", "--json").out)["fetch"]["state"] == \
        "will fail: dep s3://test-bucket/ref/units.csv is missing"
    assert proj.cli("run").code == 2
    s3.pipe("test-bucket/ref/units.csv", b"u\n")
    assert proj.cli("run").code == 0
