"""Containment and checked input (DESIGN.md §3 "Trust and containment").

Each test drives the real CLI (in-process ``invoke`` or ``python -m targetrun``) on real
files, and checks what happened on disk as well as the exit code and message:

* a rendered target stays under the folder its template names, whatever the parameters
  (no URL or absolute path from a value, no ``..``, no symlinked folder leading out), and
  ``invalidate`` removes only a file a checkpoint record says targetrun wrote;
* templates read only the documented keys (no attributes, no dunders, ``[i]`` only on a
  list or mapping, bounded format widths);
* a value substituted into a shell command never runs, and placeholders where quoting
  cannot hold (inside quotes, heredocs, backticks, comments) are refused at load time;
* bad input anywhere (``-p``, ``--params-file``, ``--date``, ``cache_for``, YAML keys,
  ``cache:`` URLs, ``${VAR}``) is exit 2 with one paragraph, never a traceback.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from targetrun import api
from targetrun.cli import invoke
from targetrun.errors import UsageError


def write(root: Path, pipeline: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "Pipelinefile.yaml"
    path.write_text(textwrap.dedent(pipeline).lstrip("\n"))
    return path


def cli(path: Path, *args: str) -> tuple[int, str, str]:
    """The CLI in-process against ``path``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = list(args)
    argv[1:1] = ["-f", str(path)]
    code = invoke(argv, out, err)
    return code, out.getvalue(), err.getvalue()


def assert_usage_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.startswith("targetrun: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- class 3: a target stays inside its location ---------------------------------


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder outside the project that nothing may write to or delete."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious\n")
    return folder


FREE_TARGET = """
params:
  out: out/data.txt
tasks:
  a:
    shell: "echo hello > {output}"
    target: "{params.out}"
"""


@pytest.mark.parametrize("value", ["file://{victim}", "file://{victim}/x.txt", "memory://elsewhere/x.txt"])
@pytest.mark.parametrize("command", ["run", "status", "invalidate"])
def test_a_parameter_cannot_move_a_target_out_of_its_location(tmp_path, victim, value, command):
    path = write(tmp_path / "project", FREE_TARGET)
    args = [command, "a"] if command == "invalidate" else [command]
    code, out, err = cli(path, *args, "-p", f"out={value.format(victim=victim)}")
    assert_usage_error(code, err, "tasks.a")
    assert "outside its result location" in err or "protocol or root" in err, err
    assert tree(victim) == ["keep.txt"] and (victim / "keep.txt").read_text() == "precious\n"
    assert not (tmp_path / "project" / "out").exists()


def test_a_value_cannot_climb_out_of_the_folder_its_template_names(tmp_path, victim):
    """`out/{params.name}.txt` with name=../Pipelinefile stayed in the project, but wrote
    beside the Pipelinefile instead of under out/; the ..-segment came from a value."""
    path = write(tmp_path / "project", """
    params:
      name: plain
    tasks:
      a:
        shell: "echo hello > {output}"
        target: "out/{params.name}.txt"
    """)
    for value in ("../Pipelinefile", "../../victim/keep", "x/../../steps"):
        for command in (["run"], ["status"], ["invalidate", "a"]):
            code, _, err = cli(path, *command, "-p", f"name={value}")
            assert_usage_error(code, err, "outside its result location", "'..'")
    assert [p for p in tree(tmp_path / "project") if not p.startswith(".targetrun")] == ["Pipelinefile.yaml"]
    assert (victim / "keep.txt").read_text() == "precious\n"


def test_invalidate_with_a_url_parameter_no_longer_removes_a_folder_outside(tmp_path, victim):
    """The reported case: `-p out=file:///somewhere` then `invalidate` removed the folder."""
    path = write(tmp_path / "project", FREE_TARGET)
    assert cli(path, "run")[0] == 0
    done = subprocess.run([sys.executable, "-m", "targetrun", "invalidate", "a", "-f", str(path),
                           "-p", f"out=file://{victim}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "removed" not in done.stdout and "Traceback" not in done.stderr
    assert (victim / "keep.txt").read_text() == "precious\n"


def test_a_value_cannot_reach_outside_through_a_symlinked_folder(tmp_path, victim):
    path = write(tmp_path / "project", """
    params:
      name: plain
    tasks:
      a:
        shell: "echo hello > {output}"
        target: "out/{params.name}.txt"
    """)
    (tmp_path / "project" / "out").mkdir()
    (tmp_path / "project" / "out" / "link").symlink_to(victim, target_is_directory=True)
    for command in (["run"], ["status"], ["invalidate", "a"]):
        code, _, err = cli(path, *command, "-p", "name=link/keep")
        assert_usage_error(code, err, "symlink", str(victim))
    code, _, err = cli(path, "run", "-p", "name=inside")  # an ordinary value still works
    assert code == 0, err
    assert (tmp_path / "project" / "out" / "inside.txt").read_text() == "hello\n"
    assert tree(victim) == ["keep.txt"]
    # a symlinked folder that the template's own text names is the author's choice
    (tmp_path / "project" / "Pipelinefile.yaml").write_text(
        (tmp_path / "project" / "Pipelinefile.yaml").read_text().replace("out/{params.name}", "out/link/{params.name}"))
    code, _, err = cli(path, "run", "-p", "name=mine")
    assert code == 0, err
    assert (victim / "mine.txt").read_text() == "hello\n"


def test_allow_outside_targets_lets_the_template_not_the_value_leave(tmp_path, victim):
    path = write(tmp_path / "project", f"""
    allow_outside_targets: true
    params:
      name: a
      where: x.txt
    tasks:
      a:
        shell: "echo hello > {{output}}"
        target: "{victim}/{{params.name}}.txt"
      b:
        shell: "echo hello > {{output}}"
        target: "{{params.where}}"
    """)
    code, _, err = cli(path, "run", "a")
    assert code == 0, err
    assert (victim / "a.txt").exists()
    code, _, err = cli(path, "run", "a", "-p", "name=../escaped")
    assert_usage_error(code, err, "'..'")
    code, _, err = cli(path, "run", "b", "-p", f"where={victim}/b.txt")
    assert_usage_error(code, err, "outside its result location")
    assert not (tmp_path / "escaped.txt").exists() and not (victim / "b.txt").exists()


def test_invalidate_removes_a_recorded_file_only(tmp_path):
    path = write(tmp_path / "project", """
    params:
      name: a
    tasks:
      a:
        shell: "echo hello > {output}"
        target: "out/{params.name}.txt"
    """)
    out = tmp_path / "project" / "out"
    out.mkdir()
    (out / "mine.txt").write_text("written by hand\n")
    code, _, err = cli(path, "invalidate", "a", "-p", "name=mine")
    assert_usage_error(code, err, "no checkpoint record")
    assert (out / "mine.txt").read_text() == "written by hand\n"

    (out / "folder.txt").mkdir()
    (out / "folder.txt" / "inside").write_text("x")
    code, _, err = cli(path, "invalidate", "a", "-p", "name=folder")
    assert_usage_error(code, err, "is a folder")
    assert (out / "folder.txt" / "inside").exists()

    assert cli(path, "run")[0] == 0
    code, printed, err = cli(path, "invalidate", "a")
    assert code == 0 and "removed target" in printed, err
    assert not (out / "a.txt").exists()


def test_invalidate_never_removes_a_folder_even_one_a_run_recorded(tmp_path):
    path = write(tmp_path / "project", """
    tasks:
      a:
        shell: "mkdir {output} && echo x > {output}/inside"
        target: out/dir
    """)
    code, _, err = cli(path, "run")
    assert code == 0, err
    assert (tmp_path / "project" / "out" / "dir" / "inside").exists()
    code, _, err = cli(path, "invalidate", "a")
    assert_usage_error(code, err, "is a folder")
    assert (tmp_path / "project" / "out" / "dir" / "inside").exists()


# -- class 4: templates read only the documented keys -------------------------------


def test_a_dunder_parameter_cannot_reach_the_environment(tmp_path, monkeypatch):
    """The reported case: a parameter named __init__ walked to module globals and os.environ."""
    monkeypatch.setenv("TARGETRUN_TEST_SECRET", "s3cr3t-value")
    path = write(tmp_path / "project", """
    params:
      __init__: x
    tasks:
      a:
        shell: "echo hi"
        target: "out/{params.__init__.__globals__[shlex].os.environ[TARGETRUN_TEST_SECRET]}.txt"
    """)
    for command in ("validate", "status", "run"):
        code, out, err = cli(path, command)
        assert_usage_error(code, err)
        assert "s3cr3t" not in out + err


@pytest.mark.parametrize("template, fragment", [
    ("out/{params.x.__class__}.txt", "reads the attribute '__class__'"),
    ("out/{params.x.upper}.txt", "reads the attribute 'upper'"),
    ("out/{params.x[__class__]}.txt", "dunder"),
    ("out/{parameters[__init__]}.txt", "dunder"),
    ("out/{today.__class__}.txt", "reads the attribute"),
    ("out/{today:>100000000}.txt", "width of 100,000,000"),
    ("out/{task_run_count:.100000f}.txt", "precision of 100,000"),
    ("out/{params.x[0]}.txt", "indexes a str"),
    ("out/{today[0]}.txt", "indexes a str"),
    ("out/{params.x!r}.txt", "conversion"),
    ("out/{params.x:{today}}.txt", "nested fields"),
    ("out/{params}.txt", "names no parameter"),
])
def test_templates_read_only_the_documented_keys(tmp_path, template, fragment):
    path = write(tmp_path / "project", f"""
    params:
      x: hello
    tasks:
      a:
        shell: "echo hi"
        target: "{template}"
    """)
    began = time.monotonic()
    code, _, err = cli(path, "validate")
    assert_usage_error(code, err, "tasks.a.target", fragment)
    assert time.monotonic() - began < 5


def test_an_index_checked_at_load_is_checked_again_when_a_value_changes_type(tmp_path):
    path = write(tmp_path / "project", """
    params:
      xs: [a, b]
    tasks:
      a:
        shell: "echo hi > {output}"
        target: "out/{params.xs[1]}.txt"
    """)
    assert cli(path, "validate")[0] == 0
    code, _, err = cli(path, "run", "-p", "xs=abc")
    assert_usage_error(code, err, "indexes a str")
    code, _, err = cli(path, "run", "-p", "xs=[c]")
    assert_usage_error(code, err, "out of range")
    assert not (tmp_path / "project" / "out").exists()
    code, _, err = cli(path, "run", "-p", "xs=[c, d]")
    assert code == 0, err
    assert (tmp_path / "project" / "out" / "d.txt").exists()


# -- class 5: no value ever runs in a shell ------------------------------------------

HOSTILE = ["touch", "$(touch PWNED)", "`touch PWNED`", "'; touch PWNED; '", '"; touch PWNED; "', "a\ntouch PWNED\n",
           "x'$(touch PWNED)'y", "\\'; touch PWNED #"]


REFUSED = [
    'echo "{params.x}" > {output}',
    "echo '{params.x}' > {output}",
    "cat > {output} <<EOF\n{params.x}\nEOF",
    "cat > {output} <<'EOF'\n{params.x}\nEOF",
    "echo `echo {params.x}` > {output}",
    "echo \\{params.x} > {output}",
    "echo ${params.x} > {output}",
    "echo $'{params.x}' > {output}",
    "echo ${{HOME:-{params.x}}} > {output}",
    "echo $(( {params.x} )) > {output}",
    "echo hi > {output} # {params.x}",
    'echo "$(echo "{params.x}")" > {output}',
    "{params.x} PWNED; echo > {output}",
    "echo > {output}; X=1 {params.x} PWNED",
    "echo > {output} && eval {params.x} PWNED",
]
BARE = [
    "printf '%s' {params.x} > {output}",
    "printf '%s' pre-{params.x}-post > {output}",
    "X={params.x}; printf '%s' \"$X\" > {output}",
    "printf '%s' \"$(printf '%s' {params.x})\" > {output}",
    "cat <<'EOF' > /dev/null\nnot a placeholder\nEOF\nprintf '%s' {params.x} > {output}",
]


@pytest.mark.parametrize("shell", REFUSED)
def test_placeholders_where_quoting_cannot_hold_are_refused_at_load(tmp_path, shell):
    project = tmp_path / "project"
    path = write(project, "params:\n  x: safe\ntasks:\n  a:\n    target: out/a.txt\n    shell: " + json.dumps(shell) + "\n")
    code, _, err = cli(path, "validate")
    assert_usage_error(code, err, "tasks.a.shell", "{params.x}")
    for value in HOSTILE:
        code, _, err = cli(path, "run", "-p", f"x={value}")
        assert code == 2, err
    assert not (project / "PWNED").exists() and not (project / "out").exists()


def test_no_value_ever_runs_in_a_shell(tmp_path):
    """Every shell form, bare or quoted, run by /bin/sh in a real process: a bare
    placeholder passes every hostile value as one literal word; the others are refused
    before anything runs. Either way no PWNED file appears. (A refused form is refused at
    load whatever the value -- the test above tries every value in-process -- so here each
    refused form runs with the two values that would break out of most forms if it ran.)"""
    for number, shell in enumerate(BARE + REFUSED):
        project = tmp_path / f"p{number}"
        path = write(project, "params:\n  x: safe\ntasks:\n  a:\n    target: out/a.txt\n    shell: "
                     + json.dumps(shell) + "\n")
        for value in (HOSTILE if shell in BARE else HOSTILE[:2]):
            done = subprocess.run([sys.executable, "-m", "targetrun", "run", "--force", "a", "-f", str(path),
                                   "--params-file", str(_params_file(tmp_path, value))],
                                  capture_output=True, text=True, timeout=60, cwd=project)
            assert not (project / "PWNED").exists(), (shell, value)
            if shell in REFUSED:
                assert done.returncode == 2 and "Traceback" not in done.stderr, (shell, done.stderr)
                continue
            assert done.returncode == 0, done.stderr
            written = (project / "out" / "a.txt").read_text()
            expected = value.rstrip("\n") if "$(" in shell else value  # $(...) drops trailing newlines
            assert written.replace("pre-", "", 1).removesuffix("-post") == expected, (shell, value, written)


def _params_file(folder: Path, value: str) -> Path:
    path = folder / "params.json"
    path.write_text(json.dumps({"x": value}))
    return path


# -- class 10: unbounded or unchecked input ------------------------------------------

LAUGHS = ("[&a [1,1,1,1,1,1,1,1,1],&b [*a,*a,*a,*a,*a,*a,*a,*a,*a],&c [*b,*b,*b,*b,*b,*b,*b,*b,*b],"
          "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c],&e [*d,*d,*d,*d,*d,*d,*d,*d,*d],&f [*e,*e,*e,*e,*e,*e,*e,*e,*e],"
          "&g [*f,*f,*f,*f,*f,*f,*f,*f,*f],&h [*g,*g,*g,*g,*g,*g,*g,*g,*g],&i [*h,*h,*h,*h,*h,*h,*h,*h,*h]]")

SIMPLE = """
params:
  x: plain
tasks:
  a:
    shell: "echo {params.x} > {output}"
    target: out/a.txt
"""


def test_an_aliased_parameter_value_is_refused_quickly(tmp_path):
    path = write(tmp_path / "project", SIMPLE)
    assert len(f"x={LAUGHS}") < 420
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "targetrun", "status", "-f", str(path), "-p", f"x={LAUGHS}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "-p x" in done.stderr and "more than 100,000 values" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - began < 10
    (tmp_path / "params.yaml").write_text(f"x: {LAUGHS}\n")
    code, _, err = cli(path, "status", "--params-file", str(tmp_path / "params.yaml"))
    assert_usage_error(code, err, "params.yaml", "more than 100,000 values")


def test_the_python_api_holds_values_to_the_same_limits(tmp_path):
    path = write(tmp_path / "project", SIMPLE)
    shared: list[object] = [1] * 10
    for _ in range(8):
        shared = [shared] * 10  # 10**8 leaves through shared references
    for bad in ("a\0b", shared, {"k": ["\0"]}):
        with pytest.raises(UsageError):
            api.status(str(path), params={"x": bad})
    with pytest.raises(UsageError, match="reserved"):
        api.status(str(path), params={"__init__": 1})


@pytest.mark.parametrize("params_file, fragment", [
    ('{"x": "a\\u0000b"}', "NUL byte"),
    ('{"__init__": 1}', "reserved"),
    ("yes: 1\n", "boolean"),
])
def test_a_bad_params_file_is_one_paragraph(tmp_path, params_file, fragment):
    path = write(tmp_path / "project", SIMPLE)
    (tmp_path / "p.yaml").write_text(params_file)
    code, _, err = cli(path, "status", "--params-file", str(tmp_path / "p.yaml"))
    assert_usage_error(code, err, fragment)


@pytest.mark.parametrize("command, date", [
    (command, date) for command in ("run", "status", "invalidate") for date in ("0001-01-01", "9999-12-31")
] + [("run", "0001-01-01..0001-01-03"), ("status", "9999-12-29..9999-12-31")])
def test_dates_at_the_ends_of_the_calendar_are_refused(tmp_path, date, command):
    path = write(tmp_path / "project", SIMPLE.replace("out/a.txt", "out/{yesterday}-{tomorrow}.txt"))
    args = [command, "a"] if command == "invalidate" else [command]
    code, _, err = cli(path, *args, "--date", date)
    assert_usage_error(code, err, "out of range")


def test_a_huge_cache_for_is_refused_at_load(tmp_path):
    path = write(tmp_path / "project", SIMPLE + "    cache_for: 99999999999999999999d\n")
    for command in ("validate", "status", "run"):
        code, _, err = cli(path, command)
        assert_usage_error(code, err, "tasks.a.cache_for", "1,000 years")
    path.write_text(SIMPLE + "    cache_for: 36500d\n")  # a century is fine
    assert cli(path, "run")[0] == 0 and cli(path, "status")[0] == 0


@pytest.mark.parametrize("keys", [("yes", "b"), ("on", "b"), ("true", '"True"'), ("a", "~")])
def test_yaml_boolean_and_null_keys_are_refused(tmp_path, keys):
    first, second = keys
    path = write(tmp_path / "project", f"""
    tasks:
      {first}:
        shell: "echo a"
      {second}:
        shell: "echo b"
    """)
    code, _, err = cli(path, "validate")
    assert_usage_error(code, err, "read by YAML as")


def test_yaml_boolean_keys_are_refused_in_params_and_options_too(tmp_path):
    path = write(tmp_path / "project", "params:\n  on: 1\ntasks:\n  a:\n    shell: echo\n")
    assert_usage_error(*_code_err(cli(path, "validate")), "params.on", "boolean true")
    path.write_text('params:\n  x: {"True": 1, true: 2}\ntasks:\n  a:\n    shell: echo\n')
    assert_usage_error(*_code_err(cli(path, "validate")), "boolean true")


def _code_err(result: tuple[int, str, str]) -> tuple[int, str]:
    return result[0], result[2]


@pytest.mark.parametrize("cache, env, fragment", [
    ("redis://127.0.0.1:notaport/0", {}, "port 'notaport'"),
    ("redis://:hunter2@127.0.0.1:${TR_TEST_PORT}/0", {"TR_TEST_PORT": "abc"}, "port 'abc'"),
    ("redis://127.0.0.1:6379/zero", {}, "database 'zero'"),
    ("redis://127.0.0.1:${TR_TEST_UNSET_PORT}/0", {}, "${TR_TEST_UNSET_PORT}"),
])
def test_a_bad_redis_url_is_refused_before_connecting(tmp_path, monkeypatch, cache, env, fragment):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TR_TEST_UNSET_PORT", raising=False)
    path = write(tmp_path / "project", f'cache: "{cache}"\n' + SIMPLE)
    code, out, err = cli(path, "status")
    assert_usage_error(code, err, fragment)
    assert "hunter2" not in out + err


def test_an_unset_variable_in_storage_options_is_refused_not_sent(tmp_path, monkeypatch):
    monkeypatch.delenv("TR_TEST_UNSET_TOKEN", raising=False)
    path = write(tmp_path / "project", """
    results:
      lake:
        url: memory://targetrun-containment-test
        options: {token: "${TR_TEST_UNSET_TOKEN}"}
    tasks:
      a:
        shell: "echo hi"
        target: a.txt
        result: lake
    """)
    code, _, err = cli(path, "status")
    assert_usage_error(code, err, "${TR_TEST_UNSET_TOKEN}", "not set")
    monkeypatch.setenv("TR_TEST_UNSET_TOKEN", "set-now")
    code, out, err = cli(path, "status")
    assert code == 0, err
    assert "set-now" not in out + err


def test_a_nul_byte_in_a_parameter_is_refused(tmp_path):
    path = write(tmp_path / "project", SIMPLE)
    (tmp_path / "p.json").write_text('{"x": "a\\u0000b"}')
    done = subprocess.run([sys.executable, "-m", "targetrun", "run", "-f", str(path),
                           "--params-file", str(tmp_path / "p.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "NUL byte" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "project" / "out").exists()


def test_logs_reads_only_a_run_folder_of_this_project(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.log").write_text("not a log of this project\n")
    path = write(tmp_path / "project", SIMPLE)
    code, out, err = cli(path, "logs", "a", "--run", "../../../elsewhere")
    assert_usage_error(code, err, "is not a run id")
    assert "not a log of this project" not in out


@pytest.mark.parametrize("command", [
    "sh -c {params.x} > {output}",
    "bash -x -c {params.x} > {output}",
    "/usr/bin/python3 -c {params.x} > {output}",
    "a={params.x}; $a > {output}",
    "trap {params.x} EXIT; echo > {output}",
])
def test_a_value_is_never_the_code_a_program_runs(tmp_path, command):
    """Beyond quoting: ``sh -c {x}``, ``trap {x}`` and ``a={x}; $a`` run the value as code."""
    path = write(tmp_path / "p", f"""
    params: {{x: hi}}
    tasks:
      t: {{shell: '{command}', target: o.txt}}
    """)
    code, _, err = cli(path, "run", "-p", f"x=touch {tmp_path / 'PWNED'}")
    assert_usage_error(code, err, "{params.x}")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("command", ["echo {params.x} > {output}", 'a={params.x}; echo "$a" > {output}',
                                     "sh script.sh {params.x} > {output}"])
def test_a_value_as_an_argument_is_still_fine(tmp_path, command):
    path = write(tmp_path / "p", f"""
    params: {{x: hi}}
    tasks:
      t: {{shell: '{command}', target: o.txt}}
    """)
    (tmp_path / "p" / "script.sh").write_text('echo "$1"\n')
    code, out, err = cli(path, "run", "-p", "x=$(touch PWNED)")
    assert code == 0, out + err
    assert "$(touch PWNED)" in (tmp_path / "p" / "o.txt").read_text()
    assert not (tmp_path / "p" / "PWNED").exists()
