"""Ctrl-C: the run stops, leaves no partial target, and is recorded as interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def test_ctrl_c_stops_the_run_and_records_it(tmp_path):
    (tmp_path / "Pipelinefile.yaml").write_text(
        "tasks:\n"
        "  slow:\n    shell: \"echo started > started; sleep 30; echo late > {output}\"\n    target: out/slow.txt\n"
        "  after:\n    shell: \"cat {needs.slow} > {output}\"\n    needs: [slow]\n    target: out/after.txt\n"
    )
    run = subprocess.Popen([sys.executable, "-m", "targetrun", "run", "-f", str(tmp_path / "Pipelinefile.yaml")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    began = time.monotonic()
    os.kill(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 130, out + err
    assert time.monotonic() - began < 10  # the 30 s command was stopped, not waited for
    assert "interrupted" in err
    assert not (tmp_path / "out/slow.txt").exists() and not (tmp_path / "out/after.txt").exists()
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == []  # no staging file either
    history = subprocess.run([sys.executable, "-m", "targetrun", "history", "--json", "-f",
                              str(tmp_path / "Pipelinefile.yaml")], capture_output=True, text=True, timeout=60)
    assert [r["status"] for r in json.loads(history.stdout)] == ["interrupted"]
