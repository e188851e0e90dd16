"""The ``targetrun`` console script: signals are handled before the CLI is even imported,
so Ctrl-C or SIGTERM at start-up exits 130/143 quietly instead of with a traceback."""

from __future__ import annotations

import os

from targetrun import stopping


def main() -> None:
    stopping.install()
    try:
        from targetrun.cli import main as cli_main
    except KeyboardInterrupt as exc:  # stopped while importing: nothing has started yet
        os._exit(stopping.exit_code_of(exc))
    cli_main()
