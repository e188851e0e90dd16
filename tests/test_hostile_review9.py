"""Hostile review, round 9: a result URL's password in the state store, control characters
in every line a command prints, recovery's "a live run writes it" guard, and hostile input,
state and environment."""

from __future__ import annotations

import shutil

from tests.clirun import in_process, write_project

ESCAPES = "b\x1b[2Jz\x07\u202e"  # clear screen, bell, right-to-left override


def test_paths_a_command_prints_have_their_control_characters_escaped(tmp_path):
    """``show --location`` printed a target rendered from a parameter as it was, and
    ``validate``, ``report`` and ``run --report`` the path they were given: an escape
    sequence in it acted on the terminal (cleared it, retitled it, reversed the text). Each
    is now shown with its control characters as escapes, as ``logs`` and ``status`` show them."""
    root = write_project(tmp_path / "p", "params: {x: a}\ntasks:\n  one: {run: 'steps:f', target: 'out/{params.x}.pkl'}\n",
                         **{"steps.py": "def f():\n    return 5\n"})
    weird = f"P{ESCAPES}.yaml"
    shutil.copy(root / "Pipelinefile.yaml", root / weird)
    said = [in_process(root, "run", "-p", f"x={ESCAPES}", "--report", f"r{ESCAPES}.html"),
            in_process(root, "show", "--location", "one", "-p", f"x={ESCAPES}"),
            in_process(root, "validate", "-f", weird),
            in_process(root, "report", "-o", f"q{ESCAPES}.html")]
    assert [done.returncode for done in said] == [0, 0, 0, 0], [done.stdout + done.stderr for done in said]
    assert said[1].stdout == f"{root}/out/b\\x1b[2Jz\\x07\\u202e.pkl\n"
    for done in said:
        assert not any(c in done.stdout + done.stderr for c in "\x1b\x07\u202e"), done
        assert "\\x1b[2Jz\\x07\\u202e" in done.stdout + done.stderr, done
