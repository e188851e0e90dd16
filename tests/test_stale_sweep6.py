"""Staleness scenarios from the sixth sweep (DESIGN.md "Staleness"), through the CLI
in-process with real files: what ``status`` (text and ``--json``) says about a target
no run recorded, a deleted intermediate target, and a record whose code fingerprint was
taken by another fingerprint model.
"""

from __future__ import annotations

import json

from tests.conftest import Project

CHAIN = """
name: chain
tasks:
  a:
    shell: "echo a > {output}"
    target: out/a.txt
  b:
    shell: "cat {needs.a} > {output}; echo b >> {output}"
    needs: [a]
    target: out/b.txt
  c:
    shell: "cat {needs.b} > {output}; echo c >> {output}"
    needs: [b]
    target: out/c.txt
"""


def rows(out: str) -> dict[str, dict[str, object]]:
    return {row["task"]: row for row in json.loads(out)["tasks"]}


def line_of(out: str, task: str) -> str:
    return next(line for line in out.splitlines() if line.split()[:1] == [task])


def test_status_tells_a_target_no_run_recorded_from_one_a_run_recorded(project):
    """``c`` made by hand (or by another tool, or its record lost) exists as a recorded
    one does, but nothing is known of what made it: ``recorded`` says which is which in
    ``--json``, and the text says it has no record. A missing target has no answer."""
    p: Project = project(CHAIN)
    assert p.cli("run").code == 0
    made = rows(p.cli("status", "--json").out)
    assert {t: r["recorded"] for t, r in made.items()} == {"a": True, "b": True, "c": True}
    assert "no record" not in p.cli("status").out

    (p.root / "out" / "c.txt").unlink()
    (p.root / ".targetrun").rename(p.root / "lost")  # the state store gone: no record of anything
    (p.root / "out" / "c.txt").write_text("by hand\n")
    (p.root / "out" / "a.txt").unlink()
    (p.root / "out" / "b.txt").unlink()
    by_hand = rows(p.cli("status", "--json").out)
    assert by_hand["c"]["exists"] is True and by_hand["c"]["recorded"] is False
    assert by_hand["a"]["exists"] is False and by_hand["a"]["recorded"] is None
    text = p.cli("status").out
    assert "target exists (no record: what made it is unknown)" in line_of(text, "c"), text


def test_recorded_counts_the_targets_nothing_needs_too(project):
    """An upstream nothing needs (its dependent's target exists) is looked up as well."""
    p: Project = project(CHAIN)
    assert p.cli("run").code == 0
    assert p.cli("invalidate", "a").code == 0  # its target and record go
    (p.root / "out" / "a.txt").write_text("a by hand\n")
    found = rows(p.cli("status", "--json").out)
    assert found["a"]["recorded"] is False and found["b"]["recorded"] is True and found["c"]["recorded"] is True
    assert "no record" in line_of(p.cli("status").out, "a")


def test_a_deleted_intermediate_target_says_how_to_get_it_back(project):
    """a -> b -> c with b's target deleted: c exists, so nothing is needed (Make, Luigi),
    and the line says the command that makes b again -- which does."""
    p: Project = project(CHAIN)
    assert p.cli("run").code == 0
    (p.root / "out" / "b.txt").unlink()
    status = p.cli("status")
    assert "not needed (target missing: `targetrun run b` makes it)" in line_of(status.out, "b"), status.out
    assert rows(p.cli("status", "--json").out)["b"]["state"] == "not needed (target missing: `targetrun run b` makes it)"
    assert p.cli("run").code == 0 and not (p.root / "out" / "b.txt").exists()  # nothing needed it
    assert p.cli("run", "b").code == 0 and (p.root / "out" / "b.txt").read_text() == "a\nb\n"


def test_a_deleted_mapped_child_names_the_task_run_takes(project):
    """A mapped child is made by running its task (``run`` takes no child names); only the
    missing child is made again."""
    p: Project = project("""
name: mapped
params: {cities: [a, b]}
tasks:
  per:
    shell: "echo {item} > {output}"
    foreach: "{params.cities}"
    target: "out/{item}.txt"
  all:
    run: gather:gather
    needs: [per]
    target: out/all.txt
    serializer: text
""", gather="def gather(per):\n    return ''.join(per)\n")
    assert p.cli("run").code == 0
    (p.root / "out" / "a.txt").unlink()
    status = p.cli("status").out
    assert "not needed (target missing: `targetrun run per` makes it, with the same -p and --date as this status)" \
        in line_of(status, "per[0]"), status
    rerun = p.cli("run", "per", "--json")
    assert rerun.code == 0 and [r["task"] for r in json.loads(rerun.out)["tasks"] if r["state"] == "succeeded"] == ["per[0]", "per"]
    assert (p.root / "out" / "a.txt").read_text() == "a\n"


