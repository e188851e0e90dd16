"""Shell tasks, template context keys, parameters and dates."""

from __future__ import annotations

import json

import pytest


def test_shell_output_and_needs_paths(project, steps):
    proj = project("""
    tasks:
      words:
        shell: "printf 'b a c a' > {output}"
        target: out/words.txt
      sorted:
        shell: "tr ' ' '\\n' < {needs.words} | sort > {output}"
        needs: [words]
        target: out/sorted.txt
      count:
        run: steps:text
        needs: {value: sorted}
        target: out/count.txt
    """, steps=steps)
    result = proj.cli("run")
    assert result.code == 0, result.text
    assert proj.read("out/sorted.txt").split() == ["a", "a", "b", "c"]
    assert proj.read("out/count.txt").split() == ["a", "a", "b", "c"]  # text value of a shell checkpoint


def test_shell_stdout_is_the_result_without_output(project):
    proj = project("""
    tasks:
      hello:
        shell: "echo hello from {task_name}"
        target: out/hello.txt
    """)
    assert proj.cli("run").code == 0
    assert proj.read("out/hello.txt") == "hello from hello\n"


def test_shell_failure_shows_stderr_tail_and_leaves_no_target(project):
    proj = project("""
    tasks:
      broken:
        shell: "echo partial > {output}; echo 'something went wrong' >&2; exit 3"
        target: out/broken.txt
      streamed:
        shell: "echo partial; exit 4"
        target: out/streamed.txt
    """)
    result = proj.cli("run", "--keep-going")
    assert result.code == 1
    assert "exited with status 3" in result.out and "something went wrong" in result.out
    assert "exited with status 4" in result.out
    assert not proj.exists("out/broken.txt") and not proj.exists("out/streamed.txt")
    assert [p.name for p in (proj.root / "out").iterdir()] == []  # no staging leftovers


def test_shell_that_forgets_output_fails(project):
    proj = project("""
    tasks:
      lazy:
        shell: "true {output}"
        target: out/lazy.txt
    """)
    result = proj.cli("run")
    assert result.code == 1 and "did not write {output}" in result.out


@pytest.mark.parametrize("evil", ["x; touch pwned", "$(touch pwned)", "`touch pwned`", "a\ntouch pwned", "' ; touch pwned '"])
def test_parameters_reach_shell_as_one_quoted_word(project, evil):
    proj = project("""
    params:
      word: safe
    tasks:
      echo:
        shell: "printf '%s' {params.word} > {output}"
        target: out/echo.txt
    """)
    result = proj.cli("run", "-p", f"word={json.dumps(evil)}")
    assert result.code == 0, result.text
    assert proj.read("out/echo.txt") == evil
    assert not proj.exists("pwned")


def test_context_keys_and_format_specs(project, steps):
    proj = project("""
    name: ctx
    params:
      city: berlin
    tasks:
      t:
        run: steps:text
        args:
          value: "{flow_name}|{task_name}|{task_full_name}|{today}|{yesterday}|{tomorrow}|{today_nodash}|{yesterday_nodash}|{tomorrow_nodash}|{date:%A}|{params.city}|{parameters[city]}|{task_run_count}"
        target: "out/{params.city}/{date:%Y/%m/%d}.txt"
    """, steps=steps)
    assert proj.cli("run", "--date", "2026-11-01").code == 0
    value = proj.read("out/berlin/2026/11/01.txt")
    assert value == "ctx|t|t|2026-11-01|2026-10-31|2026-11-02|20261101|20261031|20261102|Sunday|berlin|berlin|1"


def test_run_id_is_in_context(project, steps):
    proj = project("""
    tasks:
      t:
        run: steps:text
        args: {value: "{run_id}"}
        target: out/t.txt
    """, steps=steps)
    doc = json.loads(proj.cli("run", "--json").out)
    assert proj.read("out/t.txt") == doc["runs"][0]["run_id"]


def test_params_override_types_and_params_file(project, steps):
    proj = project("""
    params:
      n: 1
      label: x
    tasks:
      t:
        run: steps:add
        args: {a: "{params.n}", b: 10}
        target: "out/{params.label}.json"
    """, steps=steps)
    assert proj.cli("run", "-p", "n=5", "-p", "label=five").code == 0
    assert json.loads(proj.read("out/five.json")) == 15  # "{params.n}" keeps the int
    proj.write("params.yaml", "n: 7\nlabel: seven\n")
    assert proj.cli("run", "--params-file", str(proj.root / "params.yaml")).code == 0
    assert json.loads(proj.read("out/seven.json")) == 17


def test_bad_command_line_values_exit_2(project, steps):
    proj = project("params:\n  n: 1\ntasks:\n  t:\n    run: steps:const\n    target: out/t.json\n", steps=steps)
    unknown = proj.cli("run", "-p", "m=3")
    assert unknown.code == 2 and "unknown parameter 'm'" in unknown.err
    assert proj.cli("run", "-p", "novalue").code == 2
    bad_date = proj.cli("run", "--date", "yesterday")
    assert bad_date.code == 2 and "YYYY-MM-DD" in bad_date.err
    assert proj.cli("run", "--jobs", "0").code == 2
    for result in (unknown, bad_date):
        assert "Traceback" not in result.text


