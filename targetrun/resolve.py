"""Where things live: result locations, rendered targets, default checkpoint places.

Path arithmetic, plus one ``realpath`` per local folder a value leads to. A task's target
is relative to its result location (``result:``, default the Pipelinefile's folder); a
rendered target that climbs out of it (``../../etc/passwd``) or is absolute is refused
unless the Pipelinefile sets ``allow_outside_targets: true`` *and* the template's own text
points outside. A target written as a full URL (``s3://b/k.json``) names its own location.
Whatever the values, a rendered target stays under the folder its template's literal
text names (see :class:`Placer`): parameters choose names inside it, never its root.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence

from targetrun import templating
from targetrun.errors import DuplicateTargetError, SpecError
from targetrun.model import Location, PipelineSpec, PlannedTask, RunContext, TaskSpec, child_name
from targetrun.serializers.base import file_suffix, for_suffix, split_suffix, with_compression

LOCAL = "local"
INLINE = "inline"  # values kept in the state store (result: inline)
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
CHECKPOINT_DIR = ".targetrun/results"
LOGS = os.path.join(".targetrun", "logs")  # task logs, one folder per run (report/logs.py writes them)
# A literal relative path whose every segment starts with a letter, digit or '_': no '..',
# '.' or empty segment, no scheme (no ':'), no backslash, no space, no NUL (Placer.place).
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=,@-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.+=,@-]*)*")
# A task's name becomes part of file names: its log (``NAME.log``) and, for a task without
# a target, its checkpoint ``NAME-INDEX.SUFFIX`` with the staging sibling
# ``.NAME-INDEX.SUFFIX.targetrun-RUN_ID-ATTEMPT-RANDOM`` and a local write's
# ``.STAGING.tmp-PID-RANDOM`` around that: about 85 bytes added to the name. A file name
# holds at most 255 bytes (Linux, macOS, Windows), so names stop at 128, with room to spare
# for a plugin's longer suffix.
MAX_TASK_NAME = 128
# A local target's staging sibling adds the same ~85 bytes to the target's own file name.
MAX_FILE_NAME_BYTES = 255  # of a file or folder name (Linux, macOS, Windows)
MAX_TARGET_NAME_BYTES = MAX_FILE_NAME_BYTES - 85
_VALUES_HINT = "Check the values that fill it (-p, --params-file, foreach items)."
_DEP_HINT = _VALUES_HINT[:-1] + ('; to read elsewhere, write that folder or URL in the template itself '
                                 '(deps: ["/mnt/data/{params.x}"]).')
_OWN_FOLDER = ".targetrun"  # targetrun's own files: state store, spec and replay caches, logs, values
_SQLITE_SIBLINGS = ("", "-wal", "-shm", "-journal")  # a SQLite store is these files together


def log_path(root: str, run_id: str, task: str) -> str:
    """Where a run keeps what ``task`` printed: ``.targetrun/logs/RUN_ID/TASK.log``."""
    safe = task.replace("/", "_").replace(os.sep, "_")
    return os.path.join(root, LOGS, run_id, f"{safe}.log")


def protocol(url: str) -> str | None:
    """The URL scheme, or None for a plain path.

    >>> protocol("s3://b/k"), protocol("raw/x.json"), protocol("file:///tmp/x")
    ('s3', None, 'file')
    """
    match = _URL.match(url)
    return match.group(1).lower() if match else None


def default_context(spec: PipelineSpec, date: dt.datetime | None = None, run_id: str = "check") -> dict[str, object]:
    when = date or dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return templating.base_context(RunContext(spec.name, when, spec.params, run_id))


def result_base(spec: PipelineSpec, result: str) -> Location:
    """The folder or URL prefix a result reference points at.

    A local folder is made absolute against the Pipelinefile's folder; the Location's
    ``result`` names the storage that serves it: ``local``, a name under ``results:``,
    or a URL protocol.
    """
    if result == INLINE:
        return Location(INLINE, f"inline://{spec.name}")
    named = spec.results.get(result)
    url = named.url if named else result
    proto = protocol(url)
    if proto is None or proto == "file":
        path = url[len("file://") :] if proto == "file" else url
        return Location(LOCAL, os.path.normpath(os.path.join(spec.root, os.path.expanduser(path))))
    key = named.name if named and named.options else proto
    return Location(key, url.rstrip("/"))


def result_roots(spec: PipelineSpec) -> tuple[Location, ...]:
    """Every result location the pipeline writes in: each task's and each one named under
    ``results:`` -- where recovery may remove a staging file (engine/recovery.py)."""
    names = dict.fromkeys([*(task.result for task in spec.tasks.values()), *spec.results])
    return tuple(dict.fromkeys(result_base(spec, name) for name in names))


def escapes_through_symlink(spec: PipelineSpec, result: str, path: str) -> str | None:
    """Where a local file ``path`` really is, when it was replaced by a symlink that leads
    out of both its result location and its own folder; None when it stays inside one of
    them or does not exist. A symlinked *folder* is not judged here: one named in the
    template's own text is the author's choice, and one a value leads to is refused when
    the target is rendered (:meth:`Placer.place`). What reads a target for a person to see
    (``show``) asks this first: a link to someone else's file is not its value.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     spec = PipelineSpec(name="p", path=os.path.join(root, "P.yaml"), root=root, tasks={})
    ...     os.symlink("/etc/hostname", os.path.join(root, "t.txt"))
    ...     escapes_through_symlink(spec, LOCAL, os.path.join(root, "t.txt"))
    '/etc/hostname'
    """
    lexical = os.path.normpath(path)
    if not os.path.islink(lexical):
        return None
    real = os.path.realpath(lexical)
    for root in (result_base(spec, result).url, os.path.dirname(lexical)):
        real_root = os.path.realpath(root)
        if real.startswith(real_root.rstrip(os.sep) + os.sep):
            return None
    return real


def _inside(root: str, real_root: str, folder: str, real_folder: str, rendered: str, what: str,
            since: bool = False) -> None:
    if real_folder != real_root and not real_folder.startswith(real_root.rstrip(os.sep) + os.sep):
        put = " (a symlink put there since the run planned)" if since else ""
        raise SpecError(
            f"the {what} {rendered!r} goes through a symlink to {real_folder}, outside {root}{put}",
            hint="A value may not lead a target out of its result location; check the values that fill it and the symlinks.",
        )


class Placer:
    """Places rendered paths in result locations; remembers each result's base.

    Containment (DESIGN.md §3): what a template's own text says is the author's choice;
    what its values (parameters, items, the date) add may not move the target out of the
    folder or URL prefix that text names. So a target whose template is a relative path
    never renders to a URL or an absolute path, no value adds a ``..`` segment, and on
    local storage no value reaches a folder through a symlink that leads outside.
    """

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self._bases: dict[str, Location] = {}
        self._real: dict[str, str] = {}  # realpath of local folders, asked once per folder
        self._within: dict[str, tuple[str, str, str]] = {}  # a path a value led -> (root, path as rendered, what)
        self._serializers: dict[tuple[object, ...], str] = {}
        self._own = _own_files(spec)
        self._own_names = tuple({os.path.basename(path) for path in self._own})  # as written: endswith

    def serializer(self, task: TaskSpec, target: str | None) -> str:
        """:func:`infer_serializer`, asked once per kind of task and target suffix: the
        registry does not change during a plan, and 10,000 ``.txt`` targets share one answer."""
        name = (target or "").rsplit("/", 1)[-1]
        key = (task.shell is None, task.serializer, task.default_serializer, task.result,
               name[name.find("."):] if "." in name else "")
        found = self._serializers.get(key)
        if found is None:
            found = self._serializers[key] = infer_serializer(task, target)
        return found

    def base(self, result: str) -> Location:
        if result not in self._bases:
            self._bases[result] = result_base(self.spec, result)
        return self._bases[result]

    def target(self, task: TaskSpec, context: Mapping[str, object],
               budget: templating.RenderBudget | None = None) -> Location:
        assert task.target is not None
        rendered = templating.render(task.target, context, budget) if templating.has_fields(task.target) \
            else task.target
        return self.place(task.result, rendered, what="target", template=task.target)

    def place(self, result: str, rendered: str, *, what: str, template: str | None = None) -> Location:
        """Place ``rendered`` (made from ``template``; default: it is all literal text)."""
        if (template is None or template == rendered) and _PLAIN.fullmatch(rendered):
            # The common case, a literal relative path such as out/t1.txt: every check below
            # passes by construction (no '..', '.' or empty segment, no scheme, no NUL, not
            # absolute, no field so no symlink check), so only the join is left.
            base = self.base(result)
            if base.result == LOCAL:
                joined = f"{base.url.rstrip('/')}/{rendered}"
                if rendered.endswith(self._own_names):  # the author's own text: its own spelling
                    self._not_targetruns_own(joined, rendered, what)
                if len(rendered) > MAX_TARGET_NAME_BYTES // 4:  # could be too long in UTF-8: count
                    _name_fits(joined, rendered, what)
                return Location(LOCAL, joined)
            return Location(base.result, f"{base.url}/{rendered}")
        if not rendered.strip():
            raise SpecError(f"the {what} renders to an empty path")
        if "\0" in rendered:
            raise SpecError(f"the {what} {rendered!r} holds a NUL byte", hint=_VALUES_HINT)
        if rendered.rstrip().endswith(("/", "\\")):
            raise SpecError(f"the {what} {rendered!r} ends with '/': it names a folder, not a file",
                            hint="Write the file name at the end, e.g. out/data.json (check the values that fill it).")
        # A template without braces is all literal text (the common case: parse nothing).
        braces = template is not None and ("{" in template or "}" in template)
        fielded = template is not None and braces and templating.names_a_field(template)
        fixed = rendered if template is None else templating.literal_prefix(template) if braces else template
        fixed_dir = fixed[: fixed.rfind("/") + 1]  # the folder the author's own text names
        _no_climbing(rendered, fixed_dir, what)
        if _OWN_FOLDER in rendered.casefold().replace("\\", "/").split("/"):
            raise SpecError(f"the {what} {rendered!r} is inside a {_OWN_FOLDER}/ folder, where targetrun keeps its "
                            "own files (state store, caches, logs)", hint=_VALUES_HINT)
        if (proto := protocol(fixed)) is not None:
            location = _absolute_url(self.spec, rendered, proto)
            if location.result == LOCAL:
                self._not_targetruns_own(location.url, rendered, what)
                _name_fits(location.url, rendered, what)
                if fielded:
                    self._check_symlinks(location.url, os.path.normpath(fixed_dir[len("file://") :]), rendered, what)
            return location
        if protocol(rendered) is not None:
            raise SpecError(
                f"the {what} renders to the URL {rendered!r}, but its template {template!r} is a path in its "
                "result location: a value may not change a target's protocol or root",
                hint="Check the values that fill it (-p, --params-file, foreach items); to write elsewhere, name the URL in the template or in `result:`.",
            )
        base = self.base(result)
        relative = _relative(rendered)
        if relative is None and not (self.spec.allow_outside_targets and _relative(fixed_dir or ".") is None):
            raise SpecError(
                f"the {what} {rendered!r} points outside its result location {base.url}",
                hint="Keep targets relative and inside it, or set `allow_outside_targets: true` at the top of the "
                "file and write the outside folder in the template itself.",
            )
        if relative in (".", ""):
            raise SpecError(f"the {what} {rendered!r} names the result folder itself, not a file inside it")
        if relative is None:  # the template's own text leaves the result location (allowed above)
            relative = posixpath.normpath(rendered)
        if base.result == LOCAL:
            joined = os.path.normpath(os.path.join(base.url, relative)) if relative.startswith(("/", "..")) else f"{base.url.rstrip('/')}/{relative}"
            self._not_targetruns_own(joined, rendered, what)
            _name_fits(joined, rendered, what)
            if fielded:
                self._check_symlinks(joined, os.path.normpath(os.path.join(base.url, fixed_dir)), rendered, what)
            return Location(LOCAL, joined)
        return Location(base.result, f"{base.url}/{relative.lstrip('/')}")

    def _not_targetruns_own(self, path: str, rendered: str, what: str) -> None:
        """A target is never the Pipelinefile or the state store: writing it would destroy
        what vouches for every checkpoint. Compared without case, as a case-insensitive
        disk (macOS, Windows) would open the file."""
        folded = os.path.normpath(path).casefold()
        for own, kind in self._own.items():
            if folded == own.casefold():
                raise SpecError(f"the {what} {rendered!r} is {kind} ({own})",
                                hint=f"Give the {what} another name. {_VALUES_HINT}")

    def _check_symlinks(self, path: str, root: str, rendered: str, what: str) -> None:
        """The folder a value led to must still be inside ``root`` once symlinks are resolved."""
        folder = os.path.dirname(path)
        self._within[path] = (root, rendered, what)
        _inside(root, self._realpath(root), folder, self._realpath(folder), rendered, what)

    def check_again(self, path: str) -> None:
        """:meth:`_check_symlinks` of the local ``path`` once more, with the disk as it is
        now: a symlink put in a value's folder after the target was rendered -- by an
        upstream task, or anyone, while the run went on -- must not lead the write out.
        A path no value led anywhere is not judged (its folders are the author's choice)."""
        if path in self._within:
            root, rendered, what = self._within[path]
            folder = os.path.dirname(path)
            _inside(root, os.path.realpath(root), folder, os.path.realpath(folder), rendered, what, since=True)

    def contained_in(self, path: str) -> tuple[str, str] | None:
        """For a local ``path`` a value led (see :meth:`_check_symlinks`): its result
        location as written and as it really is (symlinks resolved), which the commit that
        writes it holds it to (LocalStorage.commit_inside); None for any other path."""
        found = self._within.get(path)
        return None if found is None else (found[0], self._realpath(found[0]))

    def _realpath(self, folder: str) -> str:
        if folder not in self._real:
            self._real[folder] = os.path.realpath(folder)
        return self._real[folder]


class TaskRenderer:
    """Renders tasks for one run: target, arguments, cache key, serializer, checkpoint.

    The one place that does: planning (and each mapped child), ``show``, ``forget`` and
    the loader's check of every template all call it. Errors name the task and the key
    whose template failed (``tasks.fetch.target``, ``tasks.fetch.args.url``).
    """

    def __init__(self, spec: PipelineSpec, base: Mapping[str, object], run_id: str, placer: Placer | None = None) -> None:
        self.spec = spec
        self.base = base  # templating.base_context of the run
        self.run_id = run_id
        self.placer = placer or Placer(spec)
        # what this run's renders keep, together: targets, arguments, cache keys, deps and the
        # items of a list or template foreach (engine/mapping.static_items is given it)
        self.budget = templating.RenderBudget()

    @classmethod
    def for_run(cls, spec: PipelineSpec, context: RunContext) -> TaskRenderer:
        return cls(spec, templating.base_context(context), context.run_id)

    def render(self, task: TaskSpec, map_index: int | None = None, item: object = None) -> PlannedTask:
        """A task as this run runs it. A mapped task renders as a gather node with no
        children yet; each child is rendered with its own ``{item}`` and ``{map_index}``."""
        if task.foreach is not None and map_index is None:
            return PlannedTask(task, None, None, "pickle", {})
        target, args, cache_key = self.fields(task, map_index, item)
        serializer = self.placer.serializer(task, target.url if target else None)
        checkpoint = target
        if checkpoint is None and task.checkpoint:
            suffix = f"-{map_index}" if map_index is not None else ""
            checkpoint = default_checkpoint(self.spec, task, serializer, self.run_id, suffix,
                                            self.placer.base(task.result))
        if not task.deps:  # most tasks: the field's default
            return PlannedTask(task, target, checkpoint, serializer, args, cache_key, map_index, item)
        return PlannedTask(task, target, checkpoint, serializer, args, cache_key, map_index, item,
                           deps=self.deps(task, map_index, item))

    def deps(self, task: TaskSpec, map_index: int | None = None, item: object = None) -> tuple[str, ...]:
        """The task's ``deps:`` rendered as its target is (same keys, same errors)."""
        if not any("{" in dep or "}" in dep for dep in task.deps):
            return task.deps
        extra = {"item": item, "map_index": map_index, "task_full_name": child_name(task.name, map_index)} \
            if map_index is not None else {}
        context = templating.task_context(self.base, task.name, **extra)
        rendered: list[str] = []
        for i, dep in enumerate(task.deps):
            try:
                rendered.append(_dep_in_place(templating.render(dep, context, self.budget), dep))
            except SpecError as exc:
                raise type(exc)(exc.message, file=self.spec.path, line=task.line_of("deps"),
                                key=f"tasks.{task.name}.deps.{i}", hint=exc.hint) from None
        return tuple(rendered)

    def fields(self, task: TaskSpec, map_index: int | None = None, item: object = None, *,
               cache_key: bool = True) -> tuple[Location | None, Mapping[str, object], str | None]:
        """The task's templates rendered: its target, its arguments and (unless
        ``cache_key`` is False) its cache key."""
        mapped = map_index is not None
        name = child_name(task.name, map_index) if map_index is not None else task.name
        templated_args = task.templated_args or mapped
        key_template = task.cache.key if task.cache is not None else None
        templated = templated_args or (task.target is not None and "{" in task.target) or key_template is not None
        extra = {"item": item, "map_index": map_index, "task_full_name": name} if mapped else {}
        context = templating.task_context(self.base, task.name, **extra) if templated else self.base
        try:
            part: tuple[str, ...] = ("target",)
            target = self.placer.target(task, context, self.budget) if task.target is not None else None
            args = task.args
            if templated_args:
                args = {}
                for key, value in task.args.items():
                    part = ("args", key)
                    args[key] = templating.render_value(value, context, self.budget)
            rendered_key = None
            if cache_key and task.cache is not None and task.cache.caches:
                part = ("cache_key",)
                rendered_key = templating.render(key_template, context, self.budget) if key_template \
                    else f"{self.spec.name}/{name}"
        except SpecError as exc:  # with the file, the line and the key of the template
            raise type(exc)(exc.message, file=self.spec.path, line=task.line_of(part[0]),
                            key=".".join(("tasks", task.name) + part), hint=exc.hint) from None
        return target, args, rendered_key


class TargetOwners:
    """Which task writes each target of a run: the one check that no two tasks share a
    target (the loader's, over the plain tasks, and each run's, mapped children included)."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self._owners: dict[str, str] = {}  # by URL: two named results may reach one place
        # local paths as a case-insensitive disk sees them -> the first path seen so (its task: _owners);
        # the usual path is its own folded spelling, kept then as one string (a plan of 100,000 targets
        # holds this as long as it lives)
        self._folded: dict[str, str] = {}
        self._folders: dict[str, str] = {}  # each folder a local target lies in -> a task writing below it

    def claim(self, task: str, target: Location, line: int | None) -> None:
        owner = self._owners.setdefault(target.url, task)
        if owner != task:
            raise self._duplicate(f"tasks {owner!r} and {task!r} both write the target {target.url}", task, line)
        if target.result == LOCAL:
            # macOS and Windows disks open out/Report.json for out/report.json, and NFC "é" for
            # NFD "é": two such targets would silently be one file there, so they are refused everywhere.
            url = target.url
            folded = url.lower() if url.isascii() else unicodedata.normalize("NFC", url).casefold()
            first = self._folded.setdefault(url if folded == url else folded, url)
            if first != url and (other := self._owners[first]) != task:
                raise self._duplicate(
                    f"tasks {other!r} and {task!r} write {first} and {url}, one file on a case-insensitive "
                    "or Unicode-normalising disk (macOS, Windows)", task, line)
            self._not_nested(task, url, line)

    def _not_nested(self, task: str, url: str, line: int | None) -> None:
        """A local target that is the folder of another's: one of the two cannot be written,
        whichever runs second (a file in the way of a folder, or the reverse)."""
        below = self._folders.get(url)
        if below is not None and below != task:
            raise self._duplicate(f"task {below!r} writes a target that lies in {url}, the target of task {task!r}: "
                                  "a file cannot also be a folder", task, line)
        cut = url.rfind("/")
        while cut > 0:
            folder = url[:cut]
            if folder in self._folders:
                break  # known already, and so are the folders above it (checked when it was added)
            owner = self._owners.get(folder)
            if owner is not None and owner != task:
                raise self._duplicate(f"the target {url} of task {task!r} lies in {folder}, the target of task "
                                      f"{owner!r}: a file cannot also be a folder", task, line)
            self._folders[folder] = task
            cut = url.rfind("/", 0, cut)

    def _duplicate(self, message: str, task: str, line: int | None) -> DuplicateTargetError:
        return DuplicateTargetError(message, file=self.spec.path, line=line, key=f"tasks.{task.split('[')[0]}.target",
                                    hint="Give each task its own target (check the -p values and the foreach items).")


class DepMakers:
    """Which task makes a file a task declares in ``deps:``. Make orders such a pair; here
    the reader must need the maker (``needs:``, directly or not) -- then it runs after it,
    and the dep is not missing meanwhile -- or the pipeline is refused (exit 2): nothing
    else orders them, so the reader could run first, or read it while it is written.

    A dep names a target when it is the same file or object, a folder or prefix the target
    lies under, or a glob that matches it (``*`` within a folder, as glob has it).

    >>> spec = PipelineSpec("p", "/p/Pipelinefile.yaml", "/p", {})
    >>> found = DepMakers(spec, [("a", "/p/data/x.csv"), ("b", "/p/data/sub/y.csv"), ("c", "s3://b/ref/u.csv")])
    >>> found.named_by("data/x.csv"), found.named_by("data/"), found.named_by("data/x")
    ([('a', '/p/data/x.csv')], [('b', '/p/data/sub/y.csv'), ('a', '/p/data/x.csv')], [])
    >>> found.named_by("data/*.csv"), found.named_by("s3://b/ref/"), found.named_by("ref/u.csv")
    ([('a', '/p/data/x.csv')], [('c', 's3://b/ref/u.csv')], [])
    >>> found.named_by("data/s*"), found.named_by("data/**/*.csv")
    ([('b', '/p/data/sub/y.csv')], [('b', '/p/data/sub/y.csv'), ('a', '/p/data/x.csv')])
    """

    def __init__(self, spec: PipelineSpec, targets: list[tuple[str, str]]) -> None:
        self.spec = spec
        self._sorted = sorted((url, task) for task, url in targets)
        self._urls = [url for url, _ in self._sorted]

    def ordered(self, name: str, task: TaskSpec, deps: Sequence[str],
                upstream: Callable[[], set[str]]) -> frozenset[str]:
        """The deps of task ``name`` that a task it needs makes (``upstream``: the tasks it
        needs, transitively, asked only when a dep names a target). Raises SpecError for a
        dep another task makes that it does not need."""
        ordered: set[str] = set()
        needed: set[str] | None = None
        for i, dep in enumerate(deps):
            for maker, url in self.named_by(dep):
                if maker == name:
                    continue
                needed = upstream() if needed is None else needed
                if maker not in needed:
                    raise SpecError(
                        f"the dep {dep} of task {name!r} is (or holds) the target of task {maker!r} ({url}), which "
                        f"{name!r} does not need: nothing orders them, so {name!r} could run before it, or read it "
                        "while it is written",
                        file=self.spec.path, line=task.line_of("deps"), key=f"tasks.{task.name}.deps.{i}",
                        hint=f"Add `needs: [{maker}]` to {task.name!r} (it then runs after {maker!r} and is given "
                        "its value), or read another file.")
                ordered.add(dep)
        return frozenset(ordered)

    def named_by(self, dep: str) -> list[tuple[str, str]]:
        """(task, target URL) of each target ``dep`` names."""
        import bisect
        import fnmatch

        if "://" in dep:
            path = dep.rstrip("/")
        else:
            path = os.path.normpath(dep if os.path.isabs(dep) else os.path.join(self.spec.root, dep))
        if any(c in dep for c in "*?["):  # rare: a glob is matched against every target
            if "**" in dep:  # any depth, none included (`data/**/*.csv` names data/x.csv)
                shallow = path.replace("**/", "")
                return [(task, url) for url, task in self._sorted
                        if fnmatch.fnmatchcase(url, path) or fnmatch.fnmatchcase(url, shallow)]
            depth = path.count("/") + 1  # as glob: `*` stays within a folder; a folder it matches holds files
            return [(task, url) for url, task in self._sorted
                    if fnmatch.fnmatchcase("/".join(url.split("/")[:depth]), path)]
        found: list[tuple[str, str]] = []
        at = bisect.bisect_left(self._urls, path)
        if at < len(self._urls) and self._urls[at] == path:
            found.append((self._sorted[at][1], path))
        folder = path.rstrip("/") + "/"
        at = bisect.bisect_left(self._urls, folder)
        while at < len(self._urls) and self._urls[at].startswith(folder):
            found.append((self._sorted[at][1], self._urls[at]))
            at += 1
        return found


def _name_fits(path: str, rendered: str, what: str) -> None:
    """A local target's file name leaves room for its staging sibling (``.NAME.targetrun-...``)
    within the 255 bytes a file name holds: refused here, before its task runs, rather than
    when the finished value cannot be written."""
    folders, name = os.path.split(path)
    if len(rendered) > MAX_FILE_NAME_BYTES // 4:  # shorter, no name in it can be too long (the base's exist)
        _folder_names_fit(folders, rendered, what)
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_TARGET_NAME_BYTES:
        raise SpecError(
            f"the {what} {_shown(rendered)!r} has a file name of {size} bytes; a target's file name may have at most "
            f"{MAX_TARGET_NAME_BYTES} (a file name holds 255 bytes, and targetrun writes a hidden staging file "
            "named after the target beside it)", hint=f"Shorten the name. {_VALUES_HINT}")


def _folder_names_fit(folders: str, rendered: str, what: str) -> None:
    """Every folder name on a local target's path holds at most 255 bytes. Checked here:
    the file system says so only once the folder above it exists (before that, a look at the
    target answers "missing"), which would be a failed write after the task ran."""
    for folder in folders.split(os.sep):
        size = len(folder.encode("utf-8", "surrogateescape"))
        if size > MAX_FILE_NAME_BYTES:
            shown = folder if len(folder) <= 60 else f"{folder[:40]}...{folder[-12:]}"
            raise SpecError(f"the {what} {_shown(rendered)!r} has a folder name of {size} bytes ({shown!r}); a "
                            f"folder name holds at most {MAX_FILE_NAME_BYTES}", hint=f"Shorten it. {_VALUES_HINT}")


def _shown(rendered: str) -> str:
    return rendered if len(rendered) <= 80 else f"{rendered[:60]}...{rendered[-12:]}"


def own_file(spec: PipelineSpec, path: str) -> str | None:
    """What of targetrun's own a file the user names for output would overwrite (``run
    --report .targetrun/state.db`` replaced every record with HTML): the Pipelinefile, the
    state store, or something in the project's .targetrun/ folder; None for any other file."""
    own = {os.path.realpath(name): what for name, what in _own_files(spec).items()}
    folder = os.path.realpath(os.path.join(spec.root, _OWN_FOLDER))
    for candidate in dict.fromkeys((os.path.normpath(os.path.abspath(path)), os.path.realpath(path))):
        if candidate in own:
            return own[candidate]
        if os.path.commonpath([candidate, folder]) == folder:
            return f"a file in {_OWN_FOLDER}/, where targetrun keeps its own files"
    return None