MODELLED = """
name: modelled
defaults: {cache_validator: [code]}
tasks:
  make:
    run: steps:make
    target: out/made.txt
    serializer: text
"""

STEPS = """
import os

def make():
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write("make\\n")
    return "made"
"""


def _recode(p: Project, change) -> None:
    """Rewrite the code fingerprints of every record in the project's SQLite store."""
    import sqlite3

    with sqlite3.connect(p.root / ".targetrun" / "state.db") as db:
        for location, record in db.execute("SELECT location, record FROM checkpoints").fetchall():
            doc = json.loads(record)
            doc["code"] = change(doc["code"])
            db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(doc), location))


def test_a_record_from_an_older_fingerprint_model_is_cannot_tell_never_code_changed(project, monkeypatch):
    """A later targetrun that fingerprints code another way reads today's records: it
    cannot tell whether the code changed -- it says so, and neither calls the target stale
    nor rebuilds it for it (a `code` validator included), as a record that kept no code
    fingerprint. A forced run records it anew."""
    from targetrun import stalediff

    p: Project = project(MODELLED, steps=STEPS)
    assert p.cli("run").code == 0
    monkeypatch.setattr(stalediff, "CODE_MODEL", str(int(stalediff.CODE_MODEL) + 1))  # the later targetrun
    status = p.cli("status")
    line = line_of(status.out, "make")
    assert "target exists (recorded by an older fingerprint model: cannot tell if code changed)" in line, status.out
    assert "stale" not in line and "0 of 1 task would run" in status.out
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [] and row["reason"] == "target exists"
    assert row["unknown"] == [{"what": "code", "detail": "recorded by an older fingerprint model: cannot tell if code changed"}]
    assert p.cli("status", "--check").code == 0
    dry = p.cli("run", "--dry-run", "--json")
    assert [r["state"] for r in json.loads(dry.out)["tasks"]] == ["skipped"], dry.out
    assert p.cli("run").code == 0 and p.cli("run", "--rebuild-stale").code == 0
    assert (p.root / "calls.log").read_text() == "make\n"  # neither rebuilt it
    assert p.cli("run", "--force", "make").code == 0  # recorded anew, by this model
    again = rows(p.cli("status", "--json").out)["make"]
    assert again["unknown"] == [] and again["stale"] == []


def test_a_record_from_a_newer_fingerprint_model_is_cannot_tell_too(project):
    """A store shared with a later targetrun (one Redis store, two CI images): its records
    name their model, and this one does not read their code fingerprints as changed code."""
    p: Project = project(MODELLED, steps=STEPS)
    assert p.cli("run").code == 0
    _recode(p, lambda code: {**{k: v + "x" for k, v in code.items()}, "@model": "7"})
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [] and row["state"] == "target exists", row
    assert row["unknown"] == [{"what": "code", "detail": "recorded by a newer fingerprint model: cannot tell if code changed"}]
    assert p.cli("status", "--check").code == 0
    # the same record with the model of today is simply changed code
    from targetrun.stalediff import CODE_MODEL

    _recode(p, lambda code: {**code, "@model": CODE_MODEL})
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["reason"] == "code changed" and row["unknown"] == [], row


TIMED = """
name: timed
tasks:
  up:
    shell: "echo same > {output}"
    target: out/up.txt
  timed:
    shell: "cat {needs.up} > {output}; echo timed >> {output}"
    needs: [up]
    target: out/timed.txt
    cache_for: 1h
"""


def test_a_target_that_runs_for_its_age_still_says_what_else_is_stale(project, monkeypatch):
    """``cache_for`` expired and the command edited: the task runs because it expired
    (rule 3 comes first), and status, ``--dry-run`` and their JSON also say that its code
    changed -- "always say what is stale" -- as they do for a target that stands."""
    p: Project = project(TIMED)
    assert p.cli("run").code == 0
    p.file.write_text(TIMED.replace("echo timed >>", "echo timed2 >>"))
    monkeypatch.setenv("TARGETRUN_NOW", str(__import__("time").time() + 7200))
    row = rows(p.cli("status", "--json").out)["timed"]
    assert row["reason"] == "cache expired", row
    assert row["stale"] == [{"what": "code", "detail": "command"}], row
    assert "(also stale: code changed — command)" in line_of(p.cli("status").out, "timed")
    dry = p.cli("run", "--dry-run", "--json")
    planned = {r["task"]: r for r in json.loads(dry.out)["tasks"]}["timed"]
    assert planned["stale"] == [{"what": "code", "detail": "command"}] and planned["reason"] == "cache expired"
    assert "(also stale: code changed — command)" in line_of(p.cli("run", "--dry-run").out, "would")
    assert p.cli("run").code == 0 and (p.root / "out" / "timed.txt").read_text() == "same\ntimed2\n"


