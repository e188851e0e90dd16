"""Parameter staleness by value *and type* (DESIGN.md "Staleness": "parameters (each one
used, with its value)"): ``1`` and ``"1"`` are different values -- a lone ``{params.n}``
passes the typed value to the task -- even though both read "1" on a command line."""

from __future__ import annotations

import json
import sqlite3

import pytest

TASKS = '''
def show(n, flag):
    return {"n": n, "type": type(n).__name__, "flag": flag}
'''

PIPELINE = '''
name: typed
params:
  n: {n}
  flag: {flag}
  api_token: {token}
tasks:
  shown:
    run: tasks:show
    args: {{n: "{{params.n}}", flag: "{{params.flag}}"}}
    target: out/shown.json
  keyed:
    run: tasks:show
    args: {{n: "{{params.api_token}}", flag: "{{params.flag}}"}}
    target: out/keyed.json
'''


def make(project, n: str = "1", flag: str = "true", token: str = "12345"):
    return project(PIPELINE.format(n=n, flag=flag, token=token), tasks=TASKS)


def stale(p, *args: str) -> dict[str, list[dict[str, str]]]:
    done = p.cli("status", "--json", *args)
    assert done.code in (0, 1), done.text
    return {row["task"]: row["stale"] for row in json.loads(done.out)["tasks"]}


def edit_params(p, **values: str) -> None:
    text = p.file.read_text()
    for name, value in values.items():
        lines = [f"  {name}: {value}" if line.startswith(f"  {name}: ") else line for line in text.splitlines()]
        text = "\n".join(lines) + "\n"
    p.file.write_text(text)


@pytest.mark.parametrize("before, after, detail", [
    ("1", '"1"', "n: 1 → '1'"),
    ('"1"', "1", "n: '1' → 1"),
    ("1", "1.0", "n: 1 → 1.0"),
    ("1", "2", "n: 1 → 2"),
])
def test_a_parameter_changed_in_type_or_value_is_stale_and_says_how(project, before, after, detail):
    p = make(project, n=before)
    assert p.cli("run").code == 0
    assert stale(p)["shown"] == []
    edit_params(p, n=after)
    assert stale(p)["shown"] == [{"what": "parameters", "detail": detail}]
    text = p.cli("status").out
    if "'" in detail:  # the same text, another type: "made with" cannot say it, the stale note does
        assert f"(stale: parameters changed — {detail})" in text
    else:
        assert f"(made with n={before})" in text


def test_a_boolean_given_as_text_on_the_command_line_is_stale(project):
    p = make(project)
    assert p.cli("run").code == 0
    assert stale(p, "-p", "flag=true")["shown"] == []  # -p reads YAML: the same boolean
    assert stale(p, "-p", 'flag="true"')["shown"] == [{"what": "parameters", "detail": "flag: true → 'true'"}]
    done = p.cli("run", "--rebuild-stale", "--json", "-p", 'flag="true"')
    assert done.code == 0, done.text
    shown = next(t for t in json.loads(done.out)["tasks"] if t["task"] == "shown")
    assert shown["decision"] == "will run: parameters changed (flag: true → 'true')"
    assert json.loads(p.read("out/shown.json"))["flag"] == "true"
    assert stale(p, "-p", 'flag="true"')["shown"] == []


def test_a_secret_changed_in_type_is_stale_without_showing_its_value(project):
    p = make(project)
    assert p.cli("run").code == 0
    edit_params(p, api_token='"12345"')
    (item,) = stale(p)["keyed"]
    assert item["what"] == "parameters" and item["detail"].startswith("api_token: ***")
    assert "12345" not in item["detail"] and "now a str" in item["detail"]


def _rewrite(p, change) -> None:
    db = sqlite3.connect(p.root / ".targetrun/state.db")
    try:
        for location, text in db.execute("SELECT location, record FROM checkpoints").fetchall():
            record = json.loads(text)
            change(record)
            db.execute("UPDATE checkpoints SET record = ? WHERE location = ?", (json.dumps(record), location))
        db.commit()
    finally:
        db.close()


def test_records_without_typed_parameters_are_read_and_never_stale_by_type(project):
    p = make(project)
    assert p.cli("run").code == 0
    _rewrite(p, lambda record: record.pop("params", None))  # as an older targetrun may have left it
    edit_params(p, n='"1"')
    found = stale(p)  # its type is unknown: never stale by parameters (the templated argument's input tells)
    assert [s for row in found.values() for s in row if s["what"] == "parameters"] == []
    edit_params(p, n="2")
    assert stale(p)["shown"] == [{"what": "parameters", "detail": "n: 1 → 2"}]  # the text still tells values apart
    assert p.cli("run").code == 0 and p.cli("status", "--check").code == 0


def test_a_typed_fingerprint_of_another_making_is_never_a_type_change(project):
    """A record whose parameter fingerprint matches neither reading of its text (another
    encoding, another targetrun) says nothing about the type: not stale."""
    p = make(project)
    assert p.cli("run").code == 0
    _rewrite(p, lambda record: record["params"].update(n="sha256:" + "0" * 64))
    assert stale(p) == {"shown": [], "keyed": []}
