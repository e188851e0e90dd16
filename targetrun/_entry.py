"""The ``targetrun`` console script (and ``python -m targetrun``): Ctrl-C or SIGTERM at any
moment of start-up exits 130/143 quietly instead of with a traceback.

Three stages, each covered:

1. This module's first statement (and ``__main__.py``'s) installs a handler that ends the
   process at once with 128 + the signal number: nothing has started, so there is nothing
   to clean up or say (``targetrun._stop_quietly_from_now``, in the package's
   ``__init__``, which is loaded already, so no file is read before it). It also unblocks
   both signals, so one a launcher kept pending arrives there.
2. :func:`main` imports the CLI under that handler: a stop while importing ends the
   process the same way, raising nothing an import could swallow.
3. The CLI installs the real handlers (:mod:`targetrun.stopping`) first thing; from then on
   a stop unwinds the command (``Stopped``) and the CLI exits 130/143.

Before stage 1 the interpreter is still starting itself (its standard streams, ``site``
and ``.pth`` files): no code of any package runs there, so a signal then is the
interpreter's own to handle -- it dies of it (a shell reports 130) or says that its
start-up was interrupted. Only the process that starts targetrun can close that gap: it
may start it with SIGINT and SIGTERM blocked, and stage 1 receives a signal sent meanwhile.

The cyclic garbage collector is paused from :func:`main` until the command has loaded
and planned (see :func:`targetrun.cli.collect_garbage_again`): importing, loading a
10,000-task Pipelinefile and planning it allocate a few hundred thousand objects that all
stay alive, and every collection meanwhile walks them again for nothing (~7 % of a no-op
run). Collection resumes before any task runs (only the modules of Python tasks may be
imported meanwhile), and right away for the commands that do not plan.
"""

from __future__ import annotations

from targetrun import _stop_quietly_from_now  # the package is loaded already: no file is read

_stop_quietly_from_now()

import gc  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from targetrun import stopping  # noqa: E402
from targetrun.replay import replay  # noqa: E402


def main() -> None:
    gc.disable()  # resumed by the CLI once it has planned (see the module docstring)
    stopping.escape_unencodable(sys.stdout, sys.stderr)
    # A no-op the last identical command certified is answered before the CLI is even
    # imported (targetrun/replay.py); None: anything else, and the CLI answers.
    code = replay(sys.argv[1:], sys.stdout)
    if code is None and sys.argv[1:2] == ["status"]:  # the same for a status (targetrun/status_replay.py)
        from targetrun.status_replay import answer

        code = answer(sys.argv[1:], sys.stdout)
    if code is not None:
        # Ended here, not through the interpreter's finalization, which puts the default
        # signal handlers back first: a SIGTERM then would kill the process (-15) instead
        # of the quiet exit 143 of stage 1. There is nothing left to clean up.
        stopping.flush()
        os._exit(code)
    # Stage 2: the CLI is imported under stage 1's handler. Nothing has started, so ending
    # the process at once is all a stop needs -- and no exception is raised, which an
    # import's finalizer or weakref callback could swallow ("Exception ignored in ...").
    from targetrun.cli import main as cli_main

    try:
        cli_main(collection_paused=True)  # stage 3: installs the real handlers first thing
    except KeyboardInterrupt as exc:  # one in the instant before the CLI's own handling began
        stopping.flush()
        os._exit(stopping.exit_code_of(exc))
