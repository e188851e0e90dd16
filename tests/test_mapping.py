"""Mapped tasks (foreach): one child per item, each with its own target, cache entry and state."""

from __future__ import annotations

import json

import pytest

MAPS = '''
import os

def _log(name):
    with open(os.path.join(os.path.dirname(__file__), "calls.log"), "a") as f:
        f.write(name + "\\n")

def numbers(n):
    _log("numbers")
    return list(range(n))

def square(x, tag=""):
    _log(f"square-{x}")
    return x * x

def shout(city):
    _log(f"shout-{city}")
    return city.upper()

def total(values):
    _log("total")
    return sum(values) if all(isinstance(v, int) for v in values) else "+".join(values)

def explode(x):
    if x == 3:
        raise ValueError("three is bad")
    return x
'''


def states(result) -> dict[str, str]:
    return {t["task"]: t["state"] for t in json.loads(result.out)["tasks"]}


def test_foreach_over_an_upstream_value_reruns_only_deleted_children(project):
    proj = project("""
    tasks:
      numbers:
        run: maps:numbers
        args: {n: 100}
        target: out/numbers.json
      squares:
        run: maps:square
        needs: {x: numbers}
        foreach: {needs: numbers}
        target: "out/sq/{map_index}.json"
      total:
        run: maps:total
        needs: {values: squares}
        target: out/total.json
    """, maps=MAPS)
    first = proj.cli("run", "--json")
    assert first.code == 0, first.text
    assert json.loads(proj.read("out/total.json")) == sum(i * i for i in range(100))
    assert json.loads(proj.read("out/sq/7.json")) == 49
    assert sum(1 for k in proj.counts() if k.startswith("square-")) == 100
    for i in (5, 50, 99):
        (proj.root / f"out/sq/{i}.json").unlink()
    rerun = proj.cli("run", "squares", "--json")
    assert rerun.code == 0, rerun.text
    ran = sorted(t for t, s in states(rerun).items() if s == "succeeded")
    assert ran == ["squares", "squares[50]", "squares[5]", "squares[99]"]  # squares: the gathered parent
    assert proj.counts()["square-5"] == 2 and proj.counts()["square-6"] == 1
    assert proj.counts()["numbers"] == 1  # its target exists: read to know the items, not rerun


def test_foreach_over_a_list_param_passes_items_and_gathers_in_order(project):
    proj = project("""
    params:
      cities: [berlin, paris]
    tasks:
      per_city:
        run: maps:shout
        foreach: "{params.cities}"
        args: {city: "{item}"}
        target: "out/{item}.txt"
      joined:
        run: maps:total
        needs: {values: per_city}
        target: "out/joined-{params.cities[0]}.txt"
    """, maps=MAPS)
    assert proj.cli("run").code == 0
    assert proj.read("out/joined-berlin.txt") == "BERLIN+PARIS"
    result = proj.cli("run", "-p", "cities=[lima, berlin, oslo]", "--json")
    assert states(result)["per_city[1]"] == "skipped"  # berlin's target exists
    assert proj.read("out/joined-lima.txt") == "LIMA+BERLIN+OSLO"
    assert proj.counts() == {"shout-berlin": 1, "shout-paris": 1, "total": 2, "shout-lima": 1, "shout-oslo": 1}


def test_items_known_only_during_the_run(project):
    """The upstream has no target, so it always runs: children are made when it finishes."""
    proj = project("""
    tasks:
      numbers:
        run: maps:numbers
        args: {n: 4}
      squares:
        run: maps:square
        needs: {x: numbers}
        foreach: {needs: numbers}
        target: "out/sq-{item}.json"
    """, maps=MAPS)
    dry = proj.cli("run", "--dry-run", "--json")
    assert states(dry)["squares"] == "would run"
    assert "mapped over 'numbers'" in next(t["decision"] for t in json.loads(dry.out)["tasks"] if t["task"] == "squares")
    assert proj.cli("run").code == 0
    assert [json.loads(proj.read(f"out/sq-{i}.json")) for i in range(4)] == [0, 1, 4, 9]
    second = proj.cli("run", "--json")
    assert states(second) == {"numbers": "succeeded", "squares": "succeeded", **{f"squares[{i}]": "skipped" for i in range(4)}}