def _own_files(spec: PipelineSpec) -> dict[str, str]:
    """The files no target may be, with what each is: the Pipelinefile and a local SQLite
    state store (with its journal files). A ``cache:`` naming ``${VAR}`` or a server is
    left out: it is not a file of this folder that a target could name."""
    own = {os.path.normpath(spec.path): "the Pipelinefile itself"}
    url = spec.cache_url
    proto = protocol(url)
    if "$" not in url and proto in (None, "file", "sqlite"):
        path = re.sub(r"^[A-Za-z]+://", "", url)
        store = os.path.normpath(os.path.join(spec.root, os.path.expanduser(path)))
        own.update({store + suffix: "the state store" for suffix in _SQLITE_SIBLINGS})
    return own


def _no_climbing(rendered: str, fixed_dir: str, what: str) -> None:
    """No ``..`` segment after the template's own folder: a value may not climb.

    >>> _no_climbing("raw/a..b/x.json", "raw/", "target")
    >>> _no_climbing("raw/../../etc/passwd", "raw/", "target")
    Traceback (most recent call last):
    ...
    targetrun.errors.SpecError: the target 'raw/../../etc/passwd' points outside its result location: a value climbs out of raw/ with '..'. Check the values that fill it (-p, --params-file, foreach items).
    """
    if _climbs_out(rendered, fixed_dir):
        raise SpecError(f"the {what} {rendered!r} points outside its result location: a value climbs out of "
                        f"{fixed_dir or 'it'} with '..'", hint=_VALUES_HINT)


