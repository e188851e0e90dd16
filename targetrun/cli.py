"""The ``targetrun`` command line: a thin click layer over :mod:`targetrun.api`.

Exit codes: 0 every requested task satisfied; 1 a task failed; 2 the Pipelinefile or the
command line is wrong; 3 a backend (storage, state store, executor) could not be reached
or could not tell; 4 an internal error (a bug: the traceback is printed); 128 + N stopped by
signal N, as a shell reports it: 129 SIGHUP (the terminal closed), 130 Ctrl-C, 131 SIGQUIT,
141 SIGPIPE (the output's reader went away: quiet), 143 SIGTERM.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc as garbage  # `gc` is a command below
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO, cast

import click

from targetrun import __version__, api, replay, stopping
from targetrun.errors import EXIT_BACKEND, EXIT_INTERNAL, EXIT_OK, EXIT_OUTPUT_CLOSED, TargetrunError, UsageError
from targetrun.executors.base import EXECUTORS
from targetrun.redact import RedactingWriter, clipped, printable, redact, register_environment
from targetrun.registry import Registry
from targetrun.report.console import NORMAL, QUIET, VERBOSE, ConsoleReporter
from targetrun.paint import colour_enabled
from targetrun.settings import Settings, read_settings

_paused = False  # garbage collection paused by the console script until planning is done
_PLANNING = ("run", "status")  # commands that keep garbage collection paused while they plan
# click 8.2+ raises it for a group called without a command (8.1 prints the help and exits 0)
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())
EPILOG = ("Exit codes: 0 ok, 1 a task failed, 2 bad Pipelinefile or arguments (or an extra to install), "
          "3 backend unreachable or could not tell (or the output could not be written), 4 internal error (a bug); "
          "stopped: 129 SIGHUP, 130 Ctrl-C, 131 SIGQUIT, 141 SIGPIPE (output closed), 143 SIGTERM.")


def main(argv: Sequence[str] | None = None, *, collection_paused: bool = False) -> None:
    """Entry point: run the click group and turn every error into its exit code.
    ``collection_paused``: the caller paused garbage collection (targetrun/_entry.py)."""
    global _paused
    _paused = collection_paused
    stopping.install()
    stopping.escape_unencodable(sys.stdout, sys.stderr)
    try:
        code = invoke(list(sys.argv[1:] if argv is None else argv), _stream(sys.stdout), _stream(sys.stderr))
        stopping.ignore()  # the command is over: a signal now must not turn its result into a traceback
    except KeyboardInterrupt as exc:  # a signal between the command's end and here
        code = stopping.exit_code_of(exc)
    if code in stopping.STOP_CODES or _threads_left_running():
        # Everything is recorded and cleaned up; a Python task still running in a worker
        # thread cannot be stopped, and must not hold the exit (nothing it does is committed),
        # nor may a thread a task's code started and left running.
        stopping.before_exit()
        os._exit(code)
    tasks_code = sys.modules.get("targetrun.callables")  # (loaded when a task's code may have run)
    if tasks_code is not None:
        tasks_code.command_ends(code)  # a task's atexit hook calling os._exit ends it with this code
    sys.exit(code)


def _threads_left_running() -> bool:
    """Whether threads a task's code started (not daemon threads) still run now that the
    command is over -- said in one line. Python's exit waits for every such thread: a task
    that left one sleeping (a library's background thread, a pool it never shut down)
    held ``targetrun run`` for as long, after its work was done and reported."""
    left = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not threading.main_thread()]
    if left:
        # a name is the task's text (a URL with a password, an escape): masked and on one line, as an error is
        names = printable(redact(", ".join(left[:3]))) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
        stopping.flush()
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(f"targetrun: warning: {len(left)} thread{'s' if len(left) > 1 else ''} a task started "
                             f"still run{'' if len(left) > 1 else 's'} ({names}); targetrun exits without waiting\n")
    return bool(left)


def _stream(stream: TextIO | None) -> TextIO:
    """A standard stream, or -- started with it closed (``>&-``), so Python has None --
    one that discards what is written, as ``print`` does then: not a traceback."""
    return stream if stream is not None else open(os.devnull, "w", encoding="utf-8")


def invoke(argv: list[str], out: TextIO, err: TextIO) -> int:
    """Run the CLI with ``out``/``err`` as its streams; return the exit code.

    Both streams pass through :class:`~targetrun.redact.RedactingWriter`: whatever any
    layer or library prints -- error messages, reports, JSON, tracebacks -- reaches the
    user with every credential masked.
    """
    safe_out = RedactingWriter(out)
    safe_err = RedactingWriter(err, hushed=safe_out)  # once the output's reader went away, nothing more is said
    try:
        with (contextlib.redirect_stdout(safe_out), contextlib.redirect_stderr(safe_err), _library_logging(),
              _one_line_unraisable()):
            code = _invoke(argv, cast(TextIO, safe_out), cast(TextIO, safe_err))
    finally:
        safe_out.flush()
        safe_err.flush()
    return _unwritten_output(code, safe_out, safe_err)


def _unwritten_output(code: int, out: RedactingWriter, err: RedactingWriter) -> int:
    """The command's exit code once what it printed could not all be written (a full disk
    under ``> file``; the rest was dropped and the work went on): each such stream named
    in one line on stderr -- if stderr itself can take it -- and exit 3, where the command
    would have exited 0; another outcome keeps its own code."""
    failed = [(name, writer.failed) for name, writer in (("standard output", out), ("standard error", err))
              if writer.failed is not None]
    for name, exc in failed:
        err.write(f"targetrun: error: could not write to {name}: {exc.strerror or exc}; the rest of what the command "
                  "printed there was dropped (the command did not stop for it). Free space on that device (or raise "
                  "`ulimit -f`), or send the output elsewhere.\n")
    err.flush()
    return EXIT_BACKEND if failed and code == EXIT_OK else code


class _OneLineHandler(logging.Handler):
    """A library's warning or error as one line on the current stderr (a task's own while
    it runs), its exception as ``Type: message`` on the same line: never a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            sys.stderr.write(f"targetrun: {record.levelname.lower()}: {record.name}: {printable(' '.join(text.split()))}\n")
        except Exception:  # a message that cannot be formatted is not worth a failed command
            self.handleError(record)


