"""A value reaches a shell command's code through a variable just as well as directly:
``a={x}; ${a}``, ``"${a}"``, ``${a:-x}``, ``eval "$a"``, ``sh -c "${a}"``, ``b=$a; $b``,
``export a={x}``, ``for a in {x}; do $a; done``, the literal code of ``sh -c '...'``
(and its ``$1`` when the value is an argument after it), ``set -- {x}; "$1"``, and a
shell's input: ``echo {x} | sh``, ``bash <<< {x}``, ``read a`` from one, ``alias a={x}``.
Each such command is refused when the file loads (exit 2, naming the placeholder), and
first shown to really run the value when /bin/sh is given it; the same variable used as
an argument stays fine."""

from __future__ import annotations

import itertools
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from targetrun.errors import TemplateError
from targetrun.shellcheck import check_shell

EVIL = "touch PWNED"
PROGRAM = "./evil.sh"  # a value that names a program: run even as one quoted word

# (a command that runs the value, the same variable used safely as an argument)
CASES = [
    ("a={params.x}; ${{a}} > {output}", 'a={params.x}; echo "${{a}}" > {output}'),
    ("nice {params.x}; echo > {output}", "nice echo {params.x} > {output}"),  # wrappers that run their argument
    # the shell's other ways of evaluating a variable's text
    ("a={params.x}; case $a in *) $a;; esac > {output}", 'a={params.x}; case "$a" in *) echo ok;; esac > {output}'),
    ("a={params.x}\nread b <<EOF\n$a\nEOF\n$b; echo > {output}",
     "a={params.x}\nread b <<EOF\nok\nEOF\necho \"$b\" \"$a\" > {output}"),
    ("a={params.x}; b=a; eval \\$$b; echo > {output}", 'a={params.x}; b=a; echo "$a" "$b" > {output}'),
    ('a={params.x}; eval "b=\\$a"; $b; echo > {output}', 'a={params.x}; b="$a"; echo "$b" > {output}'),
    ("setsid {params.x}; echo > {output}", "setsid echo {params.x} > {output}"),
    ("a={params.x}; ${{a:-true}} > {output}", "a={params.x}; echo ${{a:-true}} > {output}"),
    ('a={params.x}; "${{a}}" > {output}', 'a={params.x}; printf %s "${{a}}" > {output}'),
    ("a={params.x}; ${{a}}x > {output}", "a={params.x}; echo ${{a}}x > {output}"),
    ('a={params.x}; eval "${{a}}" > {output}', 'a={params.x}; echo "${{#a}}" > {output}'),
    ('a={params.x}; eval "$a" > {output}', 'a={params.x}; test -n "$a" && echo ok > {output}'),
    ("a={params.x}; eval echo ok \\; $a > {output}", "a={params.x}; echo ok \\; $a > {output}"),
    ('a={params.x}; sh -c "${{a}}" > {output}', 'a={params.x}; sh script.sh "${{a}}" > {output}'),
    ('a={params.x}; bash -c "$a" > {output}', 'a={params.x}; bash script.sh "$a" > {output}'),
    ('a={params.x}; env sh -c "$a" > {output}', 'a={params.x}; env echo "$a" > {output}'),
    ('a={params.x}; trap "${{a}}" EXIT; echo > {output}', 'a={params.x}; trap \'echo "$a"\' EXIT; echo > {output}'),
    ("a={params.x}; b=$a; ${{b}} > {output}", 'a={params.x}; b=$a; echo "$b" > {output}'),
    ("export a={params.x}; ${{a}} > {output}", 'export a={params.x}; echo "${{a}}" > {output}'),
    ("for a in {params.x}; do ${{a}}; done > {output}", "for a in {params.x}; do echo ${{a}}; done > {output}"),
    ("a={params.x}; $(echo $a) > {output}", 'a={params.x}; echo "$(echo $a)" > {output}'),
    ("a={params.x}; command ${{a}} > {output}", 'a={params.x}; command echo "${{a}}" > {output}'),
    ("a={params.x}; if ${{a}}; then :; fi; echo > {output}", 'a={params.x}; if test "${{a}}"; then echo > {output}; fi'),
    ("a={params.x} sh -c 'eval \"$a\"' > {output}", "a={params.x} sh -c 'echo \"$a\"' > {output}"),
    ('env sh -c {params.x} > {output}', 'env sh script.sh {params.x} > {output}'),
    # a value that reaches a shell's input, or the positional parameters of code
    ("echo {params.x} | sh > {output}", "echo {params.x} | sh script.sh > {output}"),
    ('a={params.x}; printf "%s" "$a" | cat | bash > {output}', 'a={params.x}; printf "%s" "$a" | cat | tr a b > {output}'),
    ("bash <<< {params.x} > {output}", "bash script.sh {params.x} > {output}"),
    ('set -- {params.x}; "$1" > {output}', 'set -- {params.x}; echo "$1" > {output}'),
    ("sh -c '$1' _ {params.x} > {output}", "sh script.sh {params.x} > {output}"),
    ("bash -c 'eval \"$@\"' _ {params.x} > {output}", "bash script.sh {params.x} > {output}"),
    ("a={params.x}; sh -c '$0' \"$a\"; echo > {output}", 'a={params.x}; sh script.sh "$a"; echo > {output}'),
    ("a={params.x}; sh -c 'eval \"$1\"' _ \"$a\"; echo > {output}", 'a={params.x}; sh script.sh "$a"; echo > {output}'),
    ("echo {params.x} | bash /dev/stdin; echo > {output}", "echo {params.x} | bash script.sh; echo > {output}"),
    ("echo {params.x} | xargs -I% sh -c %; echo > {output}", "echo {params.x} | xargs echo > {output}"),
    ('printf "%s\\n" {params.x} | {{ read -r a; $a; }} > {output}',
     'printf "%s\\n" {params.x} | {{ read -r a; echo "$a"; }} > {output}'),
    ("alias a={params.x}\na > {output}", "alias a='echo ok'\na {params.x} > {output}"),
]


