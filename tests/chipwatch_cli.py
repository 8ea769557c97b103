"""Run the `chipwatch` command in a subprocess, as a user or cron would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_chipwatch(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
