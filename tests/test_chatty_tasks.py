"""A task that prints far more than its log keeps costs targetrun a log's worth of memory.

The log keeps the last megabyte of what a task printed (capture.MAX_LOG_CHARS). What came
before was held whole until the task ended: a command's stderr read into a list of
chunks, a Python task's prints in a StringIO, a subprocess's writes read back from the
sink in one piece -- twice the output in memory (300 MB printed: 618 MB of targetrun), so a
few chatty tasks had the run killed. Now each is cut as it comes (capture.LogBuffer).

Measured with tracemalloc while the run prints 20 MB each way: a peak of 2-3 times that before.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from targetrun.capture import MAX_LOG_CHARS, LogBuffer, tail
from tests.clirun import in_process

PRINTED = 20_000_000
LINE = "z" * 99 + "\n"

TASKS = """
import os, sys

def prints():
    lines = ("z" * 99 + "\\n") * 100
    for _ in range({lines} // 100):
        sys.stdout.write(lines)
    print("the last line")
    return 1

def starts_a_printer():
    os.system("yes {word} | head -c {size}; echo the last line")
    return 1
"""


@pytest.mark.parametrize("task", [
    "shell: \"yes {word} | head -c {size} >&2; echo the last line >&2; echo 1 > {{output}}\"",
    "run: tasks:prints",
    "run: tasks:starts_a_printer",
], ids=["command", "python", "subprocess"])
def test_what_a_task_prints_is_kept_as_its_log_not_whole_in_memory(tmp_path: Path, task: str) -> None:
    (tmp_path / "tasks.py").write_text(TASKS.format(lines=PRINTED // len(LINE), size=PRINTED, word=LINE.strip()))
    (tmp_path / "Pipelinefile.yaml").write_text(
        f"tasks:\n  chatty:\n    {task.format(size=PRINTED, word=LINE.strip())}\n    target: out.txt\n")
    tracemalloc.start()
    try:
        done = in_process(tmp_path, "run", "-q")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert peak < 12 * MAX_LOG_CHARS, f"{peak:,} bytes at the peak"
    log = next((tmp_path / ".targetrun" / "logs").glob("*/chatty.log")).read_text()
    assert log.rstrip().endswith("the last line")
    cut = int(log.split("[... ", 1)[1].split(" characters cut", 1)[0])
    kept = log.split("characters cut ...]\n", 1)[1]
    assert MAX_LOG_CHARS - 2 * len(LINE) <= len(kept) <= MAX_LOG_CHARS
    assert cut + len(kept) >= PRINTED  # every character printed is either kept or counted


def test_a_log_buffer_keeps_the_end_from_a_whole_line_and_counts_the_rest() -> None:
    buffer = LogBuffer(limit=10)
    for text in ["first line\n", "a secret-word\n", "kept\n", "end"]:
        buffer.write(text)
    assert buffer.tail() == tail("first line\na secret-word\nkept\nend", 10)  # as cutting it whole would
    assert buffer.tail() == "[... 25 characters cut ...]\nkept\nend"
    small = LogBuffer(limit=10)
    small.write("short\n")
    assert (small.tail(), small.cut) == ("short\n", 0)