MUTATED = '''
UNITS = {"a": 1}
UNITS.update({"b": 2})
NAMES = []
for _n in ("x", "y"):
    NAMES.append(_n)
ORDER = [3, 1]
ORDER.sort()
EMPTY = []


def make():
    return str(UNITS) + str(NAMES) + str(ORDER) + str(EMPTY)
'''


def test_a_module_constant_changed_by_a_call_or_a_loop_at_module_level_makes_its_users_stale(project):
    """A constant counts however it is made: ``UNITS.update({...})`` and a ``for`` loop that
    fills ``NAMES`` at module level change what the task returns, so editing them makes it
    stale, naming the constant; a call that names no constant of the module changes nothing."""
    p: Project = project("name: m\ntasks:\n  make: {run: tasks:make, target: out/make.txt, serializer: text}\n",
                         tasks=MUTATED)
    assert p.cli("run").code == 0
    tasks = p.root / "tasks.py"
    # the loop's variable is the module's too (`_n` is "y" after it), counted by what it goes over
    for old, new, says in (('{"b": 2}', '{"b": 3}', "constant UNITS"),
                           ('("x", "y")', '("x", "z")', "constant NAMES, constant _n"),
                           ("ORDER.sort()", "ORDER.sort(reverse=True)", "constant ORDER")):
        tasks.write_text(tasks.read_text().replace(old, new))
        row = rows(p.cli("status", "--json").out)["make"]
        assert row["stale"] == [{"what": "code", "detail": f"tasks.py: {says}"}], (old, row)
        assert p.cli("run", "--rebuild-stale").code == 0
    tasks.write_text(tasks.read_text() + "\nprint('loaded')\nfor _i in range(2):\n    pass\n")
    assert rows(p.cli("status", "--json").out)["make"]["stale"] == []


def test_what_a_shell_command_is_fingerprinted_by(project, monkeypatch):
    """A shell task's code is its command template as written: a change of spacing counts
    (inside quotes it changes what is printed), named as "command". An environment
    variable the command reads is not fingerprinted (as in Make, Snakemake and DVC): a
    value that should count is passed as a parameter, and then it does."""
    pipeline = """
name: sh
params: {region: eu}
tasks:
  env: {shell: "echo $TR_REGION > {output}", target: out/env.txt}
  param: {shell: "echo {params.region} > {output}", target: out/param.txt}
  spaced: {shell: "echo 'a b' > {output}", target: out/spaced.txt}
"""
    p: Project = project(pipeline)
    monkeypatch.setenv("TR_REGION", "eu")
    assert p.cli("run").code == 0
    monkeypatch.setenv("TR_REGION", "us")
    p.file.write_text(pipeline.replace("'a b'", "'a  b'"))
    found = {t: [s["detail"] for s in r["stale"]] for t, r in rows(p.cli("status", "--json", "-p", "region=us").out).items()}
    assert found == {"env": [], "param": ["region: eu → us"], "spaced": ["command"]}, found


def test_a_recorded_target_edited_by_hand_to_another_size_says_so(project):
    """``b``'s target rewritten by hand after the run recorded it: it exists, so nothing
    runs (as before), but status no longer calls it plainly "target exists" when its size
    shows it is not what was recorded (DVC: "changed outs") -- it says so and what remakes
    it; a same-size edit is ``--verify``'s to find (nothing is read without it)."""
    p: Project = project(CHAIN)
    assert p.cli("run").code == 0
    (p.root / "out" / "b.txt").write_text("edited by hand\n")
    status = p.cli("status")
    says = "not needed (target exists) (changed since it was recorded: 15 B, 4 B were written; " \
           "`targetrun run --verify` remakes it)"
    assert says in line_of(status.out, "b"), status.out
    found = rows(p.cli("status", "--json").out)
    assert found["b"]["changed_since_recorded"] is True and found["c"]["changed_since_recorded"] is False
    assert found["a"]["recorded"] is True
    assert p.cli("run", "--verify").code == 0 and (p.root / "out" / "b.txt").read_text() == "a\nb\n"
    assert "changed since" not in p.cli("status").out


