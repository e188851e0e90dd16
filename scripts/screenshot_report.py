"""Make the README's screenshot of ``targetrun report``, from the example pipeline.

Copies the example (Pipelinefile.yaml and pipeline_tasks/) to a temporary folder, runs it
three times -- the day before, the day, then the day again with ``--force csv`` (so the
last run shows tasks skipped and tasks that ran, and the history strip has three runs) --
writes the report of the last run and photographs it with headless Chromium.

    python scripts/screenshot_report.py [docs/report.png]

Needs ``chromium`` on PATH (Debian: apt-get install chromium).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 1280, 1180


def targetrun(folder: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "targetrun", *args], cwd=folder, check=True, stdout=subprocess.DEVNULL)


def main(output: str = str(REPO / "docs" / "report.png")) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "weather"
        folder.mkdir()
        shutil.copy(REPO / "Pipelinefile.yaml", folder)
        shutil.copytree(REPO / "pipeline_tasks", folder / "pipeline_tasks",
                        ignore=shutil.ignore_patterns("__pycache__"))
        targetrun(folder, "run", "-q", "-j", "2", "--date", "2026-11-29")
        targetrun(folder, "run", "-q", "-j", "2", "--date", "2026-11-30")
        targetrun(folder, "run", "-q", "-j", "2", "--date", "2026-11-30", "--force", "csv")
        targetrun(folder, "report", "-o", "report.html")
        profile = Path(tmp) / "profile"
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
                        f"--screenshot={Path(output).resolve()}", (folder / "report.html").as_uri()],
                       check=True, capture_output=True)
    print(f"wrote {output} ({Path(output).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main(*sys.argv[1:2])
