"""The trust rule, on every read path: no byte is unpickled unless it is a checkpoint this
state store recorded and its sha256 matches the record when it is read (or --trust).

Each test plants a pickle whose ``__reduce__`` writes a marker file, at one place targetrun
reads: the upstream of a mapped task (read while planning), a target replaced between
planning and reading, ``show``, a target-less task's result under ``.targetrun/results/``
and the spec cache. The marker must never appear without ``--trust``. The last tests are
issue 9 class 11: a mapped task over a corrupt upstream list.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

PLANT = '''
import glob, os, pickle

HERE = os.path.dirname(__file__)

def _log(name):
    with open(os.path.join(HERE, "calls.log"), "a") as f:
        f.write(name + "\\n")

class _Planted:
    """Unpickling this writes the marker file, then gives `value`."""
    def __init__(self, marker, value):
        self.marker, self.value = marker, value
    def __reduce__(self):
        return (eval, (f"(__import__('pathlib').Path({self.marker!r}).write_text('planted'), {self.value!r})[1]",))

def planted(value):
    return pickle.dumps(_Planted(os.path.join(HERE, "MARKER"), value))

def make(value=7, after=None):
    _log("make")
    return value

def use(x, y=None):
    _log("use")
    return x + 1

def plant_at(pattern):
    """A task that, while the run goes on, replaces the files matching `pattern`."""
    _log("evil")
    for path in glob.glob(os.path.join(HERE, pattern)):
        with open(path, "wb") as f:
            f.write(planted(41))
    return 1

def plant_and_make(path, value=1):
    _log("evil")
    full = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(planted(41))
    return value

def numbers(n):
    _log("numbers")
    return list(range(n))

def square(x):
    _log(f"square-{x}")
    return x * x

def total(values):
    _log("total")
    return sum(values)
'''

MAPPED = """
tasks:
  numbers: {run: plant:numbers, args: {n: 3}, target: out/numbers.pkl}
  squares: {run: plant:square, needs: {x: numbers}, foreach: {needs: numbers}, target: "out/sq/{item}.json"}
  total: {run: plant:total, needs: {values: squares}, target: out/total.json}
"""


class _Planted:
    """Unpickling this writes ``marker``, then gives ``value``: code chosen by the writer.
    Its pickle names only ``builtins.eval``, so any process can load it."""

    def __init__(self, marker: Path, value: object) -> None:
        self.marker, self.value = str(marker), value

    def __reduce__(self):
        return (eval, (f"(__import__('pathlib').Path({self.marker!r}).write_text('planted'), {self.value!r})[1]",))


def planted(proj, value: object) -> bytes:
    """The bytes of a pickle that writes ``proj.root / MARKER`` when loaded."""
    return pickle.dumps(_Planted(proj.root / "MARKER", value))


def marked(proj) -> bool:
    return (proj.root / "MARKER").exists()


def refused(result) -> bool:
    """Exit 2 with the one-paragraph refusal, no traceback."""
    return (result.code == 2 and "no targetrun run recorded" in result.err and "--trust" in result.err
            and "Traceback" not in result.text)


def states(result) -> dict[str, str]:
    return {t["task"]: t["state"] for t in json.loads(result.out)["tasks"]}


@pytest.fixture
def mapped(project):
    return project(MAPPED, plant=PLANT)


# -- (a) the upstream of a mapped task, read while planning ------------------------------


def test_an_unrecorded_pickle_a_mapped_task_maps_over_is_not_loaded_by_status_or_dry_run(mapped):
    (mapped.root / "out").mkdir()
    (mapped.root / "out/numbers.pkl").write_bytes(planted(mapped, [5, 6]))
    for command in (("status",), ("status", "--json"), ("run", "--dry-run"), ("run",)):
        result = mapped.cli(*command)
        assert refused(result), (command, result.text)
        assert not marked(mapped), command
    assert mapped.counts() == {}
    trusted = mapped.cli("status", "--trust", "--json")
    assert trusted.code == 0, trusted.text
    assert marked(mapped)  # --trust: read while planning, as asked
    assert states(trusted)["squares[1]"] == "will run: target missing"


def test_a_recorded_upstream_replaced_by_a_pickle_is_rebuilt_not_loaded(mapped):
    assert mapped.cli("run").code == 0
    (mapped.root / "out/numbers.pkl").write_bytes(planted(mapped, [5, 6]))
    (mapped.root / "out/total.json").unlink()  # so that the mapped task is looked at
    for trust in ((), ("--trust",)):  # a recorded checkpoint that differs is corrupt, trusted or not
        status = mapped.cli("status", "--json", *trust)
        assert status.code == 0, status.text
        assert states(status)["numbers"].startswith("will run: checkpoint corrupt")
        assert states(status)["squares"] == "will run: items known after upstream runs (mapped over 'numbers')"
        assert mapped.cli("run", "--dry-run", *trust).code == 0
        assert not marked(mapped)
    result = mapped.cli("run")
    assert result.code == 0, result.text
    assert not marked(mapped)
    assert json.loads(mapped.read("out/total.json")) == 0 + 1 + 4
    assert mapped.counts()["numbers"] == 2 and "square-5" not in mapped.counts()


# -- (b) a target replaced between planning and reading -------------------------------


LATE = """
tasks:
  evil: {run: plant:plant_and_make, args: {path: out/b.pkl}, target: out/evil.json}
  b: {run: plant:make, needs: {after: evil}, target: out/b.pkl}
  c: {run: plant:use, needs: {x: b}, target: out/c.json}