def test_a_folder_target_is_not_called_changed_or_corrupt_for_its_size(project):
    """A shell task that writes a folder is recorded with no size or hash (it is no file):
    its folder's size is nothing to compare -- neither ``status`` (changed since recorded)
    nor ``--verify`` (corrupt, remade on every run) may read it as a difference."""
    p: Project = project("name: f\ntasks:\n  folder: {shell: 'mkdir -p {output} && echo x > {output}/x', target: out/f}\n")
    assert p.cli("run").code == 0
    assert "changed since" not in p.cli("status").out
    assert rows(p.cli("status", "--json").out)["folder"]["changed_since_recorded"] is False
    verify = p.cli("status", "--verify", "--json")
    assert rows(verify.out)["folder"]["state"] == "target exists", verify.out
    assert [r["state"] for r in json.loads(p.cli("run", "--verify", "--json").out)["tasks"]] == ["skipped"]


def test_a_task_planned_to_run_only_because_its_upstream_is_recomputed_says_it_may_be_kept(project):
    """``up``'s command changed (a ``code`` validator): it runs, and ``down`` -- whose input
    it is, with ``all_inputs`` -- cannot be judged before ``up`` is made. Status says it
    runs because ``up`` is recomputed, and that it is kept if ``up`` comes out the same --
    which the run then does (early cutoff)."""
    pipeline = """
name: cut
defaults: {cache_validator: [code, all_inputs]}
tasks:
  up: {shell: "echo same > {output}", target: out/up.txt}
  down: {shell: "cat {needs.up} > {output}; date +%N >> {output}", needs: [up], target: out/down.txt}
"""
    p: Project = project(pipeline)
    assert p.cli("run").code == 0
    before = (p.root / "out" / "down.txt").read_text()
    p.file.write_text(pipeline.replace("echo same > {output}", "echo same >{output}"))
    line = line_of(p.cli("status").out, "down")
    assert "will run: inputs changed (up is recomputed in this run: kept if it comes out the same)" in line, line
    done = {r["task"]: r["state"] for r in json.loads(p.cli("run", "--json").out)["tasks"]}
    assert done == {"up": "succeeded", "down": "skipped"} and (p.root / "out" / "down.txt").read_text() == before


def test_a_record_that_kept_no_code_fingerprint_says_it_cannot_tell(project):
    """A record an older targetrun wrote, before code was fingerprinted: unknown, never
    stale, never rebuilt for it (a ``code`` validator included) -- and now said plainly,
    as a record of another fingerprint model is."""
    p: Project = project(MODELLED, steps=STEPS)
    assert p.cli("run").code == 0
    import sqlite3

    with sqlite3.connect(p.root / ".targetrun" / "state.db") as db:
        for location, record in db.execute("SELECT location, record FROM checkpoints").fetchall():
            doc = json.loads(record)
            del doc["code"]
            db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(doc), location))
    says = "recorded without a code fingerprint (by an older targetrun): cannot tell if code changed"
    row = rows(p.cli("status", "--json").out)["make"]
    assert row["stale"] == [] and row["unknown"] == [{"what": "code", "detail": says}], row
    assert f"target exists ({says})" in line_of(p.cli("status").out, "make")
    assert p.cli("run", "--rebuild-stale").code == 0 and (p.root / "calls.log").read_text() == "make\n"


def test_the_command_that_makes_a_missing_target_again_asks_for_the_same_parameters(project):
    """``b``'s target names a parameter: status asked about ``-p city=paris`` points at
    ``targetrun run b`` with the same ``-p`` (plain ``run b`` would make berlin's)."""
    p: Project = project("""
name: cities
params: {city: berlin}
tasks:
  a: {shell: "echo {params.city} > {output}", target: "out/{params.city}/a.txt"}
  b: {shell: "cat {needs.a} > {output}", needs: [a], target: "out/{params.city}/b.txt"}
  c: {shell: "cat {needs.b} > {output}", needs: [b], target: "out/c-{params.city}.txt"}
""")
    assert p.cli("run", "-p", "city=paris").code == 0
    (p.root / "out" / "paris" / "b.txt").unlink()
    line = line_of(p.cli("status", "-p", "city=paris").out, "b")
    assert "not needed (target missing: `targetrun run b` makes it, with the same -p and --date as this status)" in line
    assert p.cli("run", "b", "-p", "city=paris").code == 0 and (p.root / "out" / "paris" / "b.txt").read_text() == "paris\n"