def _climbs_out(rendered: str, fixed_dir: str) -> bool:
    """Whether a ``..`` segment follows the template's own folder ``fixed_dir`` (a target's or a dep's)."""
    rest = rendered[len(fixed_dir) :] if rendered.startswith(fixed_dir) else rendered
    return ".." in rest.replace("\\", "/").split("/")


def _dep_in_place(rendered: str, template: str) -> str:
    """A rendered dep stays where its template's own text puts it, as a target does: a
    value may not climb out of that folder with '..', make the path absolute, or give it a
    protocol -- ``deps: ["data/{params.x}"]`` never reads /etc/shadow, s3://another-bucket
    or the cloud metadata endpoint, whatever -p or a foreach item says.

    >>> _dep_in_place("data/sub/x.csv", "data/{params.x}")
    'data/sub/x.csv'
    >>> _dep_in_place("s3://other/x", "{params.x}")
    Traceback (most recent call last):
    ...
    targetrun.errors.SpecError: the dep 's3://other/x' is a URL, but its template '{params.x}' is a path: a value may not give a dep a protocol or a root. Check the values that fill it (-p, --params-file, foreach items); to read elsewhere, write that folder or URL in the template itself (deps: ["/mnt/data/{params.x}"]).
    """
    if template == rendered or not templating.names_a_field(template):
        return rendered
    if "\0" in rendered:
        raise SpecError(f"the dep {rendered!r} holds a NUL byte", hint=_VALUES_HINT)
    fixed = templating.literal_prefix(template)
    fixed_dir = fixed[: fixed.rfind("/") + 1]
    if _climbs_out(rendered, fixed_dir):
        raise SpecError(f"the dep {rendered!r} climbs out of {fixed_dir or 'the project folder'} with '..': a value "
                        "may not lead a dep out of the folder its template names", hint=_DEP_HINT)
    if protocol(fixed) is None and (protocol(rendered) is not None or rendered.startswith(("/", "\\"))):
        what = "a URL" if protocol(rendered) is not None else "an absolute path"
        raise SpecError(f"the dep {rendered!r} is {what}, but its template {template!r} is a path: a value may not "
                        "give a dep a protocol or a root", hint=_DEP_HINT)
    return rendered


