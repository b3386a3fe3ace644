"""One payload through an adapter and the builder, stored nowhere (``homediag adapters convert``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from homediag.adapters.devices import DecodeError, UnknownAdapter
from homediag.adapters.devices import get as get_adapter
from homediag.fhir_profiles import BuildContext, Issue, build, check_rules, has_errors, operation_outcome


def convert(adapter_id: str, payload: bytes, *, received_at: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """``(True, Bundle)`` of the Observations, or ``(False, OperationOutcome)`` saying what is wrong and where."""
    try:
        adapter = get_adapter(adapter_id)
    except UnknownAdapter as exc:
        return False, operation_outcome([Issue("error", "not-supported", str(exc), "adapter")])
    try:
        readings = adapter.decode(payload)
    except DecodeError as exc:
        return False, operation_outcome([Issue("error", "structure", f"{adapter.id}: {exc}", exc.location)])
    ctx = BuildContext(
        patient_id="example", patient_key="example", device_id="example",
        gateway_received_at=received_at or datetime.now(UTC).replace(microsecond=0),
    )
    built = [b for r in readings for b in build(r, ctx)]
    issues = [i for b in built for i in check_rules(b.resource)]
    if has_errors(issues):
        return False, operation_outcome(issues)
    return True, {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{_uuid(b.resource['id'])}", "resource": b.resource} for b in built],
    }


def _uuid(hex32: object) -> str:
    h = str(hex32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