@contextlib.contextmanager
def _library_logging() -> Iterator[None]:
    """While a command runs, a library's log record that no handler takes (gcsfs: "_request
    out of retries on exception", with the exception attached) is one line -- where Python's
    last-resort handler prints its traceback. Only the last resort is replaced: a program or
    a task module that configures logging (``basicConfig``) keeps its own choice."""
    before = logging.lastResort
    logging.lastResort = _OneLineHandler()
    try:
        yield
    finally:
        logging.lastResort = before


@contextlib.contextmanager
def _one_line_unraisable() -> Iterator[None]:
    """While a command runs, an exception a finalizer or callback raised and Python drops
    (fsspec's ``FTPFileSystem.__del__`` after a failed ``__init__``) is one line on the
    current stderr -- where Python prints "Exception ignored in ..." and a traceback. A
    stop dropped there still goes to the hook before (:mod:`targetrun.stopping` delivers
    it again)."""
    before = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) or unraisable.exc_value is None:
            before(unraisable)
            return
        try:
            where = unraisable.err_msg or "Exception ignored in"
            where = where.replace("Exception ignored", "ignored an error", 1)
            what = f"{type(unraisable.exc_value).__name__}: {unraisable.exc_value}"
            subject = f" {unraisable.object!r}" if unraisable.object is not None else ""
            sys.stderr.write(f"targetrun: warning: {where}{subject}: {printable(' '.join(what.split()))}\n")
        except Exception:  # a finalizer's error that cannot even be shown is not worth more
            pass

    sys.unraisablehook = hook
    try:
        yield
    finally:
        if sys.unraisablehook is hook:
            sys.unraisablehook = before


def _invoke(argv: list[str], out: TextIO, err: TextIO) -> int:
    try:
        _clock()  # a bad TARGETRUN_NOW is a usage error of every command, before anything is read
        _utf8_only(argv)
        result = cli.main(args=argv, prog_name="targetrun", standalone_mode=False,
                          obj={"out": out, "err": err, "argv": argv})
    except TargetrunError as exc:
        _print_error(exc.format(), err)
        if "--json" in argv and argv[:1] in (["run"], ["status"]):  # CI parses stdout: it gets a document too
            out.write(json.dumps({"ok": False, "exit_code": exc.exit_code, "error": exc.format(), "runs": []},
                                 indent=2) + "\n")
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except _NO_ARGS_IS_HELP as exc:  # `targetrun` alone: the help itself, as click shows it
        err.write(exc.format_message() + "\n")
        return int(exc.exit_code)
    except click.ClickException as exc:  # click's own usage errors, in the same one-paragraph form
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "targetrun"
        _print_error(f"{exc.format_message()} (see `{command} --help`)", err)
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # click turns Ctrl-C into Abort
        code = stopping.exit_code_of(exc)
        if code != EXIT_OUTPUT_CLOSED:  # (a reader that went away is told nothing, as git does)
            err.write(f"targetrun: interrupted ({stopping.name_of(code)})\n")
        return code
    except Exception:
        import traceback  # only a bug pays for it

        err.write("targetrun: internal error (a bug in targetrun; please report it with this traceback):\n")
        err.write(traceback.format_exc())
        return EXIT_INTERNAL
    return int(result or 0)


