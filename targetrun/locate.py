"""Where the Pipelinefile is: the one place that finds it.

Standard library and :mod:`targetrun.errors` only: the no-op replay
(:mod:`targetrun.replay`) finds the file before anything else of targetrun is imported.
"""

from __future__ import annotations

import os

from targetrun.errors import UsageError

FILENAMES = ("Pipelinefile.yaml", "Pipelinefile.yml", "Pipelinefile")
MAX_FILE_BYTES = 64 * 1024 * 1024  # a larger Pipelinefile is refused before it is read


def pipelinefile(given: str | None = None) -> str:
    """The Pipelinefile ``-f`` names (a file, or a folder to search), else the one in the
    current folder or its parents -- as given when it is a file, else found."""
    if given == "":  # `-f "$UNSET_VARIABLE"`: not "here", and no file is named ''
        raise UsageError("-f names an empty path", hint="Give the Pipelinefile's path, or leave -f out to use the "
                         "one in the current folder or its parents.")
    if given is not None and not os.path.isdir(given):
        if not os.path.isabs(given):
            current_folder()  # a relative path needs one
        return given
    return find_pipelinefile(given)


def current_folder() -> str:
    """The current folder, or a :class:`UsageError` when it was deleted (or moved out of
    reach) since the shell entered it -- never a FileNotFoundError out of getcwd()."""
    try:
        return os.getcwd()
    except OSError as exc:
        raise UsageError(f"the current folder no longer exists ({exc.strerror or exc}): it was deleted or moved "
                         "since the shell entered it", hint="cd to an existing folder, or give -f with an absolute path.") from None


def find_pipelinefile(start: str | None = None) -> str:
    """The Pipelinefile in ``start`` (default: the current folder) or its parents."""
    folder = os.path.abspath(start) if start and os.path.isabs(start) else os.path.join(current_folder(), start or "")
    folder = os.path.normpath(folder)
    while True:
        for name in FILENAMES:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            raise UsageError(
                f"no Pipelinefile.yaml in {os.path.abspath(start or current_folder())} or its parents",
                hint="Create one, or point at it with -f PATH.",
            )
        folder = parent
