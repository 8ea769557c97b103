"""The systemd units under contrib/: parsed always, `systemd-analyze verify` where the
machine has it. The commands they run are real chipwatch commands."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTRIB = REPO / "contrib"
UNITS = (
    "chipwatch.service",
    "chipwatch-poll.service",
    "chipwatch-poll.timer",
    "chipwatch-worker.service",
)


def parse(name: str) -> configparser.RawConfigParser:
    """systemd's format: INI with repeated keys (ExecStart) and case-sensitive names."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(_join_repeats((CONTRIB / name).read_text(encoding="utf-8")))
    return parser


def _join_repeats(text: str) -> str:
    """Number repeated keys (ExecStart, ExecStart#2, ...) so configparser keeps them all."""
    seen: dict[tuple[str, str], int] = {}
    section = ""
    lines = []
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            count = seen[(section, key)] = seen.get((section, key), 0) + 1
            line = f"{key}#{count}={value}" if count > 1 else line
        lines.append(line)
    return "\n".join(lines)


def commands(unit: configparser.RawConfigParser) -> list[list[str]]:
    return [
        shlex.split(value.lstrip("-"))
        for key, value in unit["Service"].items()
        if key.split("#")[0] == "ExecStart"
    ]


def test_the_worker_unit_runs_chipwatch_worker() -> None:
    worker = parse("chipwatch-worker.service")
    assert commands(worker) == [
        ["/usr/local/bin/chipwatch", "--data-dir", "/var/lib/chipwatch", "worker"]
    ]
    assert worker["Service"]["RestartPreventExitStatus"] == "2"  # SQLite: ExitCode.CONFIG
    assert worker["Install"]["WantedBy"] == "multi-user.target"


def test_units_parse_and_run_real_commands() -> None:
    service = parse("chipwatch.service")
    assert service["Service"]["Type"] == "simple"
    assert commands(service) == [
        ["/usr/local/bin/chipwatch", "--data-dir", "/var/lib/chipwatch", "run"]
    ]
    assert service["Service"]["RestartPreventExitStatus"] == "2"  # ExitCode.CONFIG
    # `run` stopped by SIGTERM exits 143 (ExitCode.TERMINATED): a clean stop, not a failure
    assert set(service["Service"]["SuccessExitStatus"].split()) == {"130", "143"}
    assert service["Install"]["WantedBy"] == "multi-user.target"

    oneshot = parse("chipwatch-poll.service")
    assert oneshot["Service"]["Type"] == "oneshot"
    assert [c[-1] for c in commands(oneshot)] == ["poll", "digest"]
    assert set(oneshot["Service"]["SuccessExitStatus"].split()) == {"3", "75"}

    timer = parse("chipwatch-poll.timer")
    assert timer["Timer"]["Unit"] == "chipwatch-poll.service"
    assert timer["Timer"]["OnCalendar"] == "*:0/30"
    assert timer["Timer"]["Persistent"] == "true"


def test_the_units_commands_exist_in_the_cli() -> None:
    """Each command line of the units is accepted by chipwatch's argument parser."""
    for name in (*UNITS[:2], "chipwatch-worker.service"):
        for command in commands(parse(name)):
            result = subprocess.run(
                [sys.executable, "-m", "chipwatch", *command[1:-1], command[-1], "--help"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    chipwatch = Path(sys.executable).with_name("chipwatch")
    for name in UNITS:
        text = (CONTRIB / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(
            text.replace("/usr/local/bin/chipwatch", str(chipwatch)), encoding="utf-8"
        )
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "chipwatch" not in result.stderr, result.stderr  # no warning about our units