def _utf8_only(argv: list[str]) -> None:
    """Refuse an argument holding bytes that are not UTF-8 (Python keeps them as lone
    surrogates), or a NUL byte (only the in-process CLI can be given one): no name, value,
    path or message of targetrun can carry one, and every later layer would stumble on it
    in its own way."""
    for position, arg in enumerate(argv, 1):
        if "\0" in arg:
            raise UsageError(f"argument {position} ({ascii(clipped(arg, 80))}) holds a NUL byte",
                             hint="No name, value or path can hold one.")
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:
                shown = repr(arg.encode("utf-8", "surrogateescape"))[1:]
            except UnicodeEncodeError:
                shown = ascii(arg)
            raise UsageError(f"argument {position} ({shown}) is not UTF-8 text",
                             hint="Write names, values and paths as UTF-8.") from None


def _print_error(message: str, err: TextIO) -> None:
    """One line per problem (a file with several lists them all); a message quoting a
    user's value cannot start a line of its own, nor show a credential."""
    for line in message.splitlines() or [""]:
        err.write(f"targetrun: error: {printable(redact(line))}\n")


# -- shared options ----------------------------------------------------------------


class RegistryChoice(click.Choice[str]):
    """A choice among a registry's names, plugins included (``--executor``): the registry
    is the one list. Entry points are read only when the choices are shown (``--help``, an
    error) or a name is not a built-in, so a plain run does not pay for reading them."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        super().__init__(registry.builtins())

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._registry.names(plugins=True))

    @choices.setter
    def choices(self, value: object) -> None:  # click.Choice.__init__ assigns it; the registry decides
        pass

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value in self._registry.builtins():
            return str(value)
        return super().convert(value, param, ctx)


def _file_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-f", "--file", "path", type=click.Path(dir_okay=True), default=None,
                        help="The Pipelinefile (default: Pipelinefile.yaml here or in a parent folder).")(f)


def _context_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--date", "dates", multiple=True, metavar="YYYY-MM-DD[..YYYY-MM-DD]",
                     help="Run date for {date}, {today}, ... (default: now, UTC): YYYY-MM-DD, or any ISO 8601 date "
                          "and time Python reads (2026-11-01T06:00+02:00; UTC without an offset). A range A..B, or the option "
                          "given several times, runs once per date (a backfill; run and status only).")(f)
    f = click.option("--params-file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="A YAML or JSON file of parameter values.")(f)
    f = click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                     help="Override a parameter; VALUE is read as YAML (3, true, [a, b]). Repeatable.")(f)
    return _file_option(f)


def _parse_params(pairs: Sequence[str], params_file: str | None) -> dict[str, object]:
    if not pairs and not params_file:
        return {}
    from targetrun.pipelinefile.params import load_params_file, parse_param  # imports yaml

    params: dict[str, object] = load_params_file(params_file) if params_file else {}
    for pair in pairs:
        name, value = parse_param(pair)
        params[name] = value
    return params


MAX_DATES = 10_000


def _parse_dates(values: Sequence[str]) -> list[dt.datetime | None]:
    """``--date`` values: single dates and inclusive ranges ``A..B``, in order, once each.

    >>> [f"{d:%m-%d}" for d in _parse_dates(["2026-11-30..2026-12-02", "2026-11-30"])]
    ['11-30', '12-01', '12-02']
    """
    if not values:
        return [None]
    found: dict[dt.datetime, None] = {}
    for text in values:
        first, dots, last = text.partition("..")
        start = _parse_date(first)
        end = _parse_date(last) if dots else start
        assert start is not None and end is not None
        if end < start:
            raise UsageError(f"--date {text!r} ends before it starts", hint="Write the earlier date first: A..B.")
        days = (end.date() - start.date()).days + 1
        if len(found) + days > MAX_DATES:
            raise UsageError(f"--date {text!r} asks for more than {MAX_DATES:,} runs")
        found.update((start + dt.timedelta(days=i), None) for i in range(days))
    return list(found)


def _one_date(values: Sequence[str]) -> dt.datetime | None:
    dates = _parse_dates(values)
    if len(dates) > 1:
        raise UsageError("this command takes one --date")
    return dates[0]


def _parse_date(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--date {text!r} is not a date", hint="Write it as YYYY-MM-DD, e.g. --date 2026-11-01.") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _settings(ctx: click.Context | None = None) -> Settings:
    """The TARGETRUN_* settings the group read once, before the command (exit 2 if bad)."""
    context = ctx or click.get_current_context(silent=True)
    found = context.find_object(dict) if context is not None else None
    if found is not None and isinstance(found.get("settings"), Settings):
        return found["settings"]  # type: ignore[no-any-return]
    return read_settings()


def _clock() -> api.Clock | None:
    """``TARGETRUN_NOW`` (epoch seconds or ISO time) pretends the current time is fixed:
    for reproducible status checks and for tests of cache expiry without sleeping."""
    fixed = _settings().now
    return None if fixed is None else api.Clock(now=lambda: fixed)


def _now() -> float:
    clock = _clock()
    return clock.now() if clock else dt.datetime.now(dt.timezone.utc).timestamp()


def _out(ctx: click.Context) -> TextIO:
    return ctx.obj["out"] if ctx.obj else sys.stdout


# -- commands ----------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(__version__, prog_name="targetrun")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Run a Pipelinefile's tasks, skipping every task whose target already exists.

    \b
    targetrun run              run what the pipeline's final tasks need
    targetrun run TASK         run what TASK needs
    targetrun status           what exists, what would run and why
    targetrun graph            the task graph (text, dot, mermaid or svg)
    targetrun report           an HTML report of the last run (graph, timeline, table)

    \b
    Environment (a bad value is exit 2 naming it):
    TARGETRUN_TRUST=1              as --trust
    TARGETRUN_SCHEDULER            as --scheduler
    TARGETRUN_SCHEDULER_TIMEOUT    seconds to reach a Dask scheduler (default 10)
    TARGETRUN_LOCK_LEASE           lease of a task's lock (default 60s)
    TARGETRUN_STORE_TIMEOUT        seconds to wait for a busy SQLite store (default 30)
    TARGETRUN_NOW                  a fixed current time (epoch seconds or ISO), for checks
    """
    # Every TARGETRUN_* variable is read and checked here, once: a bad value is exit 2
    # naming it, before the command touches anything.
    ctx.ensure_object(dict)["settings"] = read_settings()
    # A task (or a library) may print a credential of this environment alone: mask them all.
    # The API registers them too (api.load, api.backends); this is for what click itself
    # says about an argument before any of the API is called (`--jobs $TOKEN`).
    register_environment(os.environ)
    if ctx.invoked_subcommand not in _PLANNING:  # only these resume collection themselves
        collect_garbage_again()