def test_params_rendering_outside_the_result_location_is_refused(project, steps):
    proj = project("""
    params:
      name: ok
    tasks:
      t:
        run: steps:const
        target: "out/{params.name}.json"
    """, steps=steps)
    result = proj.cli("run", "-p", "name=../../../etc/evil")
    assert result.code == 2 and "outside its result location" in result.err
    assert proj.counts() == {}


def test_two_tasks_rendering_one_target_at_run_time(project, steps):
    proj = project("""
    params:
      a: x
      b: y
    tasks:
      one:
        run: steps:const
        target: "out/{params.a}.json"
      two:
        run: steps:const
        target: "out/{params.b}.json"
    """, steps=steps)
    result = proj.cli("run", "-p", "b=x")
    assert result.code == 2 and "both write the target" in result.err


def test_a_command_checked_at_load_is_not_scanned_again_and_a_refused_one_stays_refused(tmp_path, monkeypatch):
    """The shell check's verdict depends on the text alone: a command that passed when the
    Pipelinefile was loaded is not scanned again when rendered; one that failed is refused
    on every check (a refusal is never remembered as a pass)."""
    from targetrun import shellcheck
    from targetrun.errors import TemplateError
    from targetrun.pipelinefile import load_pipeline
    from targetrun.templating import render_shell

    scans = []
    scan = shellcheck._Scanner.scan
    monkeypatch.setattr(shellcheck._Scanner, "scan", lambda self: (scans.append(self.text), scan(self))[1])
    command = "cat {needs.a} | tr a-z A-Z > {output}  # checked once"
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n  a: {shell: 'echo a > {output}', target: out/a.txt}\n"
        f"  b: {{shell: '{command}', needs: [a], target: out/b.txt}}\n")
    load_pipeline(str(tmp_path / "Pipelinefile.yaml"))
    checked = len(scans)
    assert render_shell(command, {"needs": {"a": "out/a 1.txt"}, "output": "o.txt"}) == \
        "cat 'out/a 1.txt' | tr a-z A-Z > o.txt  # checked once"
    assert len(scans) == checked  # rendering reused the load's verdict

    for _ in range(2):
        with pytest.raises(TemplateError):
            render_shell('echo "{params.x}" # refused', {"params": {"x": "1"}})
    assert len(scans) == checked + 2


def test_shell_output_comes_back_through_a_pipe_whole_and_never_waits_for_what_the_command_left_running(project):
    """What a command prints reaches its log while it runs: both streams whole when they
    interleave far beyond a pipe's capacity (stdout the result, stderr the log), and a
    background process the command left holding the log open is not waited for."""
    import time

    proj = project("""
    tasks:
      chatty:
        shell: "i=0; while [ $i -lt 20000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"
        target: out/chatty.txt
      detached:
        shell: "(sleep 30; echo late >&2) & echo early >&2; echo 1 > {output}"
        target: out/detached.txt
    """)
    started = time.monotonic()
    result = proj.cli("run")
    assert result.code == 0, result.text
    assert time.monotonic() - started < 20  # not the 30 s its background process keeps the pipe
    assert proj.read("out/chatty.txt").split() == [f"out{i}" for i in range(20000)]
    log = proj.cli("logs", "chatty").out
    assert "err0\n" in log and "err19999\n" in log and log.count("\nerr") == 20000
    assert "early" in proj.cli("logs", "detached").out
    assert proj.read("out/detached.txt") == "1\n"


def test_a_command_that_printed_and_exited_leaves_no_reader_behind(monkeypatch):
    """A detached reader takes over a shell task's output pipe only when something the
    command started still holds it open. A command that printed and exited closed it:
    its output is read to the end, and no shell is started for a reader (it was, when the
    command's exit was seen before the end of its output -- here, a command that ended
    before its output is read at all)."""
    import os
    import subprocess

    from targetrun.capture import LogBuffer
    from targetrun.engine import work

    drained: list[int] = []
    monkeypatch.setattr(work, "_drain_elsewhere", drained.append)
    err, err_end = os.pipe()
    process = subprocess.Popen(["/bin/sh", "-c", "echo printed >&2"], stdout=err_end, stderr=err_end)
    os.close(err_end)
    process.wait()  # exited, its output still in the pipe
    try:
        printed = LogBuffer()
        work._collect(process, err, None, printed)
        assert printed.getvalue() == "printed\n"
    finally:
        os.close(err)
    assert drained == []
    err, err_end = os.pipe()  # and one whose background process still holds the pipe
    process = subprocess.Popen(["/bin/sh", "-c", "(sleep 1; echo late >&2) & echo early >&2"],
                               stdout=err_end, stderr=err_end, start_new_session=True)
    os.close(err_end)
    process.wait()
    try:
        printed = LogBuffer()
        work._collect(process, err, None, printed)
        assert printed.getvalue().startswith("early")
    finally:
        os.close(err)
    assert len(drained) == 1
