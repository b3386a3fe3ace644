#!/usr/bin/env python3
"""Set-up and entry point on a fresh machine with only Python 3.11+.

    python3 run.py demo     # a demo pilot on the embedded SQLite store, served on :8000
    python3 run.py test     # the whole test suite (SQLite, and PostgreSQL when reachable)

Each command first makes ``.venv`` and installs the project into it (again only when
``pyproject.toml`` changed), then runs. Extra arguments go to ``homediag demo`` or to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".homediag-installed"


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py must say so on an older Python
        sys.exit(f"homediag needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and (BIN / "homediag").exists():
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV.name}/ ...", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing homediag and its dependencies into .venv/ ...", file=sys.stderr, flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True, stdout=sys.stderr)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True, cwd=ROOT, stdout=sys.stderr)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    commands = {
        "demo": [str(BIN / "homediag"), "demo"],
        "test": [str(BIN / "python"), "-m", "pytest"],
        "bench": [str(BIN / "python"), "-m", "bench"],
        "lint": ["bash", str(ROOT / ".ci" / "lint")],
    }
    if not argv or argv[0] not in commands:
        print(__doc__.strip())
        return 2
    ensure_environment()
    return subprocess.call([*commands[argv[0]], *argv[1:]], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