def test_status_groups_children_under_the_parent(project):
    proj = project("""
    tasks:
      per:
        run: maps:square
        foreach: [1, 2, 3]
        args: {x: "{item}"}
        target: "out/{map_index}.json"
    """, maps=MAPS)
    proj.cli("run")
    (proj.root / "out/1.json").unlink()
    status = json.loads(proj.cli("status", "--json").out)
    rows = {t["task"]: t for t in status["tasks"]}
    assert rows["per"]["state"] == "will run: mapped (1 of 3 children run)"
    assert rows["per[1]"]["state"] == "will run: target missing" and rows["per[0]"]["state"] == "target exists"
    assert status["would_run"] == ["per[1]", "per"]


def test_a_failing_child_fails_the_map_and_its_dependents(project):
    proj = project("""
    tasks:
      parts:
        run: maps:explode
        foreach: [1, 2, 3, 4]
        args: {x: "{item}"}
        target: "out/{item}.json"
      total:
        run: maps:total
        needs: {values: parts}
        target: out/total.json
    """, maps=MAPS)
    result = proj.cli("run", "--keep-going", "--json")
    assert result.code == 1
    found = states(result)
    assert found["parts[2]"] == "failed" and found["parts"] == "upstream failed" and found["total"] == "upstream failed"
    assert [found[f"parts[{i}]"] for i in (0, 1, 3)] == ["succeeded"] * 3


def test_each_child_has_its_own_cache_entry(project):
    proj = project("""
    tasks:
      per:
        run: maps:square
        foreach: [2, 3]
        args: {x: "{item}"}
        cache_for: 1h
    """, maps=MAPS)
    assert proj.cli("run").code == 0
    keys = sorted(e["key"] for e in json.loads(proj.cli("cache", "list", "--json").out))
    assert keys == [f"{proj.root.name}/per[0]", f"{proj.root.name}/per[1]"]
    again = proj.cli("run", "--json")
    assert states(again) == {"per[0]": "cached", "per[1]": "cached", "per": "skipped"}


@pytest.mark.parametrize("foreach, message", [
    ('"{params.one}"', "is a int, not a list"),
    ("{needs: numbers}", "is a dict, not a list"),
])
def test_mapping_over_a_non_list_is_refused(project, foreach, message):
    proj = project(f"""
    params: {{one: 1}}
    tasks:
      numbers: {{run: maps:numbers, args: {{n: 2}}, target: out/n.json}}
      per:
        run: maps:square
        needs: {{x: numbers}}
        foreach: {foreach}
        target: "out/{{map_index}}.json"
    """, maps=MAPS.replace("return list(range(n))", "return {'n': n}"))
    first = proj.cli("run", "numbers")
    assert first.code == 0
    result = proj.cli("run")
    assert result.code in (1, 2) and message in result.text and "Traceback" not in result.text


def test_status_agrees_with_run_on_cached_children_with_an_input_validator(project):
    """A child's input is its own item: planning and running must fingerprint it the same way."""
    proj = project("""
    tasks:
      numbers: {run: maps:numbers, args: {n: 3}, target: out/numbers.json}
      squares:
        run: maps:square
        needs: {x: numbers}
        foreach: {needs: numbers}
        cache_for: 1h
        cache_validator: all_inputs
    """, maps=MAPS)
    assert proj.cli("run").code == 0
    status = {t["task"]: t["state"] for t in json.loads(proj.cli("status", "--json").out)["tasks"]}
    assert all(status[f"squares[{i}]"].startswith("cache hit (until ") for i in range(3)), status
    again = proj.cli("run", "--json")
    assert {t: s for t, s in states(again).items() if t.startswith("squares[")} == {
        f"squares[{i}]": "cached" for i in range(3)}


