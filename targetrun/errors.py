"""The exception tree of targetrun; every class knows its exit code.

Exit codes (DESIGN.md §4):

* 0 -- every requested task is satisfied;
* 1 -- a task ran and failed (after its retries): an outcome in the run's summary
  (``TaskState.FAILED``), never an exception -- and never a runner error;
* 2 -- the pipeline file or the command line is wrong (:class:`SpecError`, :class:`UsageError`);
* 3 -- a backend (storage, state store, executor) could not be reached or could not
  tell (:class:`BackendError` and its children); also the exit of a command that did its
  work but could not write its own output (a full disk: ``cli._unwritten_output``);
* 4 -- an internal error: a bug in targetrun (the CLI prints the traceback);
* 128 + N -- stopped by signal N (see :mod:`targetrun.stopping`): 129 SIGHUP, 130 SIGINT
  (Ctrl-C), 131 SIGQUIT, 143 SIGTERM; 141 (SIGPIPE) when the output's reader went away.

A :class:`TargetrunError` is a *user-facing* error: the CLI prints its message as one
paragraph and exits with its code, never a traceback. Anything else escaping the engine
is a bug and is shown with its traceback.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_INTERNAL = 4  # anything that is not a TargetrunError escaped: a bug, shown with its traceback
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2, as a shell reports it
EXIT_TERMINATED = 143  # SIGTERM (how CI cancels a job): 128 + 15
EXIT_HANGUP = 129  # SIGHUP (the terminal closed, the ssh session dropped): 128 + 1
EXIT_QUIT = 131  # SIGQUIT (Ctrl-\\): 128 + 3
EXIT_OUTPUT_CLOSED = 141  # the output's reader went away (EPIPE, as SIGPIPE): 128 + 13, as git exits


# What running out of file descriptors (EMFILE, ENFILE) is and what to do, said the same
# wherever it is met: a shell command's start, a checkpoint's write, a task module's import.
NO_MORE_FILES = "this process (or the system) may open no more files"
NO_MORE_FILES_HINT = "a task that leaves files open, or a low `ulimit -n`: raise it or close them"


class TargetrunError(Exception):
    """Base class: a problem the user can act on, printed without a traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        """The one paragraph the CLI prints."""
        if not self.hint:
            return self.message
        joiner = "; " if self.hint[:1].islower() else ". "
        return f"{self.message.rstrip('.')}{joiner}{self.hint}"

    def __str__(self) -> str:
        return self.format()


class UsageError(TargetrunError):
    """The command line is wrong (unknown task name, bad --date, bad -p)."""

    exit_code = EXIT_USAGE


