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
        return given
    return find_pipelinefile(given)


def find_pipelinefile(start: str | None = None) -> str:
    """The Pipelinefile in ``start`` (default: the current folder) or its parents."""
    folder = os.path.abspath(start or os.getcwd())
    while True:
        for name in FILENAMES:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            raise UsageError(
                f"no Pipelinefile.yaml in {os.path.abspath(start or os.getcwd())} or its parents",
                hint="Create one, or point at it with -f PATH.",
            )
        folder = parent