def test_a_deleted_target_under_cache_for_is_rebuilt_not_a_cache_hit(project):
    """A cache entry whose value is the very target that was deleted has nothing left to
    reuse: the child runs again (it was a "cache hit" on a gone file, and its reader failed)."""
    proj = project("""
    tasks:
      numbers: {run: maps:numbers, args: {n: 4}, target: out/numbers.json}
      squares:
        run: maps:square
        needs: {x: numbers}
        foreach: {needs: numbers}
        target: "out/sq/{map_index}.json"
        cache_for: 1h
      total: {run: maps:total, needs: {values: squares}, target: out/total.json}
    """, maps=MAPS)
    assert proj.cli("run").code == 0
    for gone in ("out/sq/2.json", "out/total.json", "out/numbers.json"):  # the items are known only in the run
        (proj.root / gone).unlink()
    rerun = proj.cli("run", "--json")
    assert rerun.code == 0, rerun.text
    assert states(rerun)["squares[2]"] == "succeeded" and states(rerun)["squares[1]"] != "succeeded"
    assert json.loads(proj.read("out/total.json")) == 0 + 1 + 4 + 9
    assert json.loads(proj.read("out/sq/2.json")) == 4


def test_a_child_whose_target_is_another_tasks_fails_its_mapped_task_not_the_run(project):
    """Items known only during the run lead a child onto another task's target: the mapped
    task fails with exit 2 naming both, the run ends as failed (recorded, reported), and
    nothing is overwritten."""
    proj = project("""
    tasks:
      summary: {run: clash:summary, target: out/all.json}
      names: {run: clash:names, target: out/names.json}
      parts: {run: clash:one, needs: {name: names}, foreach: {needs: names}, target: "out/{item}.json"}
    """, clash="def names():\n    return ['x', 'all']\n\ndef one(name):\n    return name\n\ndef summary():\n"
               "    return 1\n")
    result = proj.cli("run", "--json")
    assert result.code == 2, result.text
    doc = json.loads(result.out)
    assert doc["runs"], doc  # the run finished and was reported
    assert states(result)["parts"] == "failed" and states(result)["summary"] == "succeeded"
    assert "tasks 'summary' and 'parts[1]' both write the target" in result.text
    assert json.loads(proj.read("out/all.json")) == 1  # summary's value stands
    assert "failed" in proj.cli("history").out


def test_a_mapped_shell_task_renders_its_own_item_index_and_name(project):
    """A child of a mapped shell task has {item}, {map_index} and {task_full_name} in its
    command, as its target does; a hostile item is one literal word, never run."""
    proj = project("""
    params:
      cities: [berlin, "$(touch PWNED)"]
    tasks:
      per_city:
        foreach: "{params.cities}"
        shell: "printf '%s %s %s' {item} {map_index} {task_full_name} > {output}"
        target: "out/{map_index}.txt"
    """)
    result = proj.cli("run")
    assert result.code == 0, result.err
    assert proj.read("out/0.txt") == "berlin 0 per_city[0]"
    assert proj.read("out/1.txt") == "$(touch PWNED) 1 per_city[1]"
    assert not (proj.root / "PWNED").exists()


def test_targetruns_own_error_inside_a_task_is_one_paragraph_not_a_traceback(project):
    """An error of targetrun's own raised while a task runs (here: a shell command names a
    field its run does not have, which only `{item}` of a mapped child used to hit) reads as
    its message with its exit code, not as a traceback of targetrun's internals."""
    from targetrun.engine import work
    from targetrun.errors import TemplateError

    failing = work.Job(task="t", attempt=1, root=str(proj_root := project("tasks: {}\n").root), serializer="text",
                       checkpoint=None, staging=None, storage=None, fn=None, run=None, shell="echo {nothing}",
                       args={}, inputs={}, context={}, keep_value=False, key="t", ticket=0, own_fds=False)
    with pytest.raises(work.WorkError) as caught:
        work.execute(failing)
    assert "Traceback" not in caught.value.details and "nothing" in str(caught.value)
    assert caught.value.usage and proj_root.exists()
    assert TemplateError.exit_code == 2
