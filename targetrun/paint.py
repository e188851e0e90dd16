"""Colour on a terminal, and a run's final line -- standard library only.

The console reporter paints with these, and so does the no-op replay
(:mod:`targetrun.replay`), which prints the final line before anything else of
targetrun is imported: one definition, so the two cannot print it differently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO

_COLOURS = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1", "cyan": "36"}

# The final line's parts, in order: (task state, colour, the word for it).
FINAL_PARTS = (
    ("succeeded", "green", "ran"),
    ("would run", "cyan", "would run"),
    ("skipped", "dim", "skipped"),
    ("cached", "dim", "cached"),
    ("failed", "red", "failed"),
    ("upstream failed", "yellow", "upstream failed"),
    ("cancelled", "yellow", "cancelled"),
)


def colour_enabled(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Plain text unless the stream is a terminal (``NO_COLOR`` and ``FORCE_COLOR`` win)."""
    env = os.environ if environ is None else environ
    if "NO_COLOR" in env:
        return False
    if env.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, style: str, colour: bool) -> str:
    return f"\x1b[{_COLOURS[style]}m{text}\x1b[0m" if colour else text


def final_line(counts: Mapping[str, int], took: str, *, colour: bool, dry_run: bool = False) -> str:
    """``3 ran, 2 skipped in 1.2s`` from the number of tasks in each state (by its value).

    >>> final_line({"succeeded": 3, "skipped": 2, "not needed": 4}, "1.2s", colour=False)
    '3 ran, 2 skipped in 1.2s\\n'
    >>> final_line({}, "5ms", colour=False, dry_run=True)
    'dry run: nothing to do in 5ms\\n'
    """
    parts = [paint(f"{counts[state]} {word}", style, colour)
             for state, style, word in FINAL_PARTS if counts.get(state)]
    prefix = "dry run: " if dry_run else ""
    return f"{prefix}{', '.join(parts) or 'nothing to do'} in {took}\n"
