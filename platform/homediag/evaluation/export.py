"""``homediag evaluation export``: the evaluator's tidy tables as Parquet or CSV, with a codebook and a
manifest (SHA-256 of every file, row counts, software versions, the data snapshot's hash).

Written atomically: everything goes into ``.<out>.partial`` beside the target, which is renamed to the
target only when complete. Readings, alerts and acknowledgements are written in parts of a hundred patients
each, every part to a temporary file renamed when complete and recorded in ``state.json``; an interrupted export run
again with the same arguments resumes after the last complete part (when the cohort is unchanged),
and never leaves a half-written file behind. Progress goes to stderr (Rich).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from homediag.access import AccessService
from homediag.errors import BadRequest
from homediag.users import Principal

from . import codebook
from .tables import (
    ACKNOWLEDGEMENTS,
    ALERTS,
    EVENTS,
    READINGS,
    TABLES,
    UPLOADS,
    Table,
    acknowledgement_rows,
    alert_rows,
    batches,
    event_rows,
    reading_table,
    upload_rows,
)

FORMATS = ("parquet", "csv")
PART_PATIENTS = 100
BATCH_ROWS = 20_000
STATE = "state.json"
PARTED = (READINGS, ALERTS, ACKNOWLEDGEMENTS)  # tables written in parts of patients
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    manifest: dict[str, Any]
    resumed_parts: int


def software() -> dict[str, str]:
    """The versions that made the files (the manifest's and the report's stamp)."""
    return {name: metadata.version(name) for name in ("homediag", "pyarrow", "duckdb")}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, document: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class _Writer:
    """One table file, written to ``<name>.tmp`` and renamed to ``<name>`` on close."""

    def __init__(self, path: Path, table: Table, fmt: str) -> None:
        self.path, self.tmp, self.rows = path, path.with_name(path.name + ".tmp"), 0
        if fmt == "parquet":
            self._w: Any = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        else:
            self._w = pacsv.CSVWriter(self.tmp, table.schema)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if isinstance(batch, pa.Table):
            self._w.write_table(batch)
        else:
            self._w.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        self._w.close()
        os.replace(self.tmp, self.path)


def _write_table(path: Path, table: Table, fmt: str, rows: Iterator[dict[str, Any]]) -> int:
    return _write_batches(path, table, fmt, batches(rows, table, BATCH_ROWS))


def _write_batches(path: Path, table: Table, fmt: str, data: Iterable[pa.RecordBatch | pa.Table]) -> int:
    writer = _Writer(path, table, fmt)
    try:
        for batch in data:
            writer.write(batch)
    except BaseException:
        writer._w.close()
        writer.tmp.unlink(missing_ok=True)
        raise
    if writer.rows == 0:  # a file with the schema and no rows, so that every reader finds the columns
        writer.write(pa.RecordBatch.from_pylist([], schema=table.schema))
    writer.close()
    return writer.rows


@contextmanager
def _progress(show: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show,
        transient=False,
    )
    with progress:
        yield progress


def export(
    access: AccessService,
    principal: Principal,
    out: Path,
    *,
    fmt: str = "parquet",
    pilot: str | None = None,
    purpose: str | None = None,
    show_progress: bool = False,
    part_patients: int = PART_PATIENTS,
    after_part: Callable[[int], None] | None = None,
) -> ExportResult:
    """Export what ``principal`` (an evaluator) may receive into ``out``, which must not exist yet."""
    if fmt not in FORMATS:
        raise BadRequest(f"the format (--format) must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = out.resolve()
    if out.exists():
        raise BadRequest(f"{out} exists already; an export writes a new directory")
    partial = out.with_name(f".{out.name}.partial")
    cohort = access.evaluation_cohort(principal, pilot=pilot, purpose=purpose)
    key = {
        "format": fmt,
        "pilot": pilot,
        "cohort": hashlib.sha256("\n".join(cohort).encode()).hexdigest(),
        "part_patients": part_patients,
    }
    state: dict[str, Any] = {}
    if (partial / STATE).exists():
        state = json.loads((partial / STATE).read_text())
        if state.get("key") != key:  # another cohort or other arguments: start again
            shutil.rmtree(partial)
            state = {}
    resumed = sum(1 for name in state.get("parts", {}) if name.startswith(f"{READINGS.name}/"))
    state = {"key": key, "parts": state.get("parts", {})}
    for parted in PARTED:
        (partial / parted.name).mkdir(parents=True, exist_ok=True)
    _write_json(partial / STATE, state)
    ext = "parquet" if fmt == "parquet" else "csv"
    parts = [cohort[i : i + part_patients] for i in range(0, len(cohort), part_patients)] or [[]]
    with _progress(show_progress) as progress:
        task = progress.add_task(
            "readings, alerts, acknowledgements (parts of patients)", total=len(parts), completed=resumed
        )
        for n, patients in enumerate(parts):
            names = [f"{t.name}/part-{n:05d}.{ext}" for t in PARTED]
            if all(name in state["parts"] and (partial / name).exists() for name in names):
                continue
            part = access.evaluation_part(principal, patients, purpose=purpose) if patients else None
            pages = part.pages if part is not None else iter(())
            state["parts"][names[0]] = _write_batches(partial / names[0], READINGS, fmt, map(reading_table, pages))
            alerts = part.alerts if part is not None else []
            state["parts"][names[1]] = _write_table(partial / names[1], ALERTS, fmt, alert_rows(alerts))
            acks = access.evaluation_acknowledgements(principal, patients, purpose=purpose) if patients else []
            state["parts"][names[2]] = _write_table(
                partial / names[2], ACKNOWLEDGEMENTS, fmt, acknowledgement_rows(acks)
            )
            _write_json(partial / STATE, state)
            pa.default_memory_pool().release_unused()  # give back what Arrow's allocator holds after a part
            progress.advance(task)
            if after_part is not None:
                after_part(n)
        task = progress.add_task("uploads and cohort events", total=2)
        uploads = access.evaluation_upload_outcomes(principal, pilot=pilot, purpose=purpose)
        counts = {
            f"{UPLOADS.name}.{ext}": _write_table(partial / f"{UPLOADS.name}.{ext}", UPLOADS, fmt, upload_rows(uploads))
        }
        progress.advance(task)
        events = access.evaluation_cohort_events(principal, pilot=pilot, purpose=purpose)
        counts[f"{EVENTS.name}.{ext}"] = _write_table(partial / f"{EVENTS.name}.{ext}", EVENTS, fmt, event_rows(events))
        progress.advance(task)
    counts.update(state["parts"])
    (partial / STATE).unlink()
    codebook.write(partial)
    files = {
        name: {
            "sha256": sha256_file(partial / name),
            "bytes": (partial / name).stat().st_size,
            "rows": counts.get(name),
        }
        for name in sorted([*counts, codebook.JSON, codebook.MARKDOWN])
    }
    data = sorted(n for n in counts)
    manifest = {
        "format": fmt,
        "pilot": pilot,
        "patients": len(cohort),
        "tables": {t.name: sorted(n for n in data if n.split("/")[0].split(".")[0] == t.name) for t in TABLES},
        "files": files,
        "snapshot": hashlib.sha256("".join(f"{n} {files[n]['sha256']}\n" for n in data).encode()).hexdigest(),
        "software": software(),
        "codebook": codebook.JSON,
    }
    _write_json(partial / MANIFEST, manifest)
    os.replace(partial, out)
    return ExportResult(out, manifest, resumed)


def export_zip(
    access: AccessService,
    principal: Principal,
    *,
    fmt: str = "parquet",
    pilot: str | None = None,
    purpose: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """An export as one zip file in a new temporary directory (the caller removes ``path.parent``)."""
    import tempfile
    import zipfile

    work = Path(tempfile.mkdtemp(prefix="homediag-evaluation-"))
    try:
        result = export(access, principal, work / "export", fmt=fmt, pilot=pilot, purpose=purpose)
        archive = work / "evaluation-export.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(result.directory.rglob("*")):
                if path.is_file():
                    z.write(path, path.relative_to(result.directory).as_posix())
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return archive, result.manifest
