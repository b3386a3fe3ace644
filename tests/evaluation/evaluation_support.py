"""What the evaluation tests share (imported by name: ``tests/evaluation`` is on ``sys.path`` under pytest)."""

from __future__ import annotations

from pathlib import Path


def all_bytes(directory: Path) -> bytes:
    """Every file under ``directory``, concatenated: to grep the outputs for identities."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())
