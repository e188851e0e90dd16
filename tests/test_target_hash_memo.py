"""An upstream target no record vouches for (written by something else) is fingerprinted
by hashing its bytes -- once per plan while it stays the same file, not once for every
downstream task that reads it; and again once it changed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from targetrun import fingerprint


def _counting(monkeypatch, path) -> list[str]:
    """Count the hashes of the file at ``path``, whatever it holds at the time (a wrapper of
    our own hashing function: the file and the filesystem are real)."""
    hashed: list[str] = []
    real = fingerprint.stream_digest

    def counting(f, copy_to=None):
        size, digest = real(f, copy_to)
        if os.path.exists(path) and hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest:
            hashed.append(digest)
        return size, digest

    monkeypatch.setattr(fingerprint, "stream_digest", counting)
    return hashed


@pytest.mark.parametrize("when", ["there when planned", "appeared during the run"])
def test_an_unrecorded_upstream_read_by_many_tasks_is_hashed_once(project, monkeypatch, when):
    downstream = "".join(f"  down{i}: {{run: m:use, needs: [up], args: {{i: {i}}}, target: out/down{i}.json}}\n"
                         for i in range(6))
    if when == "there when planned":
        upstream = "  up: {shell: \"echo mine > {output}\", target: data/up.txt}\n"
    else:  # ``maker`` writes up's target as a side effect: up is found made, when its turn comes
        upstream = ("  maker: {shell: \"mkdir -p data; echo made elsewhere > data/up.txt; echo ok > {output}\", "
                    "target: out/maker.txt}\n"
                    "  up: {shell: \"echo mine > {output}\", needs: [maker], target: data/up.txt}\n")
    proj = project("tasks:\n" + upstream + downstream, m="def use(up, i):\n    return [up, i]\n")
    if when == "there when planned":
        proj.write("data/up.txt", "made elsewhere\n")  # by something else: no record vouches for it
    hashed = _counting(monkeypatch, str(proj.root / "data" / "up.txt"))
    result = proj.cli("run", "--json")
    assert result.code == 0, result.text
    states = {t["task"]: t["state"] for t in json.loads(result.out)["tasks"]}
    assert states["up"] == "skipped" and {states[f"down{i}"] for i in range(6)} == {"succeeded"}
    assert len(hashed) == 1, hashed


def test_an_unrecorded_upstream_that_changes_is_hashed_again(project, monkeypatch):
    """The memo is keyed by the file's stat: a target rewritten meanwhile (another size) is
    not answered from it."""
    from targetrun.engine.plan import Planner
    from targetrun.model import Location

    proj = project("tasks:\n  up: {shell: \"echo x > {output}\", target: data/up.txt}\n")
    up = proj.write("data/up.txt", "first\n")
    hashed = _counting(monkeypatch, str(up))
    from targetrun import api

    spec = api.load(str(proj.file))
    with api.backends(spec) as opened:
        planner = Planner(spec, api.run_context(spec), opened.storage, opened.store)
        where = Location("local", str(up))
        first = planner.target_fingerprint(where)
        assert planner.target_fingerprint(where) == first and len(hashed) == 1
        up.write_text("second, longer\n")
        second = planner.target_fingerprint(where)
        assert second != first and len(hashed) == 2
        up.unlink()
        assert planner.target_fingerprint(where) == fingerprint.PENDING
