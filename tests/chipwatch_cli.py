"""Run the `chipwatch` command in a subprocess, as a user or cron would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_chipwatch(
    config: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess; `env`: variables set on top of this process's."""
    return subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )
