"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        return (
            subprocess.run(["free", "-h"], capture_output=True, text=True, check=True).stdout.splitlines()[1].split()[1]
        )
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def describe() -> dict[str, str]:
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": _cpu_model(),
        "memory": _memory(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average_1_5_15": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def source() -> dict[str, str]:
    """The commit measured, and whether the source folders had uncommitted changes."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    changed = git("status", "--porcelain", "--", "platform", "adapters", "fhir_profiles", "consent")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "source_changes": "uncommitted changes" if changed else "clean",
    }