@cli.command(epilog=EPILOG)
@click.argument("tasks", nargs=-1)
@_context_options
@click.option("--force", "force", multiple=True, metavar="TASK",
              help="Rerun TASK even if its target exists, and every task from it up to the requested tasks. "
                   "Repeatable.")
@click.option("--force-all", is_flag=True, help="Rerun every requested task and everything it needs.")
@click.option("--dry-run", "-n", is_flag=True, help="Print each decision and its reason; run nothing.")
@click.option("--keep-going", "-k", is_flag=True, help="After a failure, finish the branches that do not depend on it.")
@click.option("--rebuild-stale", is_flag=True,
              help="Rebuild every target in scope whose code, parameters, inputs or deps changed since it was made.")
@click.option("--resume", "resume", is_flag=False, flag_value="latest", default=None, metavar="[RUN_ID]",
              help="Reuse the checkpoints of a failed run (default: the latest one).")
@click.option("-j", "--jobs", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Tasks to run at once.")
@click.option("--executor", type=RegistryChoice(EXECUTORS), default="inline", show_default=True,
              help="Where tasks run: inline (one task at a time), threads when -j is above 1; threads or "
                   "processes pools, dask (a local Dask cluster with -j workers; targetrun[dask]), or an "
                   "installed plugin's executor.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run on an existing Dask cluster (also TARGETRUN_SCHEDULER or `scheduler:`); "
                   "results must then be on shared storage.")
@click.option("--verify", is_flag=True,
              help="Check every existing checkpoint against its record (size, sha256), not only those read.")
@click.option("--trust", is_flag=True, default=None,
              help="Read pickle checkpoints that no run recorded in this state store (they can run code). "
                   "Also TARGETRUN_TRUST=1.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document summarising every task.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print only failures and the final line. A repeated no-op is then answered from the "
                   "last one's certificate (.targetrun/replay/), without loading the Pipelinefile.")
@click.option("-v", "--verbose", is_flag=True, help="Print each task start and full tracebacks.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the HTML report of this run to FILE at its end (also when it fails or is interrupted).")
@click.pass_context
def run(ctx: click.Context, tasks: tuple[str, ...], path: str | None, params: tuple[str, ...], params_file: str | None,
        dates: tuple[str, ...], force: tuple[str, ...], force_all: bool, dry_run: bool, keep_going: bool,
        rebuild_stale: bool, resume: str | None, jobs: int, executor: str, scheduler: str | None, verify: bool, trust: bool | None,
        as_json: bool, quiet: bool, verbose: bool, report_path: str | None) -> int:
    """Run TASKS (default: the tasks nothing else needs) and what they need.

    A task whose target exists is skipped and what it needs is not looked at. A task
    that runs gets the values of its needs, and its output is written atomically to its
    target and recorded in the state store.
    """
    if quiet and verbose:
        raise UsageError("-q/--quiet and -v/--verbose contradict each other", hint="Give one of them.")
    out = _out(ctx)
    # taken before the file is read: the certificate a no-op leaves is for what was read
    ticket = replay.Ticket.take(ctx.obj["argv"]) if ctx.obj and "argv" in ctx.obj else None
    if ticket is not None:
        err = ctx.obj["err"]
        ticket.spoke = lambda: bool(getattr(err, "written", True))  # a warning: the replay would not repeat it
    spec = _load(path)
    when = _parse_dates(dates)
    if resume is not None and len(when) > 1:
        raise UsageError("--resume takes one run; it cannot be combined with several dates")
    if resume == "latest":
        resume = _latest_failed_run(spec)
    verbosity = QUIET if quiet else VERBOSE if verbose else NORMAL
    from targetrun.events import Broadcast
    from targetrun.report.logs import LogFileReporter

    if report_path is not None and dry_run:
        raise UsageError("--report shows what a run did; a dry run does nothing", hint="Drop --dry-run or --report.")
    started = _RunIds()
    reporter = Broadcast(_CollectorBack(), *_console_reporters(out, as_json, verbosity, len(when) > 1),
                         LogFileReporter(spec.root), started)
    try:
        summaries = api.run_dates(spec, tasks, dates=when, force=force, force_all=force_all, dry_run=dry_run,
                                  keep_going=keep_going, resume=resume, verify=verify,
                                  trust=trust or _settings(ctx).trust, params=_parse_params(params, params_file),
                                  executor=executor, jobs=jobs,
                                  scheduler=scheduler,  # else TARGETRUN_SCHEDULER: the API reads it, and names it in errors
                                  reporter=reporter, clock=_clock(), lock_lease=_settings(ctx).lock_lease,
                                  scheduler_timeout=_settings(ctx).scheduler_timeout,
                                  rebuild_stale=rebuild_stale, ticket=ticket)
    finally:
        if report_path is not None and started.run_ids:
            _report_after_run(spec, report_path, started.run_ids, ctx.obj["err"] if ctx.obj else sys.stderr)
    code = api.exit_code(summaries)
    if as_json:
        from targetrun.report.json import summaries_to_dict

        out.write(json.dumps(summaries_to_dict(summaries, code, api.exit_code), indent=2) + "\n")
    return code


def _load(path: str | None) -> Any:
    """The validated Pipelinefile; its objects then leave the garbage collector's sight.

    They live until the command ends, and a pipeline of 10,000 tasks is ~100,000
    objects that every full collection during planning would walk again (~8 % of a
    no-op run's CPU). ``gc.freeze`` keeps them out of later collections -- only in the
    console script's own process: a program that calls the CLI in-process keeps its heap.
    """
    spec = api.load(path)
    if _paused:
        garbage.freeze()
    return spec


def collect_garbage_again() -> None:
    """End the pause the console script began (targetrun/_entry.py): what was made so far
    lives on (the plan), so it is frozen out of every later collection, and collection
    resumes before any task's code runs. A no-op where nothing paused it (the API, tests)."""
    global _paused
    if _paused:
        _paused = False
        garbage.freeze()
        garbage.enable()


class _CollectorBack:
    """Resumes garbage collection when the first run starts: after planning, before any
    task runs (RunStarted precedes every submission, dry runs included)."""

    def wants(self, kind: type) -> bool:
        from targetrun.events import RunStarted

        return kind is RunStarted

    def handle(self, event: Any) -> None:
        collect_garbage_again()


class _RunIds:
    """Observes which runs this command started (one per date), for ``--report``."""

    def __init__(self) -> None:
        from targetrun.events import RunStarted

        self.run_ids: list[str] = []
        self._started = RunStarted  # imported once, not per event (a no-op run sends 10,000)

    def wants(self, kind: type) -> bool:
        return kind is self._started

    def handle(self, event: Any) -> None:
        if isinstance(event, self._started) and not event.dry_run:
            self.run_ids.append(event.run_id)


def _report_after_run(spec: Any, path: str, run_ids: list[str], err: TextIO) -> None:
    """Write the report of the runs just made; a report that cannot be written is said,
    and never replaces the run's own outcome or exit code."""
    try:
        written = write_report(spec, path, run_ids)
        err.write(f"targetrun: report written to {printable(written)}\n")
    except TargetrunError as exc:
        _print_error(f"the report was not written: {exc.format()}", err)


DEFAULT_REPORT = "targetrun-report.html"


def write_report(spec: Any, path: str, run_ids: Sequence[str] = (), last: int = api.DEFAULT_HISTORY) -> str:
    return api.write_report(spec, path, run_ids, last, clock=_clock(), lock_lease=_settings().lock_lease)


def _console_reporters(out: TextIO, as_json: bool, verbosity: int, dates: bool) -> list[Any]:
    """A live view on a terminal; one plain line per task event otherwise (CI); none with --json."""
    if as_json:
        return []
    if getattr(out, "isatty", lambda: False)() and verbosity == NORMAL:
        from rich.console import Console

        from targetrun.report.live import LiveReporter

        return [LiveReporter(Console(file=out))]
    return [ConsoleReporter(out, verbosity=verbosity, colour=colour_enabled(out), dates=dates)]


def _latest_failed_run(spec: Any) -> str:
    return api.latest_failed_run(spec, clock=_clock(), lock_lease=_settings().lock_lease)


@cli.command(epilog=EPILOG)
@click.argument("tasks", nargs=-1)
@_context_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--check", is_flag=True, help="Exit 1 if any task would run (for CI).")
@click.option("--verify", is_flag=True, help="Check every existing checkpoint against its record (size, sha256).")
@click.option("--trust", is_flag=True, default=None,
              help="Read pickles that no run recorded in this state store. Also TARGETRUN_TRUST=1.")
@click.pass_context
def status(ctx: click.Context, tasks: tuple[str, ...], path: str | None, params: tuple[str, ...],
           params_file: str | None, dates: tuple[str, ...], as_json: bool, check: bool, verify: bool,
           trust: bool | None) -> int:
    """Show each task's target, whether it exists, and what would run and why."""
    from targetrun.report.status import render_status, statuses_to_dict

    out = _out(ctx)
    # taken before the file is read, as run's (targetrun/status_replay.py): None unless plain text may be certified
    ticket = _status_ticket(ctx, out)
    witness = None
    if ticket is not None:
        from targetrun.certify import StatusWitness

        witness = StatusWitness()
    spec = _load(path)
    values = _parse_params(params, params_file)
    asked = _parse_dates(dates)
    would_run = False

    def reports() -> Iterator[Any]:
        # Each date's report is made, used and dropped before the next (a status of 300 dates
        # held every date's rows with their planned tasks until the end: 2 GB).
        nonlocal would_run
        for when in asked:
            report = api.status(spec, tasks, date=when, params=values, clock=_clock(), verify=verify,
                                trust=trust or _settings(ctx).trust, lock_lease=_settings(ctx).lock_lease,
                                witness=witness)
            collect_garbage_again()  # planned and looked at (the first date: collection was paused)
            would_run = would_run or bool(report.would_run)
            yield report

    if as_json:
        out.write(json.dumps(statuses_to_dict(reports()), indent=2) + "\n")
    elif ticket is not None and witness is not None and len(asked) == 1:
        _render_and_certify(next(reports()), out, ticket, witness)
    else:
        for report in reports():  # each date's table printed as it is made
            render_status(report, out, colour=colour_enabled(out), now=_now())
    return 1 if check and would_run else 0


def _status_ticket(ctx: click.Context, out: TextIO) -> replay.Ticket | None:
    """The ticket a plain-text status certifies its table with (see targetrun/status_replay.py)."""
    if not ctx.obj or "argv" not in ctx.obj or colour_enabled(out):
        return None
    from targetrun import status_replay

    found = status_replay.ticket(ctx.obj["argv"])
    if found is not None:
        err = ctx.obj["err"]
        found.spoke = lambda: bool(getattr(err, "written", True))  # a warning: the replay would not repeat it
    return found


def _render_and_certify(report: Any, out: TextIO, ticket: replay.Ticket, witness: Any) -> None:
    """Print the table, then leave a certificate for the next identical status when it earns one."""
    import io

    from targetrun.certify import certify_status
    from targetrun.report.status import render_status

    now = _now()
    buffer = io.StringIO()
    render_status(report, buffer, colour=False, now=now)
    text = buffer.getvalue()
    cut = text.rfind("\n", 0, len(text) - 1) + 1
    out.write(text[:cut])  # the table and the final line in two writes, as render_status writes them: the output
    out.write(text[cut:])  # stream redacts each write whole, and only the final line holds a ":" to look at
    out.flush()
    certify_status(ticket, witness, report, text, now)


@cli.command(epilog=EPILOG)
@click.argument("tasks", nargs=-1)
@_file_option
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "mermaid", "svg"]), default="text", show_default=True,
              help="text (a tree), dot (Graphviz), mermaid (a flowchart) or svg (laid out as in the report).")