def _relative(rendered: str) -> str | None:
    """The normalised relative path, or None if it is absolute or climbs out.

    >>> _relative("a/b.txt"), _relative("a/../b.txt"), _relative("../x"), _relative("/etc/passwd")
    ('a/b.txt', 'b.txt', None, None)
    """
    path = rendered.replace("\\", "/")
    if path.startswith("/"):
        return None
    if "//" in path or "/." in f"/{path}" or path.endswith("/"):
        path = posixpath.normpath(path)
    if path == ".." or path.startswith("../"):
        return None
    return path


def _absolute_url(spec: PipelineSpec, url: str, proto: str) -> Location:
    if protocol(url) != proto:
        raise SpecError(f"the target {url!r} does not keep the protocol {proto}:// its template names")
    path = url.split("://", 1)[1]
    if proto == "file" and not path.startswith("/"):
        raise SpecError(f"the target {url!r} is a file:// URL without an absolute path",
                        hint="Write file:///absolute/path, or a path relative to the result location.")
    if proto != "file" and "/" not in path.strip("/"):
        raise SpecError(f"the target {url!r} names no file", hint=f"Write a full URL such as {proto}://bucket/key.json.")
    if proto == "file":
        return Location(LOCAL, os.path.normpath(url[len("file://") :]))
    for named in spec.results.values():
        if named.options and url.startswith(named.url.rstrip("/") + "/"):
            return Location(named.name, url)
    return Location(proto, url)


