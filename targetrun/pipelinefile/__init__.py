"""Pipelinefile loading: find the file, load and validate it, cache the result.

Validating a 10,000-task file takes a few hundred milliseconds (YAML parsing mostly), more
than a whole no-op run may cost. The validated :class:`PipelineSpec` is therefore cached
under ``.targetrun/pipelinefile/`` keyed by a hash of the file's bytes, its path, the targetrun
version and the model module: any edit makes a new key, so a stale spec is never used.
yaml is imported only on a cache miss. The cache file is JSON, not a pickle
(:mod:`targetrun.pipelinefile.cachefile`): a file planted there cannot run code when it is read,
and one that is not a spec is a miss. Nor can one decide what runs: a cache file is used
only if it carries this user's HMAC of its bytes (:mod:`targetrun.pipelinefile.signing`),
so a command rewritten in it, or a file planted or restored from elsewhere, is a miss.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from typing import TYPE_CHECKING

from targetrun import __version__, locate, redact
from targetrun.errors import SpecError, UsageError
from targetrun import model
from targetrun.model import PipelineSpec, TaskSpec
from targetrun.pipelinefile import cachefile, signing
from targetrun.regularfile import NotRegularFile, kind_of, open_regular, read_named

if TYPE_CHECKING:
    from targetrun.pipelinefile.yamlnodes import Document



def _model_fingerprint() -> str:
    """The version and the size and age of the model, of every module that validates a
    file and of the cache's own format: a cached spec written for another shape of the
    model classes or in another layout, or checked by other rules (a development checkout,
    an upgrade), is never reused."""
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(here)
    checkers = [model.__file__] + [os.path.join(here, name)
                                   for name in ("schema.py", "yamlnodes.py", "values.py", "cachefile.py")]
    checkers += [os.path.join(package, name)
                 for name in ("templating.py", "dateformat.py", "shellcheck.py", "resolve.py", "durations.py")]
    parts = [__version__]
    for path in checkers:
        try:
            stat = os.stat(path)
        except OSError:  # an installed wheel without one of them: the version still counts
            continue
        parts.append(f"{stat.st_size}/{stat.st_mtime_ns}")
    return "/".join(parts)


_MODEL = _model_fingerprint()
SPEC_CACHE_DIR = os.path.join(".targetrun", "spec")
MAX_FILE_BYTES = locate.MAX_FILE_BYTES


def load_pipeline(path: str, *, use_cache: bool = True) -> PipelineSpec:
    """Load and validate a Pipelinefile (raises :class:`SpecError` with file and line)."""
    data = _read(path)
    cache_file = spec_cache_file(path, data)
    if use_cache:
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    spec = parse_pipeline(data, path)
    if use_cache and not redact.register_spec(spec) and not _quotes_credentials(data):
        _write_cache(cache_file, spec)  # a file holding credentials is not copied
    return spec


def _quotes_credentials(data: bytes) -> bool:
    """Whether the file holds anything every output would mask (one rule:
    :func:`targetrun.redact.redact`) -- beyond the options :func:`~targetrun.redact.register_spec`
    looks at, a password in a URL of a shell command (``psql postgres://app:pw@db``), a
    ``password=`` in a template, a value of ``args``: such a file is not copied into
    ``.targetrun/spec/`` (often kept as a CI artifact, with the logs)."""
    text = data.decode("utf-8", "replace")
    return redact.redact(text) != text


def spec_cache_file(path: str, data: bytes | None = None) -> str:
    """Where the validated form of the Pipelinefile at ``path`` (holding ``data``, read
    when not given) is cached; every other file in that folder is stale (``targetrun gc``)."""
    data = _read(path) if data is None else data
    key = hashlib.sha256(f"{_MODEL}\0{os.path.abspath(path)}\0".encode() + data).hexdigest()[:32]
    return os.path.join(os.path.dirname(os.path.abspath(path)), SPEC_CACHE_DIR, f"{key}.json")


def parse_pipeline(data: bytes, path: str) -> PipelineSpec:
    from targetrun.pipelinefile.schema import build_pipeline

    return build_pipeline(_document(data, path), path)


def check_file(path: str) -> tuple[str, list[SpecError], dict[str, TaskSpec]]:
    """For ``validate``: the file's name as messages show it, every problem of the file
    (not only the first), and the tasks that are well formed."""
    from targetrun.pipelinefile.schema import check_pipeline

    display = _display(path)
    try:
        doc = _document(_read(path), path)
    except SpecError as exc:
        return display, [exc], {}
    problems, tasks = check_pipeline(doc, path)
    return display, problems, tasks


def _display(path: str) -> str:
    return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path


def _document(data: bytes, path: str) -> Document:
    from targetrun.pipelinefile.yamlnodes import load_document

    display = _display(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", file=display, line=line,
                        hint="Save it as UTF-8.") from None
    if "\0" in text:
        raise SpecError("the file contains a NUL byte; it is not a text file", file=display)
    return load_document(text, display)


def _read(path: str) -> bytes:
    """The Pipelinefile's bytes: a regular file, or a stream the user named (``-f
    <(generate)``) read up to the limit; never waited on without end (see ``read_named``)."""
    try:
        return read_named(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise UsageError(f"no such Pipelinefile: {path}", hint="Check the -f path.") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a Pipelinefile", hint="Point -f at the file.") from None
    except NotRegularFile as exc:
        raise UsageError(f"{path} is {kind_of(exc.mode)}, not a Pipelinefile", hint="Point -f at the file.") from None
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise SpecError(f"the file is {exc.strerror} for a Pipelinefile", file=path) from None
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_cache(cache_file: str) -> PipelineSpec | None:
    """The spec cached at ``cache_file``; None for a miss: a missing, truncated or foreign
    file (one without this user's MAC: see :mod:`~targetrun.pipelinefile.signing`), or
    anything but a regular file -- a FIFO planted there is opened without waiting for a
    writer (forever) and not read, nor is a device (``/dev/zero`` never ends)."""
    try:
        with open_regular(cache_file) as f:  # NotRegularFile, an OSError: a miss
            data = signing.verified(f.read())
        return cachefile.loads(data) if data is not None else None
    except (OSError, ValueError):
        return None


def _write_cache(cache_file: str, spec: PipelineSpec) -> None:
    folder = os.path.dirname(cache_file)
    try:
        data = signing.sign(cachefile.dumps(spec))
        if data is None:  # no key of this user's to sign it with: a cache nobody can vouch for is none
            return
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    except (OSError, TypeError, ValueError):
        return  # a read-only folder, or a value JSON cannot hold, only costs the next load its parse
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, cache_file)
    except OSError:  # a full disk: no temporary file is left behind (one was, per command)
        with contextlib.suppress(OSError):
            os.remove(tmp)