"""


def test_a_target_that_appears_unrecorded_while_the_run_goes_on_is_remade_not_loaded(project):
    proj = project(LATE, plant=PLANT)
    result = proj.cli("run", "--json")
    assert result.code == 0, result.text
    assert not marked(proj)
    assert states(result)["b"] == "succeeded"  # not "target exists (found when about to run it)"
    assert json.loads(proj.read("out/c.json")) == 8
    trusting = project(LATE, plant=PLANT)  # with --trust, the file that appeared stands for the task
    result = trusting.cli("run", "--trust", "--json")
    assert result.code == 0, result.text
    assert states(result)["b"] == "skipped"
    assert marked(trusting) and json.loads(trusting.read("out/c.json")) == 42


MIDRUN = """
tasks:
  a: {run: plant:make, target: out/a.pkl}
  evil: {run: plant:plant_at, args: {pattern: out/a.pkl}, target: out/evil.json}
  c: {run: plant:use, needs: {x: a, y: evil}, target: out/c.json}
"""


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_a_recorded_checkpoint_replaced_after_planning_is_refused_by_the_worker_and_rebuilt(project, executor):
    proj = project(MIDRUN, plant=PLANT)
    assert proj.cli("run", "a").code == 0
    result = proj.cli("run", "--executor", executor, "--trust", "--json")  # trust does not make it count
    assert result.code == 0, result.text
    assert not marked(proj)
    assert states(result)["a"] == "succeeded" and json.loads(proj.read("out/c.json")) == 8
    assert proj.counts() == {"make": 2, "evil": 1, "use": 1}
    assert proj.cli("status", "--check").code == 0


def test_a_checkpoint_replaced_again_after_its_rebuild_fails_the_reader(project):
    proj = project("""
    tasks:
      a: {run: plant:make, target: out/a.pkl}
      evil: {run: plant:plant_at, args: {pattern: out/a.pkl}, target: out/evil.json}
      c1: {run: plant:use, needs: {x: a, y: evil}, target: out/c1.json}
      evil2: {run: plant:plant_at, args: {pattern: out/a.pkl}, needs: {after: c1}, target: out/evil2.json}
      c2: {run: plant:use, needs: {x: a, y: evil2}, target: out/c2.json}
    """, plant=PLANT.replace("def plant_at(pattern):", "def plant_at(pattern, after=None):"))
    assert proj.cli("run", "a").code == 0
    result = proj.cli("run", "--keep-going")  # a is rebuilt once (for c1), then replaced again before c2 reads it
    assert result.code == 1, result.text
    assert "refusing to read the value of 'a'" in result.out and "not what targetrun wrote there" in result.out
    assert json.loads(proj.read("out/c1.json")) == 8 and not proj.exists("out/c2.json")
    assert not marked(proj) and proj.counts()["make"] == 2


# -- (c) show --------------------------------------------------------------------------


def test_show_loads_no_pickle_that_differs_from_its_record_or_that_nobody_recorded(project):
    proj = project("""
    tasks:
      a: {run: plant:make, target: out/a.pkl}
      given: {run: plant:make, target: in/given.pkl}
    """, plant=PLANT)
    assert proj.cli("run", "a").code == 0
    assert proj.cli("show", "a").out.strip() == "7"
    (proj.root / "out/a.pkl").write_bytes(planted(proj, 41))
    for trust in ((), ("--trust",)):
        result = proj.cli("show", "a", *trust)
        assert result.code == 2 and "not what targetrun wrote there" in result.err, result.text
        assert "Traceback" not in result.text and not marked(proj)
    (proj.root / "in").mkdir()
    (proj.root / "in/given.pkl").write_bytes(planted(proj, 41))
    assert refused(proj.cli("show", "given")) and not marked(proj)
    trusted = proj.cli("show", "given", "--trust")
    assert trusted.code == 0 and trusted.out.strip() == "41" and marked(proj)


# -- (d) a target-less task's result under .targetrun/results/ -------------------------


RESULTS = """
tasks:
  a: {run: plant:make, cache_for: 1h}
  c: {run: plant:use, needs: {x: a}}
