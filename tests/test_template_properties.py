"""Property tests over templates and parameter values (issue 9's acceptance test).

Hypothesis writes Pipelinefiles whose target and shell templates are pieced together
from fragments that matter here (placeholders, ``..``, ``/``, URLs, quotes, ``$(``,
backticks, heredocs, comments, dunders, attribute chains, huge widths) and parameter
values that try to escape (the same, plus NUL bytes and newlines). Whatever comes out:

* loading raises nothing but a :class:`~targetrun.errors.TargetrunError` with exit code 2;
* a loaded template names only the documented keys, with no attribute access beyond
  ``params.NAME`` and no dunder;
* a rendered target is inside the folder (or URL prefix) its template's own text names --
  the result location when that text is a relative path -- even after symlinks;
* a rendered shell command, run by ``/bin/sh`` with values that contain
  ``$(touch MARK)`` and friends, never creates MARK.
"""

from __future__ import annotations

import os
import string
import subprocess
import tempfile
from pathlib import Path

from _string import formatter_field_name_split  # type: ignore[import-not-found]

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from targetrun import api, templating
from targetrun.errors import TargetrunError
from targetrun.resolve import LOCAL, Placer, protocol

TARGET_PIECES = st.sampled_from([
    "out/", "raw/", "a", "-", ".", "..", "/", "../", "//", "\\", ":", ".json",
    "{params.x}", "{params.y}", "{params.xs[0]}", "{params.x[0]}", "{parameters[x]}", "{today}", "{date:%Y/%m}",
    "{task_name}", "{flow_name}", "{params.x.__class__}", "{params.__init__}", "{params.x.upper}",
    "{today:>99999999}", "{params.x:.5000}", "{params.x!r}", "{params.x:{today}}", "{0}", "{}", "{", "}",
    "{{", "}}", "file://", "s3://bucket/", "memory://m/", "{nope}", "{params}", "{item}",
])
SHELL_PIECES = st.sampled_from([
    "echo ", "printf '%s\\n' ", "cat ", " ", " ", "'", '"', "$(", ")", "`", "\\", "$", "${", "}", ";", "\n", "#",
    "<<EOF\n", "<<'EOF'\n", "\nEOF\n", "<<<", "$((", "))", "|", "&&", "2>/dev/null", "> {output}", ">", "(",
    "{params.x}", "{params.y}", "{output}", "{params.x}", "{{", "}}", "{today}", "true",
])
NASTY = st.sampled_from([
    "..", "../..", "../../etc/passwd", "/", "/etc/passwd", "/tmp/x", "file:///tmp/x", "file://", "s3://other/x",
    "a/../../b", "x\0y", "\0", "line\nbreak", "'", '"', "$(touch MARK)", "`touch MARK`", "'; touch MARK; '",
    '"; touch MARK; "', "\ntouch MARK\n", "\\", "__init__", "{today}", "{params.x}", "%s", "-rf", "~", "touch",
    "a" * 5000,
])
VALUE = NASTY | st.text(st.sampled_from(list("./\\'\"$()`;\n\0 ~:{}ab_")), max_size=20)
PARAM_VALUE = VALUE | st.integers(-5, 5) | st.lists(VALUE, max_size=3)
PARAM_NAMES = st.sampled_from(["x", "y", "xs", "__init__", "_x", "yes"])
# TARGETRUN_PROPERTY_EXAMPLES=5000 runs a deeper search; the suite's default stays fast.
EXAMPLES = int(os.environ.get("TARGETRUN_PROPERTY_EXAMPLES", "150"))
PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALLOWED = templating.BASE_KEYS | templating.MAPPED_KEYS | templating.SHELL_KEYS


