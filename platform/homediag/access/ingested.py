"""What ingest keeps of each reading it stores, in the same transaction, so that no read has to parse the new
resource again: its measured values and triage (``homediag.monitoring.ingested``), its shape as the web pages show
it (``readings.keep_shapes``), and each patient's kept worklist part grown by it (``worklist_grown``, just before
the transaction commits). Decides nothing and reads no patient data for anyone: it only derives rows from the rows
ingest is writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from homediag.monitoring import ingested

from .readings import keep_shapes, shape_of
from .worklist_grown import grow_when_committed


def keep_ingested(
    session: Session, rows: Sequence[dict[str, Any]], histories: ingested.Histories | None = None
) -> None:
    """Keep the values, triage and shape of the Observation rows ``rows`` that ingest has just inserted (triaged
    under ``histories``, the patients' settings histories as ingest remembers them; read here when not given), and
    grow their patients' kept worklist parts by them."""
    if not rows:
        return
    found_histories, triaged = ingested.keep_ingested(session, rows, histories)
    shapes = {row["id"]: shape_of(row["resource"]) for row in rows}
    keep_shapes(session, [(row["patient_key"], row["id"], shapes[row["id"]]) for row in rows])
    grow_when_committed(session, rows, found_histories, triaged, shapes)