@click.pass_context
def graph(ctx: click.Context, tasks: tuple[str, ...], path: str | None, fmt: str) -> int:
    """Print the task graph: a text tree, Graphviz dot, a Mermaid flowchart, or SVG (laid out left to right)."""
    from targetrun.report.graph import render_graph

    spec = _load(path)
    _out(ctx).write(render_graph(spec, tasks, fmt))
    return 0


@cli.command(epilog=EPILOG)
@click.argument("task")
@_context_options
@click.option("--location", is_flag=True, help="Print where the value is stored instead of the value.")
@click.option("--trust", is_flag=True, default=None,
              help="Read a pickle that no run recorded in this state store. Also TARGETRUN_TRUST=1.")
@click.pass_context
def show(ctx: click.Context, task: str, path: str | None, params: tuple[str, ...], params_file: str | None,
         dates: tuple[str, ...], location: bool, trust: bool | None) -> int:
    """Print TASK's checkpointed value (or, with --location, where it is stored); TASK[N]: a mapped task's child."""
    from targetrun.report.show import render_value

    spec = _load(path)
    shown = api.show(spec, task, date=_one_date(dates), params=_parse_params(params, params_file),
                     location_only=location, trust=trust or _settings(ctx).trust, clock=_clock(),
                     lock_lease=_settings(ctx).lock_lease)
    if location:
        _out(ctx).write(printable(shown.location) + "\n")
    else:
        render_value(shown.value, _out(ctx))
    return 0