def default_checkpoint(spec: PipelineSpec, task: TaskSpec, serializer: str, run_id: str, suffix: str = "",
                       base: Location | None = None) -> Location:
    """Where a task with no target keeps its value: under ``.targetrun/results/RUN_ID/``
    of its result location (``base``, when the caller already knows it)."""
    name = f"{task.name}{suffix}{file_suffix(serializer)}"
    base = base or result_base(spec, task.result)
    if base.result == LOCAL:
        return Location(LOCAL, os.path.join(base.url, CHECKPOINT_DIR, run_id, name))
    return Location(base.result, f"{base.url}/{CHECKPOINT_DIR}/{run_id}/{name}")


def infer_serializer(task: TaskSpec, target: str | None) -> str:
    """The serializer reference of a task: its own key, else what the serializer classes
    in the registry claim for its target's suffix, else ``defaults:``.

    The registry is the one table (:func:`targetrun.serializers.base.for_suffix`): a
    Python task's value is written in the format its suffix names (``.parquet``,
    ``.csv``, ``.npy``...), and a suffix several formats claim (``.json``) becomes the rule
    ``by-suffix`` that picks by the value. A Python task's ``.txt`` target gets the rule
    ``text-or-json``. A compression suffix after it (``.gz``, ``.bz2``, ``.xz``, ``.zst``)
    compresses whatever format a Python task writes. A shell task's file is read back by
    the few formats that claim command output (``.txt``, ``.json``, ``.pkl``), else as
    bytes -- and as bytes when compressed, as before.

    >>> from targetrun.model import TaskSpec
    >>> infer_serializer(TaskSpec("a", run="m:f"), "x.pkl"), infer_serializer(TaskSpec("a", run="m:f"), "x.csv")
    ('pickle', 'csv')
    >>> infer_serializer(TaskSpec("a", run="m:f"), "x.json.gz"), infer_serializer(TaskSpec("a", run="m:f"), "x.dat")
    ('by-suffix+gz {"suffix":".json"}', 'pickle')
    >>> infer_serializer(TaskSpec("a", shell="echo"), "x.csv"), infer_serializer(TaskSpec("a", shell="echo"), None)
    ('bytes', 'bytes')
    >>> infer_serializer(TaskSpec("a", run="m:f", default_serializer="json"), "x.txt")
    'text-or-json'
    >>> infer_serializer(TaskSpec("a", shell="echo"), "x.txt"), infer_serializer(TaskSpec("a", run="m:f", serializer="text"), "x.txt")
    ('text', 'text')
    >>> infer_serializer(TaskSpec("a", shell="echo"), "x.json.gz"), infer_serializer(TaskSpec("a", run="m:f", serializer="csv"), "x.csv.zst")
    ('bytes', 'csv+zst')

    """
    suffix, compression = split_suffix(target or "")
    if task.shell is not None:
        if task.serializer:
            return task.serializer
        found = None if compression else for_suffix(suffix, command_output=True)
        return found or task.default_serializer or ("json" if task.result == INLINE else "bytes")
    if task.serializer:
        return with_compression(task.serializer, compression)
    found = for_suffix(suffix, command_output=False)
    if found is None:
        found = task.default_serializer or ("json" if task.result == INLINE else "pickle")
    return with_compression(found, compression)
