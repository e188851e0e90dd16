"""targetrun: Make's and Luigi's "skip what already exists" with Prefect 1's output
caching, on any storage fsspec can reach.

Read ``targetrun.api`` for the Python entry points and ``targetrun --help`` for the CLI.
"""

__version__ = "0.1.0"


def _stop_quietly_from_now() -> None:
    """The first thing the command does (``targetrun/_entry.py``, ``targetrun/__main__.py``):
    from here on SIGINT, SIGTERM, SIGHUP or SIGQUIT ends the process at once with 128 + the
    signal number (SIGHUP and SIGQUIT only when not ignored already: nohup),
    quietly -- nothing has started, so there is nothing to clean up or say. It lives here
    because this file is loaded before any other of targetrun's, so calling it reads no file
    first; it imports only what is built in. Calling it is the command's choice: importing
    targetrun as a library changes no signal handling. A signal a launcher kept blocked
    until now (how it closes the gap of the interpreter's own start-up) arrives here.
    """
    import os
    import _signal  # type: ignore[import-not-found]  # built into the interpreter

    def stop(signum: int, frame: object) -> None:
        os._exit(128 + signum)

    stops = [_signal.SIGINT, _signal.SIGTERM]
    for optional in ("SIGHUP", "SIGQUIT"):  # (not on Windows) ignored from the start (nohup): kept so
        signum = getattr(_signal, optional, None)
        if signum is not None and _signal.getsignal(signum) != _signal.SIG_IGN:
            stops.append(signum)
    for signum in stops:
        _signal.signal(signum, stop)
    if hasattr(_signal, "pthread_sigmask"):  # not on Windows
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, stops)
