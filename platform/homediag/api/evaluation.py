"""The evaluator's face: the tabular export as a zip file, and the pilot metrics as FHIR MeasureReports.

Thin: the access layer decides and audits what the evaluator receives (``homediag.access.evaluation``);
``homediag.evaluation`` writes the tables and computes the metrics, in a temporary directory removed
after the answer is sent.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.background import BackgroundTask
from starlette.responses import FileResponse

from homediag.errors import BadRequest

from .policy import EVALUATION_READ, Caller, enforce
from .priority import ReadRoute
from .responses import FhirResponse

# GETs on the read threads (api/priority.py)
router = APIRouter(tags=["evaluation"], route_class=ReadRoute)
Evaluator = Annotated[Caller, Depends(enforce(EVALUATION_READ))]


@router.get("/evaluation/export")
def evaluation_export(
    caller: Evaluator,
    format: Annotated[str, Query(description="parquet or csv")] = "parquet",
    pilot: Annotated[str | None, Query(description="only this pilot's patients")] = None,
) -> FileResponse:
    """The tidy tables, codebook and manifest the evaluator may receive, as one zip file."""
    from homediag.evaluation.export import export_zip  # pyarrow: loaded on an evaluator's first request

    archive, manifest = export_zip(caller.access, caller.user, fmt=format, pilot=pilot, purpose=caller.purpose)
    return FileResponse(
        archive,
        media_type="application/zip",
        filename="evaluation-export.zip",
        headers={"X-Snapshot": manifest["snapshot"]},
        background=BackgroundTask(shutil.rmtree, archive.parent, True),
    )


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} must be a date YYYY-MM-DD, not {text!r}", expression=name) from None


@router.get("/evaluation/MeasureReport")
def evaluation_measure_reports(
    caller: Evaluator,
    start: Annotated[str, Query(alias="from", description="first day, YYYY-MM-DD")],
    end: Annotated[str, Query(alias="to", description="last day, YYYY-MM-DD")],
    pilot: Annotated[str | None, Query(description="the pilot")] = None,
) -> FhirResponse:
    """The pilot metrics of the period as a Bundle of MeasureReports, small counts suppressed."""
    # pyarrow, duckdb, scipy and matplotlib: loaded on an evaluator's first request, not in every worker
    from homediag.evaluation.export import export
    from homediag.evaluation.measure import measure_reports
    from homediag.evaluation.metrics import compute
    from homediag.evaluation.report import Parameters

    params = Parameters(pilot, _day(start, "from"), _day(end, "to"))
    if params.end < params.start:
        raise BadRequest("'to' is before 'from'", expression="to")
    with tempfile.TemporaryDirectory(prefix="homediag-evaluation-") as work:
        result = export(caller.access, caller.user, Path(work) / "export", pilot=pilot, purpose=caller.purpose)
        metrics = compute(result.directory, params.start, params.end)
        stamp = {"id": result.manifest["snapshot"], "snapshot": result.manifest["snapshot"]}
        bundle = measure_reports(metrics, params, stamp)
    return FhirResponse(bundle)
