"""Start-up time of the commands that need no model: `topics list`, `corpus list`,
`feeds list` (target: under 1 s each). Each runs as a user runs it, in a fresh process,
against a config copied to a temporary folder and an existing database; the median of
several runs is printed with the machine's load, and the CPU time (user + system) the
process used, which a loaded machine inflates less than the wall time.

    make bench-cli          (or: .venv/bin/python scripts/bench_cli.py [runs])
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = (("topics", "list"), ("corpus", "list"), ("feeds", "list"), ("--version",))
TARGET_SECONDS = 1.0


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    chipwatch = Path(sys.executable).with_name("chipwatch")
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        shutil.copytree(REPO / "config", home / "config")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHIPWATCH_")}
        env |= {"XDG_CONFIG_HOME": str(home / "xdg"), "XDG_DATA_HOME": str(home / "data")}
        base = [str(chipwatch), "--config", str(home / "config"), "--data-dir", str(home / "d")]
        subprocess.run([*base, "feeds", "list"], env=env, check=True, capture_output=True)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(
            f"{'command':<16}{'median':>9}{'min':>9}{'max':>9}{'cpu':>9}"
            f"   ({runs} runs, fresh processes)"
        )
        slow = []
        for command in COMMANDS:
            times, cpu = [], []
            for _ in range(runs):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run([*base, *command], env=env, check=True, capture_output=True)
                times.append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            median = statistics.median(times)
            name = " ".join(command)
            print(
                f"{name:<16}{median:>8.2f}s{min(times):>8.2f}s{max(times):>8.2f}s"
                f"{statistics.median(cpu):>8.2f}s"
            )
            if median >= TARGET_SECONDS and command[0] != "--version":
                slow.append(name)
    print("target: < 1 s each:", "met" if not slow else f"missed by {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
