"""Corrupt or foreign data is reported in plain words and handled, never a traceback."""

from __future__ import annotations

import json
import pickle

import pytest

CHAIN = """
name: corrupt
tasks:
  a: {run: steps:const, args: {value: [1, 2, 3], name: a}, target: out/a.json}
  b: {run: steps:total, needs: {x: a}, args: {name: b}, target: out/b.pkl}
  c: {run: steps:inc, needs: {x: b}, args: {name: c}, target: out/c.json}
"""
TOTAL = '''
def total(name="total", **values):
    _log(name)
    return sum(sum(v) if isinstance(v, list) else v for v in values.values())
'''


@pytest.fixture
def chain(project, steps):
    proj = project(CHAIN, steps=steps + TOTAL)
    assert proj.cli("run").code == 0
    return proj


def states(result) -> dict[str, tuple[str, str]]:
    return {t["task"]: (t["state"], t["decision"]) for t in json.loads(result.out)["tasks"]}


def test_truncated_checkpoint_is_recomputed_and_status_says_so(chain):
    data = (chain.root / "out/b.pkl").read_bytes()
    (chain.root / "out/b.pkl").write_bytes(data[:-1])
    (chain.root / "out/c.json").unlink()
    status = {t["task"]: t["state"] for t in json.loads(chain.cli("status", "--json").out)["tasks"]}
    assert status["b"] == f"will run: checkpoint corrupt (it is {len(data) - 1} bytes, {len(data)} were written)"
    result = chain.cli("run", "--json")
    assert result.code == 0, result.text
    assert states(result)["b"][0] == "succeeded" and states(result)["a"][0] == "skipped"
    assert json.loads(chain.read("out/c.json")) == 7
    assert chain.counts() == {"a": 1, "b": 2, "c": 2}


def test_same_size_different_content_is_caught_by_sha256(chain):
    path = chain.root / "out/a.json"
    path.write_bytes(path.read_bytes().replace(b"3", b"4"))
    (chain.root / "out/c.json").unlink()
    (chain.root / "out/b.pkl").unlink()
    result = chain.cli("run", "--json")
    assert result.code == 0
    assert states(result)["a"] == ("succeeded", "will run: checkpoint corrupt (its content is not what was written "
                                                "(sha256 differs))")
    assert json.loads(chain.read("out/a.json")) == [1, 2, 3]


def test_verify_checks_targets_nothing_reads(chain):
    (chain.root / "out/c.json").write_text("999999\n")
    assert chain.cli("run", "--json").code == 0 and chain.counts()["c"] == 1  # nothing reads c: not checked
    result = chain.cli("run", "--verify", "--json")
    assert states(result)["c"][0] == "succeeded" and json.loads(chain.read("out/c.json")) == 7


def test_a_pickle_nobody_recorded_needs_trust(project, steps):
    proj = project("""
    tasks:
      given: {run: steps:const, target: in/given.pkl}
      use: {run: steps:inc, needs: {x: given}, args: {name: use}, target: out/use.json}
    """, steps=steps)
    (proj.root / "in").mkdir()
    (proj.root / "in/given.pkl").write_bytes(pickle.dumps(41))
    refused = proj.cli("run")
    assert refused.code == 2 and "no targetrun run recorded" in refused.err and "--trust" in refused.err
    assert proj.counts() == {}
    assert proj.cli("show", "given").code == 2
    assert proj.cli("run", "--trust").code == 0
    assert json.loads(proj.read("out/use.json")) == 42
    assert proj.cli("show", "given", "--trust").out.strip() == "41"


def test_a_foreign_file_that_is_not_a_pickle_fails_the_reader_plainly(project, steps):
    proj = project("""
    tasks:
      given: {run: steps:const, target: in/given.pkl}
      use: {run: steps:inc, needs: {x: given}, args: {name: use}, target: out/use.json}
    """, steps=steps)
    (proj.root / "in").mkdir()
    (proj.root / "in/given.pkl").write_text("this is not a pickle")
    result = proj.cli("run", "--trust")
    assert result.code == 1
    assert "cannot read the value of 'given'" in result.out and "not a readable pickle" in result.out


def test_a_store_that_is_not_a_database_is_exit_3(chain):
    (chain.root / ".targetrun/state.db").write_bytes(b"definitely not sqlite" * 100)
    for name in ("state.db-wal", "state.db-shm"):
        (chain.root / ".targetrun" / name).unlink(missing_ok=True)
    for command in ("run", "status"):
        result = chain.cli(command)
        assert result.code == 3, result.text
        assert "cannot be used" in result.err and "move it aside" in result.err and "Traceback" not in result.text


def test_a_redis_key_of_the_wrong_type_is_exit_3(project, steps, redis_url):
    import redis

    proj = project(f"name: wrongtype\ncache: {redis_url}\ntasks:\n  t: {{run: steps:const, target: out/t.json}}\n",
                   steps=steps)
    client = redis.Redis.from_url(redis_url)
    client.set("targetrun:last:wrongtype", "a string where a hash belongs")
    client.close()
    result = proj.cli("run")
    assert result.code == 3 and "key of the wrong type" in result.err and "Traceback" not in result.text