def _template(pieces: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[str]:
    return st.lists(pieces, min_size=1, max_size=max_size).map("".join)


# Pieces that keep a template valid more often, so that rendering is exercised too.
PLAIN_TARGET = st.sampled_from(["out/", "raw/", "a", "-", ".json", "/", "{params.x}", "{params.y}", "{today}",
                                "{params.xs[0]}", "{parameters[x]}", "{date:%Y/%m}", "out/link/", ".", ".."])
PLAIN_SHELL = st.sampled_from(["echo ", "printf '%s\n' ", "cat ", " ", " > {output}", "{params.x}", "{params.y}",
                               " {params.x}", " {params.y} ", "; ", "\n", "$(echo ", ")", "'", '"', "<<EOF\n",
                               "\nEOF\n", "`", "#", "|", "{output}", "true "])
SAFE_DEFAULTS = {"x": "a", "y": "b", "xs": ["c", "d"]}


@st.composite
def target_pipelines(draw: st.DrawFn) -> dict[str, object]:
    target = draw(_template(PLAIN_TARGET | TARGET_PIECES, 6) | _template(PLAIN_TARGET, 6))
    document: dict[str, object] = {"params": dict(SAFE_DEFAULTS),
                                   "tasks": {"a": {"shell": "true > {output}", "target": target}}}
    if draw(st.booleans()):
        document["allow_outside_targets"] = True
    return document


@st.composite
def shell_pipelines(draw: st.DrawFn) -> dict[str, object]:
    shell = "echo start > {output}; " + draw(_template(PLAIN_SHELL | SHELL_PIECES, 6) | _template(PLAIN_SHELL, 6))
    return {"params": dict(SAFE_DEFAULTS), "tasks": {"a": {"shell": shell, "target": "out/a.txt"}}}


@st.composite
def pipelines(draw: st.DrawFn) -> dict[str, object]:
    params = {"x": draw(PARAM_VALUE), "y": draw(PARAM_VALUE), "xs": draw(st.lists(VALUE, min_size=1, max_size=3))}
    params.update(draw(st.dictionaries(PARAM_NAMES, PARAM_VALUE, max_size=2)))
    task: dict[str, object] = {"shell": draw(_template(SHELL_PIECES, 8)), "target": draw(_template(TARGET_PIECES, 6))}
    if draw(st.booleans()):
        task["foreach"] = "{params.xs}"
    document: dict[str, object] = {"params": params, "tasks": {"a": task}}
    if draw(st.booleans()):
        document["allow_outside_targets"] = True
    return document


def load(document: dict[str, object], folder: Path) -> object:
    """Load through the public API; return the spec, or the TargetrunError it raised."""
    path = folder / "Pipelinefile.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    try:
        spec = api.load(str(path), use_cache=False)
        event("loaded")
        return spec
    except TargetrunError as exc:
        event(f"refused: {exc.message[:25]}")
        assert exc.exit_code == 2, exc
        assert "\n" not in exc.format(), exc.format()  # one paragraph
        return exc


def _fields(template: str) -> list[tuple[str, tuple[tuple[bool, object], ...]]]:
    """Each field's first name and its ``.attr``/``[index]`` steps, as str.format reads them."""
    found = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            first, rest = formatter_field_name_split(name)
            found.append((str(first), tuple((bool(is_attr), key) for is_attr, key in rest)))
    return found


def _literal_prefix(template: str) -> str:
    """The text before the first field: what the author wrote, not a value."""
    prefix = []
    for literal, name, _, _ in string.Formatter().parse(template):
        prefix.append(literal)
        if name is not None:
            break
    return "".join(prefix)


@PROPS
@given(pipelines())
def test_loading_raises_only_exit_2_and_keeps_templates_to_the_documented_keys(document):
    with tempfile.TemporaryDirectory() as folder:
        spec = load(document, Path(folder))
    if isinstance(spec, TargetrunError):
        return
    task = spec.tasks["a"]
    for template in (task.target or "", task.shell or ""):
        for first, steps in _fields(template):
            assert first in ALLOWED, template
            after = steps[1:] if first in templating.NAMESPACE_KEYS else steps
            assert steps or first not in templating.NAMESPACE_KEYS, template
            assert not any(is_attr for is_attr, _ in after), template  # [i] only, no .attribute
            assert not any(str(key).startswith("__") for _, key in steps), template


@PROPS
@given(target_pipelines(), st.dictionaries(st.sampled_from(["x", "y", "xs"]), PARAM_VALUE, max_size=3))
def test_a_rendered_target_never_leaves_its_location(document, overrides):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        root.mkdir()
        outside = Path(folder) / "outside"
        outside.mkdir()
        (root / "out").mkdir()
        (root / "out" / "link").symlink_to(outside, target_is_directory=True)
        spec = load(document, root)
        if isinstance(spec, TargetrunError):
            return
        task = spec.tasks["a"]
        try:
            context = api.run_context(spec, params=overrides)
            base = templating.task_context(templating.base_context(context), "a", item=overrides.get("x", "i"),
                                           map_index=0)
            location = Placer(spec).target(task, base)
            event("target rendered")
        except TargetrunError as exc:
            event(f"target refused: {exc.message[:25]}")
            assert exc.exit_code == 2, exc
            return
        fixed = _literal_prefix(task.target)
        fixed_dir = fixed[: fixed.rfind("/") + 1]
        if protocol(fixed) not in (None, "file"):
            assert location.url.startswith(fixed_dir) and ".." not in location.url[len(fixed_dir):].split("/")
            return
        assert location.result == LOCAL
        folder_named = os.path.realpath(os.path.join(spec.root, fixed_dir.removeprefix("file://")))
        real = os.path.realpath(os.path.dirname(location.url))
        if _fields(task.target):  # values took part: they stay under the template's own folder
            assert real == folder_named or real.startswith(folder_named.rstrip(os.sep) + os.sep), (task.target,
                                                                                                   location.url)
        if not spec.allow_outside_targets:
            assert os.path.normpath(location.url).startswith(spec.root + os.sep), (task.target, location.url)


MARKS = st.sampled_from(["$(touch MARK)", "`touch MARK`", "'; touch MARK; '", '"; touch MARK; "', "\ntouch MARK\n",
                         "'\"$(touch MARK)\"'", "touch MARK", "x\\'; touch MARK #", "EOF\ntouch MARK\nEOF"])


@PROPS
@given(shell_pipelines(), MARKS, MARKS)
def test_a_rendered_shell_command_never_runs_a_value(document, x, y):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        spec = load(document, root)
        if isinstance(spec, TargetrunError):
            return
        task = spec.tasks["a"]
        try:
            context = templating.task_context(templating.base_context(api.run_context(spec, params={"x": x, "y": y})),
                                              "a", output=str(root / "output.txt"), item="i", map_index=0)
            command = templating.render_shell(task.shell, context)
            event("shell rendered")
        except TargetrunError as exc:
            event(f"shell refused: {exc.message[:25]}")
            assert exc.exit_code == 2, exc
            return
        try:
            subprocess.run(["/bin/sh", "-c", command], cwd=root, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=10)
        except subprocess.TimeoutExpired:
            pass
        assert not (root / "MARK").exists(), (task.shell, x, y, command)
