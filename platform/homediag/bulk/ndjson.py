"""NDJSON files that appear only when whole: lines go to ``NAME.part``, which is fsynced and renamed."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from homediag.fhir_profiles import fhirjson

PART = ".part"


def write_atomically(path: Path, resources: Iterable[dict[str, Any]]) -> int:
    """Write one resource per line to ``path`` (via a ``.part`` file and a rename); returns the line count.

    The directory must exist: a cancelled job's directory is removed, and the write then fails rather
    than bringing it back."""
    part = path.with_name(path.name + PART)
    count = 0
    try:
        with open(part, "x" if not part.exists() else "w", encoding="utf-8") as out:
            for resource in resources:
                out.write(fhirjson.dumps(resource))
                out.write("\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return count


def remove_parts(directory: Path) -> None:
    """Remove half-written files a stopped worker left behind."""
    if directory.is_dir():
        for stray in directory.glob(f"*{PART}"):
            stray.unlink(missing_ok=True)