@cli.command(epilog=EPILOG)
@_file_option
@click.option("-n", "--limit", type=click.IntRange(1, 10000), default=20, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_context
def history(ctx: click.Context, path: str | None, limit: int, as_json: bool) -> int:
    """List recent runs of this pipeline with their outcome (newest first)."""
    from targetrun.report.records import history_to_list, render_history

    spec = _load(path)
    runs = api.history(spec, limit, clock=_clock(), lock_lease=_settings(ctx).lock_lease)
    if as_json:
        _out(ctx).write(json.dumps(history_to_list(runs), indent=2) + "\n")
    else:
        render_history(runs, _out(ctx), _now())
    return 0


@cli.command(epilog=EPILOG)
@click.argument("task")
@_file_option
@click.option("--run", "run_id", default=None, metavar="RUN_ID", help="That run's log (default: the latest run of TASK).")
@click.option("--all-attempts", is_flag=True, help="Every attempt of that run, not only the latest.")
@click.option("--raw", is_flag=True,
              help="Print the log as captured, escape sequences and carriage returns included (for a file or a pager).")
@click.pass_context
def logs(ctx: click.Context, task: str, path: str | None, run_id: str | None, all_attempts: bool, raw: bool) -> int:
    """Print what TASK printed (stdout and stderr, subprocesses included) in its latest attempt.

    Control characters other than newline and tab (escape sequences, carriage returns) are
    shown as escapes such as \\x1b, so a task's output cannot act on your terminal; --raw
    prints them as they are. Logs are kept in .targetrun/logs/RUN_ID/."""
    from targetrun.redact import printable, terminal_text
    from targetrun.report.logs import find_log

    spec = _load(path)
    api.check_task(spec, task, children=True)
    if run_id is not None and (not run_id or run_id != os.path.basename(run_id) or run_id in (".", "..")):
        raise UsageError(f"--run {run_id!r} is not a run id", hint="See `targetrun history` for run ids.")
    last_attempt = None
    if run_id is None:
        runs, last_attempt = api.log_runs(spec, task)
    else:
        runs = [run_id]
    found = find_log(spec.root, task, runs, last_attempt=last_attempt, every_attempt=all_attempts)
    if found is None:
        raise UsageError(f"no log of {task!r}" + (f" in run {run_id}" if run_id else ""),
                         hint="A task that printed nothing has no log; see `targetrun history` for run ids.")
    shown = printable(os.path.relpath(found.path, spec.root))
    if not found.text:
        _out(ctx).write(f"# {shown}: attempt {found.attempt} printed nothing\n")
    else:
        _out(ctx).write(f"# {shown}\n{found.text if raw else terminal_text(found.text)}")
    return 0


@cli.command(epilog=EPILOG)
@_file_option
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=DEFAULT_REPORT, show_default=True,
              metavar="FILE", help="Where to write the HTML file.")
