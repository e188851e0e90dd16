"""More of the world breaking while a run goes on (tests/test_world_faults.py has the first):

* a worker process of the processes executor killed (the kernel's OOM killer, kill -9)
  while a task that may be retried runs in it;

Each: exit code from targetrun/errors.py with one paragraph that says what broke and what
to do, never a traceback, nothing half-written, and a plain re-run after the fault is
cleared finishes.
"""

from __future__ import annotations

import json

KILLED = '''
import os, signal

def die_once(flag):
    """The kernel's OOM killer, the first time: the worker running this is SIGKILLed."""
    if not os.path.exists(flag):
        open(flag, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"

def after(**upstream):
    return sorted(upstream.values())
'''


def test_a_worker_killed_under_a_task_with_retries_is_retried_in_a_new_pool(project, tmp_path):
    """A pool whose worker died is broken for good: the retry's submit raised
    BrokenProcessPool out of the engine -- "internal error", a traceback, exit 4. The
    executor now starts a new pool, the retry runs there, and the run succeeds; the
    lost attempt says which signal ended its worker."""
    proj = project(f"""
    defaults: {{serializer: json}}
    tasks:
      k: {{run: killed:die_once, args: {{flag: "{tmp_path / 'flag'}"}}, target: out/k.json, max_retries: 1}}
      then: {{run: killed:after, needs: [k], target: out/then.json}}
    """, killed=KILLED)
    done = proj.cli("run", "--executor", "processes", "-j", "2")
    assert "Traceback" not in done.text, done.text
    assert done.code == 0, done.text
    assert "a worker process of the pool was killed by signal 9 (SIGKILL" in done.out, done.out
    assert json.loads(proj.read("out/then.json")) == ["survived"]

