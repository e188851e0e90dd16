"""Validate a loaded Pipelinefile document and build the :class:`PipelineSpec`.

Every check names the file, the line, the key path (``tasks.fetch.target``), what was
expected and what was found. The whole file is checked before anything runs.
"""

from __future__ import annotations

import keyword
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from targetrun import dag, redact, templating
from targetrun.durations import parse_duration
from targetrun.errors import (
    CycleError,
    SpecError,
    SpecProblems,
    TargetrunError,
    TemplateError,
    UnknownKeyError,
    UsageError,
    did_you_mean,
)
from targetrun.model import NO_ARGS, CachePolicy, PipelineSpec, ResultLocation, TaskSpec, Validator
from targetrun.shellcheck import check_shell

if TYPE_CHECKING:
    from targetrun.resolve import TargetOwners, TaskRenderer
from targetrun.storage.base import ENDPOINT_HINT, endpoint_problem
from targetrun.store.base import check_store_url
from targetrun.pipelinefile.values import check_param_name, check_param_value
from targetrun.pipelinefile.yamlnodes import Document, Path

TOP_KEYS = ("version", "name", "params", "results", "defaults", "cache", "scheduler", "tasks", "allow_outside_targets")
TASK_KEYS = (
    "run",
    "shell",
    "needs",
    "args",
    "target",
    "result",
    "serializer",
    "checkpoint",
    "cache_for",
    "cache_validator",
    "cache_key",
    "max_retries",
    "retry_delay",
    "foreach",
    "deps",
    "version",
)
MAX_RETRIES = 10_000
DEFAULT_KEYS = ("result", "serializer", "checkpoint", "cache_for", "cache_validator", "max_retries", "retry_delay")
RESULT_KEYS = ("url", "options")
# fsspec protocols whose first path part is a bucket, container or host (s3://BUCKET/key)
_CHAINED = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")  # fsspec's "simplecache::s3://..."
_ROOTED_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "http", "https",
                               "ftp", "sftp", "ssh", "hdfs", "webhdfs", "webdav"})
_BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})  # a bucket, never a user
_ACCOUNT_PROTOCOLS = frozenset({"az", "abfs", "abfss", "adl"})  # container@account is Azure's own form
TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _argument_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a keyword argument's name, or None.

    >>> [_argument_name_problem(n) for n in ("city", "class", "__class__", "2x", "_x")]
    [None, 'it is a Python keyword', "it is a dunder name, one of Python's own", 'it is no identifier', None]
    """
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        return "it is no identifier"
    if keyword.iskeyword(name):
        return "it is a Python keyword"
    if len(name) > 4 and name.startswith("__") and name.endswith("__"):
        return "it is a dunder name, one of Python's own"
    return None


def _as_argument(name: str) -> str:
    """A name like ``name`` that :func:`_argument_name_problem` accepts (for hints)."""
    plain = re.sub(r"\W", "_", name).strip("_") or "value"
    return plain if _argument_name_problem(plain) is None else f"up_{plain}"
_VALIDATORS_WITH_NAMES = (Validator.PARTIAL_INPUTS_ONLY, Validator.PARTIAL_PARAMETERS_ONLY)
_T = TypeVar("_T")


def build_pipeline(doc: Document, path: str) -> PipelineSpec:
    """The validated spec; raises every problem of the file at once (:class:`SpecProblems`)."""
    checker = _Checker(doc, path)
    spec = checker.check()
    if checker.problems or spec is None:
        raise SpecProblems.of(checker.problems)
    return spec


def check_pipeline(doc: Document, path: str) -> tuple[list[SpecError], dict[str, TaskSpec]]:
    """Every problem of the file, and the tasks that are well formed (for ``validate``,
    which goes on to check their functions)."""
    checker = _Checker(doc, path)
    checker.check()
    return checker.problems, checker.tasks


class _Checker:
    """Checks the file section by section and task by task, collecting every problem: a
    top-level section that is wrong stops there (the tasks would only repeat it); a task
    that is wrong is left out of the later checks, so it causes no follow-on problems."""

    def __init__(self, doc: Document, path: str) -> None:
        self.doc = doc
        self.path = path
        self.root = os.path.dirname(os.path.abspath(path))
        self.problems: list[SpecError] = []
        self.tasks: dict[str, TaskSpec] = {}
        self.broken: set[str] = set()  # tasks with a problem of their own
        self.protocols: dict[str, SpecError | None] = {}  # each URL protocol's answer, asked once per file
        self.layouts: dict[tuple[tuple[str, int], ...], Mapping[str, int]] = {}  # see field_offsets
        # one object for a command or a delay tasks repeat (the document has one a task)
        self.commands: dict[str, str] = {}
        self.delays: dict[float, float] = {}

    def check(self) -> PipelineSpec | None:
        try:
            return self.pipeline()
        except SpecError as exc:
            self.problems.append(exc)
            return None

    def attempt(self, check: Callable[[], _T], fallback: _T) -> _T:
        """Run one check; on a problem, note it and go on with ``fallback``."""
        try:
            return check()
        except SpecError as exc:
            self.problems.append(exc)
            return fallback

    # -- error helpers -------------------------------------------------------------

    def error(self, path: Path, message: str, *, hint: str | None = None, cls: type[SpecError] = SpecError) -> SpecError:
        return cls(message, file=self.doc.file, line=self.doc.line(path), key=".".join(path) or None, hint=hint)

    def expect(self, path: Path, value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
        # bool is an int in Python; a YAML `yes` must not pass as a number.
        if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in _as_tuple(kinds)):
            return value
        raise self.error(path, f"expected {what}, found {_describe(value)}")

    def known_keys(self, path: Path, mapping: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) or f"Allowed keys {where}: {', '.join(allowed)}."
                raise self.error(path + (str(key),), f"unknown key {str(key)!r} {where}", hint=hint, cls=UnknownKeyError)

    # -- the file ------------------------------------------------------------------

    def pipeline(self) -> PipelineSpec | None:
        top = self.doc.value
        if top is None:
            raise self.error((), "the file is empty", hint="A Pipelinefile needs at least a `tasks:` mapping.")
        self.expect((), top, dict, "a mapping with `name`, `params`, `tasks`, ... at the top level")
        self.known_keys((), top, TOP_KEYS, "at the top level")
        version = top.get("version", 1)
        if version != 1:
            raise self.error(("version",), f"unsupported schema version {version!r}", hint="This targetrun reads version 1.")
        name = self.attempt(lambda: self.expect(("name",), top.get("name", os.path.basename(self.root) or "pipeline"),
                                                str, "a string"), "pipeline")
        params: dict[str, object] = self.attempt(lambda: self.params(top.get("params", {})), {})
        results: dict[str, ResultLocation] = self.attempt(lambda: self.results(top.get("results", {})), {})
        defaults: dict[str, Any] = self.attempt(lambda: self.defaults(top.get("defaults", {}), results), {})
        cache_url = self.attempt(lambda: self.expect(("cache",), top.get("cache", ".targetrun/state.db"), str,
                                                     "a path or redis:// URL"), "")
        if cache_url.startswith(("redis://", "rediss://")) and "$" not in cache_url:
            try:
                check_store_url(cache_url)
            except SpecError as exc:
                self.problems.append(self.error(("cache",), exc.message, hint=exc.hint))
        self.attempt(lambda: self.check_store_scheme(cache_url), None)
        scheduler = top.get("scheduler")
        if scheduler is not None:
            self.attempt(lambda: self.scheduler(scheduler), None)
        outside = self.attempt(lambda: self.expect(("allow_outside_targets",), top.get("allow_outside_targets", False),
                                                   bool, "true or false"), False)
        if "tasks" not in top:
            raise self.error((), "the file has no `tasks:` mapping", hint="Declare at least one task under `tasks:`.")
        tasks_raw = self.expect(("tasks",), top["tasks"], dict, "a mapping of task names to task definitions")
        if not tasks_raw:
            raise self.error(("tasks",), "`tasks:` is empty", hint="Declare at least one task.")
        if self.problems:
            return None
        for raw_name, body in tasks_raw.items():
            task_name = str(raw_name)
            built = self.attempt(lambda: self.task(task_name, body, defaults, params, results), None)
            if built is None:
                self.broken.add(task_name)
            else:
                self.tasks[task_name] = built
        tasks = self.tasks
        self.check_graph(tasks)
        spec = PipelineSpec(
            name=name,
            path=os.path.abspath(self.path),
            root=self.root,
            tasks=tasks,
            params=params,
            results=results,
            cache_url=cache_url,
            scheduler=scheduler,
            allow_outside_targets=outside,
        )
        self.check_templates_render(spec)
        return None if self.problems else spec

    def scheduler(self, raw: Any) -> str:
        from targetrun.settings import SCHEDULER_FORM, scheduler_problem

        address: str = self.expect(("scheduler",), raw, str, "a Dask scheduler address such as tcp://host:8786")
        problem = scheduler_problem(address)
        if problem is not None:
            shown = redact.clipped(address, 200)
            raise self.error(("scheduler",), f"{shown!r} is not a Dask scheduler address: it {problem}",
                             hint=f"Write it as {SCHEDULER_FORM}.")
        return address

    def params(self, raw: Any) -> dict[str, object]:
        raw = self.expect(("params",), raw if raw is not None else {}, dict, "a mapping of parameter names to values")
        for key, value in raw.items():
            try:
                check_param_name(key)
                check_param_value(str(key), value)
            except UsageError as exc:
                raise self.error(("params", str(key)), exc.message, hint=exc.hint) from None
        return dict(raw)

    def results(self, raw: Any) -> dict[str, ResultLocation]:
        raw = self.expect(("results",), raw if raw is not None else {}, dict, "a mapping of names to {url, options}")
        found: dict[str, ResultLocation] = {}
        for name, body in raw.items():
            where = ("results", str(name))
            if isinstance(body, str):
                body = {"url": body}
            self.expect(where, body, dict, "a mapping with `url` and optional `options`")
            self.known_keys(where, body, RESULT_KEYS, f"in results.{name}")
            if "url" not in body:
                raise self.error(where, f"results.{name} has no `url`", hint="Give a path or an fsspec URL such as s3://bucket/prefix.")
            url = self.expect(where + ("url",), body["url"], str, "a path or URL")
            self.check_names_a_root(where + ("url",), url)
            self.check_protocol(where + ("url",), url)
            options = self.expect(where + ("options",), body.get("options") or {}, dict, "a mapping of storage options")
            self.check_endpoints(where + ("options",), options)
            found[str(name)] = ResultLocation(str(name), url, dict(options))
        return found

    def defaults(self, raw: Any, results: Mapping[str, ResultLocation]) -> dict[str, Any]:
        raw = self.expect(("defaults",), raw if raw is not None else {}, dict, "a mapping of task defaults")
        self.known_keys(("defaults",), raw, DEFAULT_KEYS, "in defaults")
        if isinstance(raw.get("result"), str) and raw["result"] not in results:
            self.check_names_a_root(("defaults", "result"), raw["result"])
            self.check_protocol(("defaults", "result"), raw["result"])
        return dict(raw)

    # -- one task ------------------------------------------------------------------

    def task(
        self,
        name: str,
        body: Any,
        defaults: Mapping[str, Any],
        params: Mapping[str, object],
        results: Mapping[str, ResultLocation],
    ) -> TaskSpec:
        where: Path = ("tasks", name)
        if not TASK_NAME.match(name):
            raise self.error(where, f"task name {name!r} must start with a letter or _ and use only letters, digits, _ and -")
        self.check_name_length(where, name)
        if body is None:
            raise self.error(where, f"task {name!r} is empty", hint="Give it `run: module:function` or `shell: command`.")
        self.expect(where, body, dict, f"a mapping of task keys for task {name!r}")
        self.known_keys(where, body, TASK_KEYS, f"in task {name!r}")
        merged = {**defaults, **body}
        run, shell = body.get("run"), body.get("shell")
        if (run is None) == (shell is None):
            found = "both" if run is not None else "neither"
            raise self.error(where, f"task {name!r} must have exactly one of `run` or `shell`, found {found}")
        if run is not None:
            self.expect(where + ("run",), run, str, "a callable as module:function")
            if not CALLABLE.match(run):
                raise self.error(where + ("run",), f"expected module:function, found {run!r}", hint="For example `run: tasks.weather:fetch`.")
        else:
            self.expect(where + ("shell",), shell, str, "a shell command string")
            if not shell.strip():
                raise self.error(where + ("shell",), "the shell command is empty")
        needs = self.needs(where, body.get("needs", []), python=run is not None)
        if shell is not None and "args" in body:
            raise self.error(where + ("args",), f"task {name!r} is a shell task: its command would ignore `args`, "
                             "which are keyword arguments of a Python function (`run:`)",
                             hint="Write the values into the command itself (`{params.NAME}`, a literal), "
                                  "or make it a Python task.")
        args = self.expect(where + ("args",), body.get("args") or {}, dict, "a mapping of keyword arguments")
        for key in args:
            self.check_argument_name(where + ("args", str(key)), key)
            if key in dict(needs):
                raise self.error(where + ("args", key), f"argument {key!r} is also an upstream value from `needs`")
        target = body.get("target")
        if target is not None:
            self.expect(where + ("target",), target, str, "a target path template")
            if not target.strip():
                raise self.error(where + ("target",), "the target is empty")
        checkpoint = self.expect(_said(where, "checkpoint", body), merged.get("checkpoint", True), bool, "true or false")
        if target is not None and not checkpoint:
            raise self.error(
                where + ("checkpoint",),
                "a task with a target must be checkpointed (the target is where its value is written)",
                hint="Remove `checkpoint: false` or the target.",
            )
        if isinstance(shell, str) and not checkpoint and any(f == "output" for f, _, _ in templating.fields(shell)):
            raise self.error(
                where + ("checkpoint",),
                "a shell task that writes {output} must be checkpointed ({output} is where its value is written)",
                hint="Remove `checkpoint: false`, or {output} from the command.",
            )
        result = self.result_ref(_said(where, "result", body)[:-1], merged.get("result", "."), results)
        if "result" in body and result not in results:
            self.check_names_a_root(where + ("result",), result)
            self.check_protocol(where + ("result",), result)
        if target is not None:
            self.check_protocol(where + ("target",), templating.literal_prefix(target))
        serializer = self.serializer(where + ("serializer",), body.get("serializer"))
        default_serializer = self.serializer(("defaults", "serializer"), defaults.get("serializer"))
        retries = self.expect(_said(where, "max_retries", body), merged.get("max_retries", 0), int, "a whole number of retries")
        if retries < 0:
            raise self.error(_said(where, "max_retries", body), f"expected 0 or more retries, found {retries}")
        if retries > MAX_RETRIES:  # 10**20 retries of a failing task is a run that never ends
            shown = f"{retries:,}" if retries < 10**30 else f"a number of {len(str(retries))} digits"
            raise self.error(_said(where, "max_retries", body), f"expected at most {MAX_RETRIES:,} retries, found {shown}")
        delay = self.duration(_said(where, "retry_delay", body), merged.get("retry_delay", 0))
        cache = self.cache_policy(where, merged, body)
        foreach = self.foreach(where + ("foreach",), body.get("foreach"), needs, params)
        if cache is not None:
            cache = self.check_validator_names(where, cache, needs, args, params)
        line = self.doc.line(where)
        spec = TaskSpec(
            name=name,
            run=run if run is None else self.commands.setdefault(run, run),
            shell=shell if shell is None else self.commands.setdefault(shell, shell),
            needs=needs,
            args=dict(args) if args else NO_ARGS,
            target=target,
            result=result,
            serializer=serializer,
            default_serializer=default_serializer,
            checkpoint=checkpoint,
            cache=cache,
            max_retries=retries,
            retry_delay=self.delays.setdefault(delay, delay),
            foreach=foreach,
            templated_args=templating.has_fields(args),
            line=line,
            field_offsets=self.field_offsets(where, body, line),
            deps=self.deps(where + ("deps",), body.get("deps")),
            version=self.version(where + ("version",), body.get("version")),
        )
        self.check_templates(spec, params)
        return spec

    def field_offsets(self, where: Path, body: Mapping[str, Any], line: int | None) -> Mapping[str, int]:
        """Where each key of a task is, as an offset from the task's line; tasks written
        alike (the same keys, each as far below the name) share one mapping."""
        offsets = tuple((key, (self.doc.line(where + (key,)) or 0) - (line or 0)) for key in body)
        found = self.layouts.get(offsets)
        if found is None:
            found = self.layouts[offsets] = dict(offsets)
        return found

    def deps(self, path: Path, raw: Any) -> tuple[str, ...]:
        """``deps:`` -- the external files a task reads: paths (relative to the
        Pipelinefile's folder) or URLs, globs allowed; one string or a list."""
        if raw is None:
            return ()
        items = [raw] if isinstance(raw, str) else self.expect(path, raw, list, "a list of paths, URLs or globs")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise self.error(path + (str(i),), f"expected a path, URL or glob, found {_describe(item)}",
                                 hint="Write e.g. `deps: [data/raw.csv, \"config/*.yaml\"]`.")
            if "\0" in item:  # no file name holds one (os.stat would raise ValueError)
                raise self.error(path + (str(i),), f"the dep {item!r} holds a NUL byte; no path can hold one")
            self.check_protocol(path if isinstance(raw, str) else path + (str(i),), item)
        return tuple(items)

    def version(self, path: Path, raw: Any) -> str | None:
        """``version:`` -- replaces the computed code fingerprint (text or a number)."""
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise self.error(path, f"expected a version such as \"2\" or \"2024-06 fix\", found {_describe(raw)}")
        return str(raw)

    def serializer(self, path: Path, raw: Any) -> str | None:
        """A serializer name, or ``{name: csv, options: {sep: ";"}}``, as the reference
        tasks carry (:class:`targetrun.serializers.base.Ref`). Names and options come
        from the serializer classes in the registry, plugins included."""
        from targetrun.errors import UsageError
        from targetrun.serializers.base import RULES, SERIALIZERS, Ref
        from targetrun.serializers.make import serializer

        if raw is None:
            return None
        options: dict[str, Any] = {}
        if isinstance(raw, Mapping):
            self.known_keys(path, raw, ("name", "options"), "in a serializer")
            options = dict(self.expect(path + ("options",), raw.get("options") or {}, Mapping, "a mapping of options"))
            for key, value in options.items():
                self.expect(path + ("options", str(key)), value, (str, int, float, bool), "a string, number or boolean")
            path, raw = path + ("name",), raw.get("name")
        self.expect(path, raw, str, "a serializer name (or a mapping with name and options)")
        if raw in RULES or raw not in SERIALIZERS:  # entry points are read only for a non-built-in name
            known = [name for name in SERIALIZERS.names(plugins=True) if name not in RULES]
            hint = did_you_mean(raw, known) or f"Known: {', '.join(known)}."
            raise self.error(path, f"unknown serializer {raw!r}", hint=hint, cls=UnknownKeyError)
        ref = str(Ref(raw, None, options))
        try:
            serializer(ref)  # its own options check (and a plugin that cannot load, named here)
        except UsageError as exc:
            raise self.error(path, exc.message, hint=exc.hint) from None
        except Exception as exc:  # noqa: BLE001 - a serializer that refuses its options
            raise self.error(path, f"serializer {raw!r} refuses these options: {exc}") from None
        return ref

    def needs(self, where: Path, raw: Any, *, python: bool) -> tuple[tuple[str, str], ...]:
        path = where + ("needs",)
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if isinstance(raw, list):
            pairs = []
            for i, item in enumerate(raw):
                self.expect(path + (str(i),), item, str, "a task name")
                if python and _argument_name_problem(item) is not None:
                    raise self.error(
                        path,
                        f"upstream {item!r} is not a valid Python argument name ({_argument_name_problem(item)})",
                        hint=f"Use the mapping form, e.g. `needs: {{{_as_argument(item)}: {item}}}`.",
                    )
                pairs.append((item, item))
        elif isinstance(raw, dict):
            pairs = []
            for arg, task in raw.items():
                self.expect(path + (str(arg),), task, str, "a task name")
                self.check_argument_name(path + (str(arg),), arg)
                pairs.append((arg, task))
        else:
            raise self.error(path, f"expected a list of task names or a mapping argument: task, found {_describe(raw)}")
        seen: set[str] = set()
        for arg, _ in pairs:
            if arg in seen:
                raise self.error(path, f"{arg!r} is listed twice in needs")
            seen.add(arg)
        return tuple(pairs)

    def check_argument_name(self, path: Path, name: object) -> None:
        """A name in ``args`` or the mapping form of ``needs`` becomes a keyword argument of a
        Python function (``needs.NAME`` in a shell command): a plain identifier, not a
        keyword (``class``) and not one of Python's own dunder names (``__class__``)."""
        problem = _argument_name_problem(name)
        if problem is not None:
            raise self.error(path, f"argument name {name!r} is not a valid Python name: {problem}",
                             hint="Use letters, digits and _ (not first a digit), e.g. `city` or `raw_data`.")

    def foreach(self, path: Path, raw: Any, needs: tuple[tuple[str, str], ...], params: Mapping[str, object]) -> Any:
        """A list, a template naming a list (``"{params.cities}"``) or ``{needs: TASK}``."""
        if raw is None or isinstance(raw, list):
            return raw
        if isinstance(raw, str):
            if templating.lone_field(raw) is None:
                raise self.error(path, f"expected one template field naming a list, such as \"{{params.cities}}\", found {raw!r}")
            return raw
        if isinstance(raw, dict) and list(raw) == ["needs"]:
            upstream = self.expect(path + ("needs",), raw["needs"], str, "the name of a task this task needs")
            if upstream not in {task for _, task in needs}:
                raise self.error(path, f"foreach over {upstream!r}, which is not in this task's needs",
                                 hint="Add it to `needs:` as well.")
            return raw
        raise self.error(path, f"expected a list, a template such as \"{{params.cities}}\" or {{needs: TASK}}, found {_describe(raw)}")

    def check_validator_names(self, where: Path, cache: CachePolicy, needs: tuple[tuple[str, str], ...],
                              args: Mapping[str, object], params: Mapping[str, object]) -> CachePolicy:
        """The policy with each ``partial_inputs_only`` name as the arguments it means.

        Prefect's inputs are every argument a task runs with: an upstream value's argument
        and a plain ``args`` one alike. An upstream task's name stands for the argument(s)
        its value arrives as (an argument of that name wins). A name that is none of these
        is refused here, where Prefect would quietly validate on nothing."""
        checks: list[tuple[Validator, tuple[str, ...]]] = []
        for validator, names in cache.checks:
            if validator is Validator.PARTIAL_INPUTS_ONLY:
                arguments = [arg for arg, _ in needs] + list(args)
                known: set[str] = set(arguments) | {task for _, task in needs}
                what = "input (an argument from needs or args, or an upstream task)"
            elif validator is Validator.PARTIAL_PARAMETERS_ONLY:
                known, arguments = set(params), []
                what = "parameter"
            else:
                checks.append((validator, names))
                continue
            for name in names:
                if name not in known:
                    hint = did_you_mean(name, known) or f"Known: {', '.join(sorted(known)) or 'none'}."
                    raise self.error(where + ("cache_validator", validator.value), f"{validator.value} names {name!r}, which is not an {what} of this task",
                                     hint=hint)
            if validator is Validator.PARTIAL_INPUTS_ONLY:
                names = tuple(dict.fromkeys(arg for name in names
                                            for arg in ([name] if name in arguments else [a for a, t in needs if t == name])))
            checks.append((validator, names))
        (validator, names), *also = checks
        return replace(cache, validator=validator, names=names, also=tuple(also))

    def result_ref(self, where: Path, raw: Any, results: Mapping[str, ResultLocation]) -> str:
        value = self.expect(where + ("result",), raw, str, "a results name, a path or a URL")
        bare = "/" not in value and ":" not in value and not value.startswith(".") and value != "inline"
        if bare and value not in results:
            hint = did_you_mean(value, results) or (
                f"Declared results: {', '.join(results) or 'none'}. For a folder, write a path such as ./{value}."
            )
            raise self.error(where + ("result",), f"{value!r} is not a name under `results:`", hint=hint)
        return str(value)

    def check_endpoints(self, path: Path, options: Mapping[Any, Any]) -> None:
        """Each ``endpoint_url`` in a result's options (also under ``client_kwargs``) must be
        a URL a client can reach (storage.base.endpoint_problem); one that names a ``$VAR``
        is judged once expanded, when the storage opens."""
        for key, value in options.items():
            where = path + (str(key),)
            if isinstance(value, Mapping):
                self.check_endpoints(where, value)
            elif key == "endpoint_url" and isinstance(value, str) and "$" not in value:
                problem = endpoint_problem(value)
                if problem is not None:
                    raise self.error(where, f"not a URL a client can reach ({problem})", hint=ENDPOINT_HINT)

    def check_protocol(self, path: Path, url: str) -> None:
        """A URL's protocol must be one a storage serves (fsspec's registry or a plugin's),
        with its library installed: refused here, at load, naming the extra to install --
        not when the first task touches it. Plain paths and ``${VAR}`` are not URLs yet."""
        chained = _CHAINED.match(url)
        if chained:  # no protocol to targetrun: it was a local folder named after the URL
            raise self.error(path, f"{redact.redact(url)!r} is a chained fsspec URL ({chained.group(0)}...), which "
                                   "targetrun does not read as one: it would be a local folder of that name",
                             hint="Give the storage's own URL (s3://bucket/prefix) and its settings under `options:`.")
        from targetrun.resolve import protocol

        proto = protocol(url)
        if proto is None:
            return
        if proto not in self.protocols:
            from targetrun.storage.base import check_protocol

            try:
                check_protocol(proto)
                self.protocols[proto] = None
            except TargetrunError as exc:
                self.protocols[proto] = SpecError(exc.message, hint=exc.hint)
        problem = self.protocols[proto]
        if problem is not None:
            raise self.error(path, f"{url!r}: {problem.message}", hint=problem.hint)

    def check_names_a_root(self, path: Path, url: str) -> None:
        """A result location on a service names its bucket or host: ``gs://`` alone would
        render targets such as ``gs:/o/a.json`` and ask the service for a bucket ``o``.
        (A ``{param}`` or ``${VAR}`` may fill it in later.) And no credentials before it
        (see :meth:`check_no_credentials`)."""
        from targetrun.resolve import protocol

        proto = protocol(url)
        if proto == "file" and not url[len("file://"):].startswith("/"):
            raise self.error(path, f"{redact.redact(url)!r} is a file:// URL with something before its path (a host, "
                                   "a user), which targetrun would read as a folder in the project",
                             hint="Write file:///absolute/path, or a path relative to the Pipelinefile.")
        if proto is not None:
            self.check_no_credentials(path, proto, url)
        if proto in _ROOTED_PROTOCOLS and "{" not in url and "$" not in url:
            if not url.split("://", 1)[1].split("/", 1)[0]:
                raise self.error(path, f"{url!r} names no bucket or host after {proto}://",
                                 hint=f"Write it as {proto}://BUCKET/prefix (or {proto}://HOST/path).")

    def check_no_credentials(self, path: Path, proto: str, url: str) -> None:
        """A bucket URL holds no credentials (``s3://KEY:SECRET@bucket``): no bucket service
        takes them there -- each target's check would ask for a bucket named after them
        (exit 3) -- and a Pipelinefile is no place for them. A bucket name holds no ``@``;
        Azure's ``container@account`` does, but never a ``:`` before it. (A user name in
        an sftp:// or https:// URL is that protocol's own.)"""
        root = url.split("://", 1)[1].split("/", 1)[0]
        user, at, _ = root.rpartition("@")
        if not at or proto not in _BUCKET_PROTOCOLS or (proto in _ACCOUNT_PROTOCOLS and ":" not in user):
            return
        shown = url.replace(user + "@", "***@", 1)
        raise self.error(path, f"{shown!r} holds credentials before its bucket: a {proto}:// URL takes none",
                         hint=f"Write it as {proto}://BUCKET/prefix, and give credentials in the result's `options:` "
                              "(key, secret or token, each a ${VAR} reference) or in the provider's usual environment.")

    def check_store_scheme(self, url: str) -> None:
        """``cache:`` must name a state store the registry serves (a path is SQLite), with
        its library installed -- found without importing it. A scheme is letters only, so
        ``${VAR}`` later in the URL (a password) does not hide it."""
        from targetrun.resolve import protocol
        from targetrun.store.base import STORES

        scheme = protocol(url)
        if scheme is None:
            return
        store = STORES.for_scheme(scheme)
        if store is None:
            raise self.error(("cache",), f"unknown state store {url!r}",
                             hint="Use a path (SQLite) or a redis://host:port/db URL.")
        problem = STORES.missing(store)
        if problem is not None:
            raise self.error(("cache",), problem.message, hint=problem.hint)

    def check_name_length(self, where: Path, name: str) -> None:
        """A task's name becomes part of file names (its log, a checkpoint under
        ``.targetrun/results/``, their staging siblings), and a file name holds at most
        255 bytes: a longer name would only fail when the task first writes."""
        from targetrun.resolve import MAX_TASK_NAME

        size = len(name.encode())
        if size > MAX_TASK_NAME:
            raise self.error(
                where,
                f"task name {name[:24]}... is {size} characters long; a task name is at most {MAX_TASK_NAME}",
                hint=f"A task's name becomes part of file names (its log, its checkpoint), and a file name holds at most "
                     f"255 bytes. Give the task a name of at most {MAX_TASK_NAME} characters.",
            )

    def duration(self, path: Path, raw: Any) -> float:
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise self.error(path, str(exc), hint="Write a duration such as 30s, 10m, 1h or 2d.") from None

    def cache_policy(self, where: Path, merged: Mapping[str, Any], body: Mapping[str, Any]) -> CachePolicy | None:
        """``cache_for`` with its validators and key; or validators alone (no time limit,
        no cache key: they judge an existing target by what made it)."""
        key = body.get("cache_key")
        if "cache_for" not in merged:
            if key is not None:
                raise self.error(where + ("cache_key",), "`cache_key` needs `cache_for`", hint="Add e.g. `cache_for: 1h` to this task.")
            if "cache_validator" not in merged:
                return None
            checks = self.validators(_said(where, "cache_validator", body), merged["cache_validator"])
            return CachePolicy(ttl=float("inf"), validator=checks[0][0], names=checks[0][1], also=checks[1:])
        ttl = self.duration(_said(where, "cache_for", body), merged["cache_for"])
        checks = self.validators(_said(where, "cache_validator", body), merged.get("cache_validator", "duration_only"))
        if key is not None:
            self.expect(where + ("cache_key",), key, str, "a cache key template")
        return CachePolicy(ttl=ttl, validator=checks[0][0], names=checks[0][1], key=key, also=checks[1:])

    def validators(self, path: Path, raw: Any) -> tuple[tuple[Validator, tuple[str, ...]], ...]:
        """One validator, or a list of them (all must pass)."""
        if isinstance(raw, list):
            if not raw:
                raise self.error(path, "the list of validators is empty", hint="Write e.g. `cache_validator: [code, all_inputs]`.")
            return tuple(self.validator(path + (str(i),), item) for i, item in enumerate(raw))
        return (self.validator(path, raw),)

    def validator(self, path: Path, raw: Any) -> tuple[Validator, tuple[str, ...]]:
        choices = [v.value for v in Validator]
        if isinstance(raw, dict) and len(raw) == 1:
            (name, names), = raw.items()
            validator = self._validator_name(path, name, choices)
            if validator not in _VALIDATORS_WITH_NAMES:
                raise self.error(path, f"{name} takes no list of names", hint=f"Write `cache_validator: {name}`.")
            self.expect(path + (str(name),), names, list, "a list of names")
            return validator, tuple(str(n) for n in names)
        if not isinstance(raw, str):
            raise self.error(path, f"expected a validator name, a list of them or `{{partial_inputs_only: [names]}}`, found {_describe(raw)}")
        validator = self._validator_name(path, raw, choices)
        if validator in _VALIDATORS_WITH_NAMES:
            raise self.error(path, f"{raw} needs a list of names", hint=f"Write `cache_validator: {{{raw}: [name, ...]}}`.")
        return validator, ()

    def _validator_name(self, path: Path, name: Any, choices: list[str]) -> Validator:
        if name not in choices:
            hint = did_you_mean(str(name), choices) or f"Known: {', '.join(choices)}."
            raise self.error(path, f"unknown cache validator {name!r}", hint=hint, cls=UnknownKeyError)
        return Validator(name)

    # -- templates -----------------------------------------------------------------

    def check_templates(self, task: TaskSpec, params: Mapping[str, object]) -> None:
        allowed = templating.BASE_KEYS
        if task.foreach is not None:
            allowed = allowed | templating.MAPPED_KEYS
        where: Path = ("tasks", task.name)
        upstream = frozenset(arg for arg, _ in task.needs) | frozenset(task.upstream)
        items = _known_items(task.foreach, params)
        for field, template in _templates(task):
            keys = allowed | templating.SHELL_KEYS if field == "shell" else allowed
            try:
                templating.check(template, keys, params=params, needs=upstream, items=items)
                if field == "shell":
                    check_shell(template)
            except TemplateError as exc:
                raise self.error(where + tuple(field.split(".")), f"in {field}: {exc.message}", hint=exc.hint, cls=TemplateError) from None
        if task.foreach is not None and task.target is not None:
            named = {name for name, _, _ in templating.fields(task.target)}
            if not named & templating.MAPPED_KEYS:
                raise self.error(
                    where + ("target",),
                    "a mapped task's target must name {item} or {map_index}, or every child would share one target",
                    hint='For example `target: "out/{item}.json"`.',
                )

    def check_graph(self, tasks: Mapping[str, TaskSpec]) -> None:
        for task in tasks.values():
            self.attempt(lambda: self.check_needs(task, tasks), None)
        graph = _known_graph(tasks)
        cycle = dag.find_cycle(graph)
        if cycle:
            self.problems.append(self.error(
                ("tasks", cycle[0], "needs"),
                f"the needs form a cycle: {' -> '.join(cycle)}",
                hint="Remove one of these needs.",
                cls=CycleError,
            ))

    def check_needs(self, task: TaskSpec, tasks: Mapping[str, TaskSpec]) -> None:
        for arg, up in task.needs:
            if up in self.broken:
                continue  # its own problem is reported already
            if up not in tasks:
                hint = did_you_mean(up, tasks) or f"Tasks: {', '.join(list(tasks)[:20])}."
                raise self.error(("tasks", task.name, "needs"), f"task {task.name!r} needs {up!r}, which is not a task", hint=hint)
            if task.shell is not None and tasks[up].foreach is not None:
                raise self.error(
                    ("tasks", task.name, "needs"),
                    f"shell task {task.name!r} needs the mapped task {up!r}, whose value is a list, not one file",
                    hint=f"Make {task.name!r} a Python task (it receives the list), or map it too.",
                )
            if task.shell is not None and not tasks[up].checkpoint:
                raise self.error(
                    ("tasks", task.name, "needs"),
                    f"shell task {task.name!r} needs {up!r}, which has `checkpoint: false`, so it has no file to pass",
                    hint=f"Checkpoint {up!r} or make {task.name!r} a Python task.",
                )
            if tasks[up].shell is not None and not tasks[up].checkpoint:
                raise self.error(
                    ("tasks", task.name, "needs"),
                    f"task {task.name!r} needs the shell task {up!r}, which has `checkpoint: false`: a shell task's "
                    "value is its checkpoint, so it has none to pass",
                    hint=f"Checkpoint {up!r}, or remove it from the needs of {task.name!r}.",
                )

    def check_templates_render(self, spec: PipelineSpec) -> None:
        """Render every plain (unmapped) task once, as a run would, with today's date and
        the default params: catches bad format specs, escapes and two tasks sharing a target."""
        from targetrun.resolve import TargetOwners, TaskRenderer, default_context

        renderer = TaskRenderer(spec, default_context(spec), "check")  # one Placer: each folder's realpath asked once
        owners = TargetOwners(spec)
        rendered: dict[str, tuple[str | None, tuple[str, ...]]] = {}  # task -> its target URL and deps
        for task in spec.tasks.values():
            if task.foreach is None:
                self.attempt(lambda: self.check_task_renders(task, renderer, owners, rendered), None)
        if any(deps for _, deps in rendered.values()):
            self.check_dep_makers(spec, rendered)

    def check_task_renders(self, task: TaskSpec, renderer: TaskRenderer, owners: TargetOwners,
                           rendered: dict[str, tuple[str | None, tuple[str, ...]]]) -> None:
        try:
            target, _, _ = renderer.fields(task, cache_key=False)  # a key may need the -p values of a run
            deps = renderer.deps(task)
            if target is not None:
                owners.claim(task.name, target, None)
            rendered[task.name] = (target.url if target is not None else None, deps)
        except SpecError as exc:  # the line of the exact key that failed, from the YAML
            raise self._at_its_key(exc, task) from None

    def check_dep_makers(self, spec: PipelineSpec, rendered: Mapping[str, tuple[str | None, tuple[str, ...]]]) -> None:
        """A dep another task makes is read only after it: the reader needs it (DepMakers)."""
        from targetrun.resolve import DepMakers

        graph = _known_graph(spec.tasks)
        # A need that is no task here (a broken task, or a name of no task) is reported
        # already; what it needs in turn is unknown, so a task reaching it is not judged.
        partial = {name for name, task in spec.tasks.items() if len(graph[name]) < len(task.upstream)}
        makers = DepMakers(spec, [(name, url) for name, (url, _) in rendered.items() if url is not None])
        for name, (_, deps) in rendered.items():
            task = spec.tasks[name]
            try:
                makers.ordered(name, task, deps, lambda: dag.ancestors(graph, [name]))
            except SpecError as exc:
                if not dag.ancestors(graph, [name]) & partial:
                    self.problems.append(self._at_its_key(exc, task))

    def _at_its_key(self, exc: SpecError, task: TaskSpec) -> SpecError:
        """``exc`` at the line of the exact key that failed, from the YAML."""
        path = tuple((exc.key or f"tasks.{task.name}").split(".", 3))
        return self.error(path, exc.message, hint=exc.hint, cls=type(exc))


def _known_graph(tasks: Mapping[str, TaskSpec]) -> dict[str, tuple[str, ...]]:
    """Each task's needs among ``tasks``: while a file is checked, a task with a problem of
    its own is left out, and a need may name no task at all."""
    return {name: tuple(up for up in task.upstream if up in tasks) for name, task in tasks.items()}


def _templates(task: TaskSpec) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if task.target is not None:
        found.append(("target", task.target))
    if task.shell is not None:
        found.append(("shell", task.shell))
    if task.cache is not None and task.cache.key is not None:
        found.append(("cache_key", task.cache.key))
    if isinstance(task.foreach, str):
        found.append(("foreach", task.foreach))
    found.extend((f"deps.{i}", dep) for i, dep in enumerate(task.deps))
    stack: list[tuple[str, Any]] = [(f"args.{k}", v) for k, v in task.args.items()]
    while stack:
        name, value = stack.pop()
        if isinstance(value, str):
            found.append((name, value))
        elif isinstance(value, list):
            stack.extend((f"{name}.{i}", v) for i, v in enumerate(value))
        elif isinstance(value, dict):
            stack.extend((f"{name}.{k}", v) for k, v in value.items())
    return found


def _said(where: Path, key: str, body: Mapping[str, Any]) -> Path:
    """Where a task's value for ``key`` is written: in the task, or (inherited) under
    ``defaults:`` -- so a bad default is reported at its own line, not at a task's that
    never names the key."""
    return where + (key,) if key in body else ("defaults", key)


def _known_items(foreach: Any, params: Mapping[str, object]) -> list[object] | None:
    """The items of a mapped task when the file says them (a list, or a list parameter's default)."""
    if isinstance(foreach, list):
        return [item for item in foreach if not templating.has_fields(item)]
    if isinstance(foreach, str):
        lone = templating.lone_field(foreach)
        if lone and lone.startswith(("params.", "parameters.")):
            value = params.get(lone.split(".", 1)[1])
            return list(value) if isinstance(value, (list, tuple)) else None
    return None


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    kind = {dict: "a mapping", list: "a list", str: "the string", bool: "the boolean"}.get(type(value))
    if kind is None:
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, (str, bool)):
        return f"{kind} {value!r}"
    return kind