@click.option("--run", "run_ids", multiple=True, metavar="RUN_ID",
              help="The run to show (repeatable; default: the latest run, with the other dates of its backfill).")
@click.option("--last", type=click.IntRange(1, 1000), default=api.DEFAULT_HISTORY, show_default=True,
              help="How many recent runs the history strip shows.")
@click.pass_context
def report(ctx: click.Context, path: str | None, output: str, run_ids: tuple[str, ...], last: int) -> int:
    """Write one self-contained HTML file showing a run: its graph coloured by state, a
    timeline of the tasks that ran, a table of every task and the recent runs.

    It reads the state store and the task logs only: nothing runs, no checkpoint is read.
    The file needs no network (no external URL) and opens in any browser; keep it as a
    CI artifact. `targetrun run --report FILE` writes it at the end of a run.
    """
    spec = _load(path)
    written = write_report(spec, output, run_ids, last)
    size = os.path.getsize(written)
    _out(ctx).write(f"wrote {printable(written)} ({size / 1024:.0f} KB)\n")
    return 0


@cli.group(epilog=EPILOG)
def cache() -> None:
    """List or clear cached outputs (tasks with cache_for)."""


@cache.command("list", epilog=EPILOG)
@_file_option
@click.option("--all", "every", is_flag=True, help="Entries of every pipeline sharing this store.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.pass_context
def cache_list(ctx: click.Context, path: str | None, every: bool, as_json: bool) -> int:
    """Each entry: key, task, expiry, location and size."""
    from targetrun.report.records import cache_to_list, render_cache

    spec = _load(path)
    entries = api.cache_entries(spec, every=every)
    if as_json:
        _out(ctx).write(json.dumps(cache_to_list(entries, _now()), indent=2) + "\n")
    else:
        render_cache(entries, _out(ctx), _now())
    return 0


@cache.command("clear", epilog=EPILOG)
@click.argument("key", required=False)
@_file_option
@click.option("--task", "task", default=None, help="Only this task's entries.")
@click.option("--expired", is_flag=True, help="Only entries that have expired.")
@click.option("--all", "every", is_flag=True, help="Entries of every pipeline sharing this store.")
@click.pass_context
def cache_clear(ctx: click.Context, key: str | None, path: str | None, task: str | None, expired: bool,
                every: bool) -> int:
    """Delete cache entries: all of this pipeline's, those under KEY, of --task, or --expired.

    Targets are not touched (see `targetrun invalidate`)."""
    spec = _load(path)
    count = api.clear_cache(spec, key=key, task=task, every=every, expired=expired, clock=_clock())
    _out(ctx).write(f"cleared {count} cache entr{'y' if count == 1 else 'ies'}\n")
    return 0


@cli.command(epilog=EPILOG)
@click.argument("task")
@_context_options
@click.pass_context
def invalidate(ctx: click.Context, task: str, path: str | None, params: tuple[str, ...], params_file: str | None,
               dates: tuple[str, ...]) -> int:
    """Remove TASK's target and its cache entries, so the next run computes it again."""
    spec = _load(path)
    removed = api.invalidate(spec, task, date=_one_date(dates), params=_parse_params(params, params_file))
    _out(ctx).write("\n".join(f"removed {printable(what)}" for what in removed) + "\n" if removed else "nothing to remove\n")
    return 0


@cli.command(epilog=EPILOG)
@_file_option
@click.option("--keep-runs", type=click.IntRange(0), default=None, metavar="N",
              help="Keep the newest N runs (default 20 when --older-than is not given either).")
@click.option("--older-than", default=None, metavar="DURATION",
              help="Keep runs started within DURATION (30d, 12h, ...); with --keep-runs, a run goes only when "
                   "neither keeps it.")
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@click.pass_context
def gc(ctx: click.Context, path: str | None, keep_runs: int | None, older_than: str | None, dry_run: bool,
       as_json: bool) -> int:
    """Prune old runs: their records, logs and values of tasks without a target, and stale spec caches.

    Targets are never touched, nor a value a cache entry or a kept run still points to."""
    from targetrun.durations import parse_duration
    from targetrun.report.records import gc_to_dict, render_gc

    seconds = None
    if older_than is not None:
        try:
            seconds = parse_duration(older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}", hint="Write it as 30d, 12h, 90m or seconds.") from None
    spec = _load(path)
    found = api.gc(spec, keep_runs=keep_runs, older_than=seconds, dry_run=dry_run, clock=_clock(),
                   lock_lease=_settings(ctx).lock_lease)
    if as_json:
        _out(ctx).write(json.dumps(gc_to_dict(found, spec.root, dry_run), indent=2) + "\n")
    else:
        render_gc(found, spec.root, dry_run, _out(ctx))
    return 0


@cli.command(epilog=EPILOG)
@_file_option
@click.option("--json", "as_json", is_flag=True, help="Print the result (ok, or every problem) as JSON.")
@click.pass_context
def validate(ctx: click.Context, path: str | None, as_json: bool) -> int:
    """Check the Pipelinefile without running anything: keys, types, needs, cycles,
    templates, and each task's function (imported, not called) against its args and needs.
    Every problem is reported, one line each."""
    where, count, problems = api.validate(path)
    if as_json:
        from targetrun.report.json import SCHEMA_VERSION

        doc = {"schema": SCHEMA_VERSION, "command": "validate", "file": where, "ok": not problems, "tasks": count,
               "problems": [{"file": p.file, "line": p.line, "key": p.key, "message": p.message, "hint": p.hint,
                             "text": p.format()} for p in problems]}
        _out(ctx).write(json.dumps(doc, indent=2) + "\n")
    elif not problems:
        _out(ctx).write(f"{printable(where)}: ok, {count} task{'s' if count != 1 else ''}\n")
    else:
        for problem in problems:
            _print_error(problem.format(), ctx.obj["err"] if ctx.obj else sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    main()
