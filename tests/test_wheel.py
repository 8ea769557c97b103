"""The built wheel, installed into a fresh venv outside the repository, works for a new
user: `--version`, `init` (and its refusal to overwrite), `demo`, `poll` and `digest` of
the demo's loopback feeds. scripts/check_wheel.sh does the work; offline here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_wheel_runs_outside_the_repository(tmp_path: Path) -> None:
    env = {**os.environ, "OFFLINE": "1", "TMPDIR": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "check_wheel.sh")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "chipwatch 0.1.0" in out
    assert f"imported from {tmp_path}" in out  # the wheel, not the checkout
    assert "digest delivered to the Maildir" in out and "\ncheck: " in out  # the demo's
    assert "polled 3 feeds" in out and ", 0 failed" in out
    assert out.rstrip().endswith("wheel check: ok")
