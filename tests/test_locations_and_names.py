"""Locations and task names that could never work are refused when the file loads: a URL
whose protocol no storage serves (or whose library is not installed), and a task name too
long to become part of a file name. One paragraph naming file, line and key; exit 2 from
`validate`, `status` and `run` alike, before anything runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

from targetrun.resolve import MAX_TASK_NAME

SHELL_TASK = '{shell: "echo hi > {output}", target: out.txt}'


@pytest.mark.parametrize("pipeline, key, line", [
    ('results:\n  lake: {url: "nosuch://bucket/x"}\ntasks:\n  a: {shell: "echo hi", target: a.txt, result: lake}\n',
     "results.lake.url", 2),
    ('results:\n  lake:\n    url: "nosuch://bucket/x"\n    options: {anon: true}\n'
     'tasks:\n  a: {shell: "echo hi", target: a.txt, result: lake}\n', "results.lake.url", 3),
    ('tasks:\n  a: {shell: "echo hi", target: a.txt, result: "nosuch://bucket"}\n', "tasks.a.result", 2),
    ('defaults: {result: "nosuch://bucket"}\ntasks:\n  a: {shell: "echo hi", target: a.txt}\n', "defaults.result", 1),
    ('tasks:\n  a: {shell: "echo hi", target: "nosuch://bucket/{today}/a.txt"}\n', "tasks.a.target", 2),
    ('tasks:\n  a:\n    shell: "echo hi"\n    target: a.txt\n    deps: ["nosuch://bucket/ref.csv"]\n',
     "tasks.a.deps.0", 5),
])
@pytest.mark.parametrize("command", ["validate", "status", "run"])
def test_an_unknown_protocol_is_a_spec_error_at_load(project, pipeline, key, line, command):
    proj = project(pipeline)
    result = proj.cli(command)
    assert result.code == 2, result.text
    assert f"Pipelinefile.yaml, line {line}, {key}: " in result.err
    assert "unknown storage protocol nosuch://" in result.err
    assert "s3://" in result.err and "memory://" in result.err  # the protocols fsspec knows, from its registry
    assert "Traceback" not in result.text
    assert not proj.exists(".targetrun/logs")  # nothing ran


def test_known_protocols_come_from_fsspec_registry(project):
    """A protocol registered with fsspec at run time is known; the list is not targetrun's own."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class Lake(MemoryFileSystem):
        protocol = ("lakehouse-test",)

    proj = project('tasks:\n  a: {shell: "echo hi", target: "lakehouse-test://b/a.txt"}\n')
    assert proj.cli("validate").code == 2
    fsspec.register_implementation("lakehouse-test", Lake, clobber=True)
    try:
        result = proj.cli("validate")
    finally:
        importlib.import_module("fsspec.registry")._registry.pop("lakehouse-test", None)
    assert result.code == 0, result.text


def test_a_storage_plugin_serves_its_own_protocol(project):
    from targetrun.storage.base import STORAGES
    from targetrun.storage.local import LocalStorage

    proj = project('tasks:\n  a: {shell: "echo hi", target: "pluginstore://b/a.txt"}\n')
    assert proj.cli("validate").code == 2
    STORAGES.register("pluginstore", LocalStorage)
    try:
        assert proj.cli("validate").code == 0
    finally:
        STORAGES._loaded.pop("pluginstore")


@pytest.mark.parametrize("module, url, extra", [("s3fs", "s3://b/x.json", "s3"), ("gcsfs", "gs://b/x.json", "gcs")])
def test_a_protocol_without_its_extra_names_the_extra_at_validate(tmp_path, module, url, extra):
    (tmp_path / "Pipelinefile.yaml").write_text(f"tasks:\n  t: {{run: m:f, target: '{url}'}}\n")
    (tmp_path / "m.py").write_text("def f():\n    return 1\n")
    code = textwrap.dedent(f"""
        import sys
        sys.modules[{module!r}] = None  # as if the extra were not installed
        from targetrun.cli import main
        main(["validate", "-f", {str(tmp_path / "Pipelinefile.yaml")!r}])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Pipelinefile.yaml, line 2, tasks.t.target: " in result.stderr
    assert f"the {url.split(':')[0]}:// filesystem is not installed. Install it with: pip install 'targetrun[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_protocols_are_checked_without_importing_their_libraries(tmp_path):
    """The check reads fsspec's table and looks for the module: s3:// passes, nosuch:// is
    refused, and no s3fs or botocore was imported to tell."""
    (tmp_path / "Pipelinefile.yaml").write_text("tasks:\n  t: {shell: 'echo hi > {output}', target: 's3://b/x.txt'}\n"
                                                "  u: {shell: 'echo hi > {output}', target: 'nosuch://b/x.txt'}\n")
    code = textwrap.dedent(f"""
        import sys
        from targetrun.cli import main
        try:
            main(["validate", "-f", {str(tmp_path / "Pipelinefile.yaml")!r}])
        except SystemExit as exc:
            print("exit", exc.code)
        print(sorted(m for m in ("s3fs", "botocore", "aiobotocore") if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split("\n")[-3:] == ["exit 2", "[]", ""], (result.stdout, result.stderr)
    assert "line 3, tasks.u.target: 'nosuch://b/x.txt': unknown storage protocol nosuch://" in result.stderr
    assert "tasks.t" not in result.stderr


@pytest.mark.parametrize("command", ["validate", "status", "run"])
def test_a_task_name_too_long_for_a_file_name_is_refused(project, command):
    name = "t" * (MAX_TASK_NAME + 1)
    proj = project(f"tasks:\n  ok: {SHELL_TASK}\n  {name}:\n    shell: echo hi\n")
    result = proj.cli(command)
    assert result.code == 2, result.text
    assert f"Pipelinefile.yaml, line 3, tasks.{name}: " in result.err
    assert f"is {MAX_TASK_NAME + 1} characters long; a task name is at most {MAX_TASK_NAME}" in result.err
    assert "Traceback" not in result.text
    assert not proj.exists("out.txt")


def test_the_task_name_limit_is_where_file_names_still_work(project):
    """At the limit, a mapped task without a target (checkpoint NAME-INDEX.SUFFIX, its staging
    sibling and a local write's temporary file around that) and its log all work; one
    character more is refused."""
    longer = project(f"tasks:\n  {'t' * (MAX_TASK_NAME + 1)}: {SHELL_TASK}\n").cli("validate")
    assert longer.code == 2 and "a task name is at most" in longer.err, longer.text
    name = "t" * MAX_TASK_NAME
    proj = project(f"""
        tasks:
          {name}:
            run: steps:double
            foreach: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
            args: {{item: "{{item}}"}}
          tail:
            run: steps:total
            needs: {{values: {name}}}
            target: total.json
        """, steps="def double(item):\n    print('made', item)\n    return item * 2\n\n"
                   "def total(values):\n    return sum(values)\n")
    result = proj.cli("run")
    assert result.code == 0, result.text
    assert proj.read("total.json").strip() == "156"
    logs = proj.cli("logs", f"{name}[11]")
    assert logs.code == 0 and "made 12" in logs.text, logs.text


@pytest.mark.parametrize("command", ["validate", "status"])
def test_an_unknown_state_store_scheme_is_refused_with_its_line(project, command):
    """`validate` refuses the `cache:` URL `run` and `status` would refuse, naming its line."""
    proj = project(f'name: x\ncache: "nosuch://h/0"\ntasks:\n  a: {SHELL_TASK}\n')
    result = proj.cli(command)
    assert result.code == 2, result.text
    assert "Pipelinefile.yaml, line 2, cache: unknown state store 'nosuch://h/0'" in result.err
