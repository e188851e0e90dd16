"""The ``targetrun`` console script: signals are handled before the CLI is even imported,
so Ctrl-C or SIGTERM at start-up exits 130/143 quietly instead of with a traceback.

The cyclic garbage collector is paused from here until the command has loaded and
planned (see :func:`targetrun.cli.collect_garbage_again`): importing, loading a
10,000-task Pipelinefile and planning it allocate a few hundred thousand objects that
all stay alive, and every collection meanwhile walks them again for nothing (~7 % of a
no-op run). Collection resumes before any task runs (only the modules of Python tasks
may be imported meanwhile), and right away for the commands that do not plan.
"""

from __future__ import annotations

import gc
import os

from targetrun import stopping


def main() -> None:
    gc.disable()
    stopping.install()
    try:
        from targetrun.cli import main as cli_main
    except KeyboardInterrupt as exc:  # stopped while importing: nothing has started yet
        os._exit(stopping.exit_code_of(exc))
    cli_main(collection_paused=True)