class SpecError(TargetrunError):
    """The pipeline file is wrong. Carries the file and line when known."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line
        self.key = key

    def format(self) -> str:
        where = []
        if self.file:
            where.append(_one_line(self.file))
        if self.line:
            where.append(f"line {self.line}")
        if self.key:
            where.append(_one_line(self.key))
        prefix = ", ".join(where)
        body = super().format()
        return f"{prefix}: {body}" if prefix else body


def _one_line(text: str) -> str:
    """A file name or key path as written in the location prefix: a YAML key may hold a
    line break or an escape character (`"a\\nb":`), and a prefix that breaks its line would
    split the one-paragraph error (and start a line the message's own escaping never saw)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)


class UnknownKeyError(SpecError):
    """A key the schema does not know; the hint is a "did you mean"."""


class TemplateError(SpecError):
    """A template names a key the context does not have, or cannot be rendered."""


class CycleError(SpecError):
    """The ``needs`` graph has a cycle; the message prints its path."""


class DuplicateTargetError(SpecError):
    """Two tasks render the same target."""


class SpecProblems(SpecError):
    """Every problem found in one Pipelinefile, in line order; each is its own paragraph
    (one line each), so a file with three mistakes is fixed in one round, not three."""

    def __init__(self, problems: list[SpecError]) -> None:
        ordered = sorted(problems, key=lambda p: (p.line or 0))
        first = ordered[0]
        super().__init__(first.message, file=first.file, line=first.line, key=first.key, hint=first.hint)
        self.problems = ordered

    def format(self) -> str:
        return "\n".join(problem.format() for problem in self.problems)

    @staticmethod
    def of(problems: list[SpecError]) -> SpecError:
        """One problem as itself, several as one :class:`SpecProblems`."""
        return problems[0] if len(problems) == 1 else SpecProblems(problems)


class BackendError(TargetrunError):
    """A backend could not be reached or could not tell: exit 3."""

    exit_code = EXIT_BACKEND


class StorageError(BackendError):
    """Storage could not answer (credentials, network, permissions) -- never "missing"."""


class CacheError(BackendError):
    """The state store could not be opened, read or written."""


class ExecutorError(BackendError):
    """The executor could not be started or lost its workers."""


class MissingExtraError(TargetrunError):
    """An optional dependency is not installed; the hint says which extra to install."""

    exit_code = EXIT_USAGE

    @classmethod
    def needs(cls, what: str, library: str, extra: str) -> MissingExtraError:
        """The one wording of "install the extra", wherever a library turns out missing.

        >>> print(MissingExtraError.needs("the dask executor", "distributed", "dask"))
        the dask executor needs the distributed library, which is not installed. Install it with: pip install 'targetrun[dask]'
        """
        return cls(f"{what} needs the {library} library, which is not installed", hint=install_hint(extra))


# Which extra installs a library (the extras in pyproject.toml): a task module's missing
# import is answered with the extra too, when it is one of these.
EXTRA_OF = {"pandas": "pandas", "pyarrow": "pandas", "polars": "polars", "numpy": "numpy", "zstandard": "zstd",
            "s3fs": "s3", "gcsfs": "gcs", "redis": "redis", "dask": "dask", "distributed": "dask"}


def install_hint(extra: str) -> str:
    """The command to paste: quoted, so no shell reads the brackets as a glob."""
    return f"Install it with: pip install 'targetrun[{extra}]'"


def check_known_tasks(names: Iterable[str], tasks: Collection[str], *, what: str = "task",
                      children: bool = False) -> None:
    """The one "unknown task" check: each of ``names`` is one of ``tasks`` (with
    ``children``, a mapped child ``name[3]`` counts as its task), else exit 2 with did-you-mean.

    >>> check_known_tasks(["fetch"], ["fetch", "clean"])
    >>> check_known_tasks(["fecth"], ["fetch", "clean"])
    Traceback (most recent call last):
    ...
    targetrun.errors.UsageError: unknown task 'fecth'; did you mean 'fetch'?
    """
    for name in names:
        if (name.split("[")[0] if children else name) not in tasks:
            parent = name.split("[")[0]
            if "[" in name and parent in tasks:  # as the output names a mapped task's child
                raise UsageError(f"unknown {what} {name!r}: {name!r} is a child of the mapped task {parent!r}, "
                                 "which is named as a whole here",
                                 hint=f"Name {parent!r} (all its children).")
            hint = did_you_mean(name, tasks) or f"Tasks: {', '.join(list(tasks)[:20]) or 'none'}."
            raise UsageError(f"unknown {what} {name!r}", hint=hint)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A "did you mean" hint for ``word`` among ``choices``, or None.

    >>> did_you_mean("rnu", ["run", "shell", "needs"])
    "did you mean 'run'?"
    >>> did_you_mean("zzz", ["run"]) is None
    True
    """
    import difflib  # only when a name is wrong

    choices = list(choices)
    matches = [c for c in choices if c.casefold() == word.casefold()][:3]  # FETCH for fetch
    matches = matches or difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if not matches:
        return None
    quoted = " or ".join(repr(m) for m in matches)
    return f"did you mean {quoted}?"