"""


def results_of(proj, task: str) -> list[Path]:
    return sorted((proj.root / ".targetrun/results").glob(f"*/{task}.pkl"))


def test_a_replaced_result_of_a_task_without_target_is_never_loaded(project):
    proj = project(RESULTS, plant=PLANT)
    assert proj.cli("run").code == 0
    [result_file] = results_of(proj, "a")
    result_file.write_bytes(planted(proj, 41))
    shown = proj.cli("show", "a")
    assert shown.code == 2 and "not what targetrun wrote there" in shown.err and not marked(proj)
    status = proj.cli("status", "--json")
    assert states(status)["a"].startswith("will run: checkpoint corrupt") and not marked(proj)
    run = proj.cli("run", "--json")
    assert run.code == 0 and states(run)["a"] == "succeeded" and not marked(proj)


def test_a_result_without_target_replaced_during_the_run_is_refused_by_its_reader_and_rebuilt(project):
    proj = project("""
    tasks:
      a: {run: plant:make, cache_for: 1h}
      evil: {run: plant:plant_at, args: {pattern: .targetrun/results/*/a.pkl}}
      c: {run: plant:use, needs: {x: a, y: evil}}
    """, plant=PLANT)
    assert proj.cli("run", "a").code == 0
    result = proj.cli("run", "--json")  # a: cache hit, checked while planning; evil then replaces it; c reads it
    assert result.code == 0, result.text
    assert states(result)["a"] == "succeeded" and proj.counts() == {"make": 2, "evil": 1, "use": 1}
    assert not marked(proj)


# -- (e) the spec cache -----------------------------------------------------------------


def test_a_pickle_planted_in_the_spec_cache_is_never_loaded(project):
    proj = project("tasks:\n  a: {run: plant:make, target: out/a.json}\n", plant=PLANT)
    assert proj.cli("status").code == 0
    cached = list((proj.root / ".targetrun/spec").iterdir())
    assert cached
    for path in cached:  # whatever the cache file is called, a pickle now sits there
        for suffix in (".json", ".pickle"):
            path.with_suffix(suffix).write_bytes(planted(proj, 1))
    for trust in ((), ("--trust",)):
        result = proj.cli("status", *trust)
        assert result.code == 0, result.text
        assert not marked(proj)
    assert proj.cli("run").code == 0 and not marked(proj)


def test_the_spec_cache_gives_back_the_same_spec(project):
    from targetrun.pipelinefile import load_pipeline

    proj = project("""
    name: shapes
    params: {day: 2024-01-02, at: 2024-01-02T03:04:05+02:00, odd: {1: one, "x": [1, 2.5, null, true]}}
    results: {lake: {url: /tmp/lake, options: {anon: true}}}
    tasks:
      a: {run: plant:make, args: {value: [1, {b: 2}]}, target: out/a.json, cache_for: 1h,
          cache_validator: all_inputs}
      m: {run: plant:square, foreach: [1, 2], args: {x: "{item}"}, target: "out/m/{item}.json"}
    """, plant=PLANT)
    first = load_pipeline(str(proj.file))  # parsed, then cached
    assert [p.suffix for p in (proj.root / ".targetrun/spec").iterdir()] == [".json"]
    again = load_pipeline(str(proj.file))  # from the cache
    assert again == first and again is not first
    assert again.params["odd"] == {1: "one", "x": [1, 2.5, None, True]}


def test_the_spec_cache_leaves_defaults_out_and_keeps_what_was_set(project):
    """Tasks are written as one table whose columns are only the fields some task sets
    (a third of the bytes for 10,000 tasks, and of the decoding), and read back the same."""
    import json

    from targetrun.pipelinefile import load_pipeline

    proj = project("""
    tasks:
      plain: {run: plant:make, target: out/p.json}
      tuned: {run: plant:make, target: out/t.json, max_retries: 2}
    """, plant=PLANT)
    first = load_pipeline(str(proj.file))
    (cached,) = (proj.root / ".targetrun/spec").iterdir()
    table = json.loads(cached.read_text())["tasks"]
    assert "foreach" not in table["fields"] and "checkpoint" not in table["fields"], table["fields"]
    rows = {row[0]: dict(zip(table["fields"], row)) for row in table["rows"]}
    assert rows["tuned"]["max_retries"] == 2 and rows["plain"]["max_retries"] == 0
    again = load_pipeline(str(proj.file))
    assert again == first and again.tasks["plain"].max_retries == 0 and again.tasks["plain"].checkpoint is True


# -- class 11: mapping over a corrupt upstream list ------------------------------------


LIST = """
tasks:
  numbers: {run: plant:numbers, args: {n: 4}, target: out/numbers.%s}
  squares: {run: plant:square, needs: {x: numbers}, foreach: {needs: numbers}, target: "out/sq/{item}.json"}
  total: {run: plant:total, needs: {values: squares}, target: out/total.json}
"""


def same_size_edit(path: Path) -> None:
    data = path.read_bytes()
    assert data.count(b"3") == 1
    path.write_bytes(data.replace(b"3", b"7"))  # [0, 1, 2, 7]: a list still, the same size


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-3])


@pytest.mark.parametrize("suffix,damage", [("json", same_size_edit), ("json", truncate), ("pkl", truncate)])
def test_a_corrupt_upstream_list_is_rebuilt_before_children_are_made_from_it(project, suffix, damage):
    proj = project(LIST % suffix, plant=PLANT)
    assert proj.cli("run").code == 0
    assert json.loads(proj.read("out/total.json")) == 14
    damage(proj.root / f"out/numbers.{suffix}")
    (proj.root / "out/total.json").unlink()
    status = proj.cli("status", "--json")
    assert status.code == 0, status.text
    assert states(status)["numbers"].startswith("will run: checkpoint corrupt")
    assert not any(name.startswith("squares[") for name in states(status))  # no child from the corrupt list
    assert proj.cli("status", "--check").code == 1
    result = proj.cli("run", "--json")
    assert result.code == 0, result.text
    assert json.loads(proj.read("out/total.json")) == 14  # 0 + 1 + 4 + 9, from the rebuilt list
    assert proj.counts()["numbers"] == 2 and "square-7" not in proj.counts()
    assert proj.cli("status", "--check").code == 0


def test_an_unreadable_unrecorded_upstream_list_is_a_clear_error(project):
    proj = project(LIST % "json", plant=PLANT)
    (proj.root / "out").mkdir()
    (proj.root / "out/numbers.json").write_text("[0, 1,")
    for command in ("status", "run"):
        result = proj.cli(command)
        assert result.code == 2, result.text
        assert "cannot read the value of 'numbers'" in result.err and "not valid JSON" in result.err
        assert "Traceback" not in result.text


# -- the rule as an invariant ----------------------------------------------------------


def test_every_read_path_goes_through_the_one_reader():
    """Stored bytes become values in one place: ``checkpoints.read_value``. No other module
    calls a serializer's ``load``, and only the pickle serializer imports pickle to load."""
    import ast

    import targetrun

    root = Path(targetrun.__file__).parent
    loaders, picklers = [], []
    for path in sorted(root.rglob("*.py")):
        where = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and node.args and not (isinstance(node.func.value, ast.Name) and node.func.value.id in ("json", "api")):
                loaders.append(where)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("pickle", "marshal", "dill", "cloudpickle") and node.attr.startswith("load"):
                picklers.append(where)
            if isinstance(node, ast.Name) and node.id in ("Unpickler", "SpooledTemporaryFile") \
                    and where not in ("checkpoints.py",):
                picklers.append(where)
    # the serializers themselves, and testing.py's serializer contract
    assert sorted({w for w in loaders if not w.startswith("serializers/")}) == ["checkpoints.py", "testing.py"]
    assert sorted(set(picklers)) == ["serializers/builtin.py"]


def test_a_corrupt_child_of_a_mapped_task_is_rebuilt_before_what_needs_the_mapped_task(project):
    proj = project("""
    tasks:
      squares: {run: plant:slow_square, foreach: [1, 2, 3], args: {x: "{item}"}, target: "out/sq/{item}.json"}
      total: {run: plant:total, needs: {values: squares}, target: out/total.json}
    """, plant=PLANT + '''
def slow_square(x):
    import time
    time.sleep(0.5)  # a rebuild takes a while: a reader that does not wait for it reads the corrupt file
    return square(x)
''')
    assert proj.cli("run").code == 0
    path = proj.root / "out/sq/2.json"
    path.write_text(path.read_text().replace("4", "5"))  # same size, other content
    (proj.root / "out/total.json").unlink()
    result = proj.cli("run", "-j", "2", "--json")
    assert result.code == 0, result.text
    assert states(result)["squares[1]"] == "succeeded"
    assert json.loads(proj.read("out/total.json")) == 1 + 4 + 9