def shell_runs(command: str, folder: Path) -> bool:
    """Whether /bin/sh or bash, given the command as targetrun would fill it in, runs the
    value (as code, or as the name of a program)."""
    evil = folder / "evil.sh"
    evil.write_text("#!/bin/sh\ntouch PWNED\n")
    evil.chmod(0o755)
    ran = False
    for value, shell in itertools.product((EVIL, PROGRAM), ("/bin/sh", "bash")):  # /bin/sh is bash on many systems
        filled = command.format(params=SimpleNamespace(x=shlex.quote(value)), output="o.txt")
        subprocess.run([shell, "-c", filled], cwd=folder, capture_output=True, timeout=30)
        made = list(folder.glob("PWNED*"))  # ${a}x makes PWNEDx
        ran = ran or bool(made)
        for path in made:
            path.unlink()
    return ran


@pytest.mark.skipif(shutil.which("bash") is None, reason="one case runs bash")
@pytest.mark.parametrize("dangerous, safe", CASES)
def test_a_value_run_through_a_variable_is_refused_and_an_argument_is_not(project, dangerous, safe):
    folder = project("tasks: {}\n").root
    (folder / "script.sh").write_text('echo "$1"\n')
    assert shell_runs(dangerous, folder), "the case must really run the value"
    assert not shell_runs(safe, folder)

    proj = project(f"params: {{x: hi}}\ntasks:\n  t: {{shell: {json.dumps(dangerous)}, target: o.txt}}\n")
    result = proj.cli("run", "-p", f"x={EVIL}")
    assert result.code == 2, result.text
    assert "Pipelinefile.yaml, line 3, tasks.t.shell: " in result.err and "{params.x}" in result.err
    assert "Traceback" not in result.text
    assert not list(proj.root.glob("PWNED*"))

    ok = project(f"params: {{x: hi}}\ntasks:\n  t: {{shell: {json.dumps(safe)}, target: o.txt}}\n")
    (ok.root / "script.sh").write_text('echo "$1"\n')
    result = ok.cli("run", "-p", f"x={EVIL}")
    assert result.code == 0, result.text
    assert not list(ok.root.glob("PWNED*"))


def test_the_last_word_of_a_command_counts_too():
    """The word that ends the command (no blank or operator after it) is checked like any other."""
    for command in ("a={x}; $a", "a={x}; ${{a}}", "a={x}; eval $a"):
        with pytest.raises(TemplateError, match=r"through \$a"):
            check_shell(command)
    check_shell("a={x}; echo $a")


@pytest.mark.parametrize("command", [
    "a={params.x}; echo $((a)) > {output}",  # bash evaluates a[$(...)] in the variable's text
    "a={params.x}; export a; bash -c 'echo $((a))' > {output}",
])
def test_a_value_in_arithmetic_is_refused(command):
    with pytest.raises(TemplateError, match=r"\$\(\(\.\.\.\)\)"):
        check_shell(command)


def test_one_verdict_per_shape_names_each_templates_own_placeholder():
    """The scan's verdict is kept per shape (placeholders as marks): many templates of one
    shape pass with one scan, and a refused shape still names each template's placeholder."""
    for i in range(3):
        check_shell(f"cat {{needs.t{i}}} > {{output}}")
    for name in ("params.x", "params.y"):
        with pytest.raises(TemplateError, match=rf"\{{{name}\}} is inside double quotes"):
            check_shell(f'echo "{{{name}}}" > {{output}}')
    with pytest.raises(TemplateError, match=r"\{b\} is inside double quotes"):
        check_shell('cat {a} "{b}"')  # another shape than `cat {a} {b}`, which passes
    check_shell("cat {a} {b}")
