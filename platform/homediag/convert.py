"""One payload through an adapter and the builder, stored nowhere (``homediag adapters convert``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from homediag.adapters.devices import UnknownAdapter
from homediag.adapters.devices import get as get_adapter
from homediag.fhir_profiles import BuildContext, Issue, fhirjson, operation_outcome

from .conformance import try_payload


def convert(adapter_id: str, payload: bytes, *, received_at: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """``(True, Bundle)`` of the Observations, or ``(False, OperationOutcome)`` saying what is wrong and where.

    The payload is bytes as read from ``--hex`` or ``--file``; an adapter that reads JSON gets them
    parsed (the object a gateway sends as the envelope's ``data``). The same rules as at ingest apply;
    held and discarded readings are marked on their Bundle entry.
    """
    try:
        adapter = get_adapter(adapter_id)
    except UnknownAdapter as exc:
        return False, operation_outcome([Issue("error", "not-supported", str(exc), "adapter")])
    data: Any = payload
    if adapter.input_kind == "json":
        try:
            data = fhirjson.loads(payload)
        except ValueError as exc:
            return False, operation_outcome(
                [
                    Issue(
                        "error",
                        "structure",
                        f"{adapter.id} reads a JSON object (the envelope's data); this is not JSON: {exc}",
                        "payload",
                    )
                ]
            )
        if not isinstance(data, dict):
            return False, operation_outcome(
                [
                    Issue(
                        "error",
                        "structure",
                        f"{adapter.id} reads a JSON object (the envelope's data), not a {type(data).__name__}",
                        "payload",
                    )
                ]
            )
    ctx = BuildContext(
        patient_id="example",
        device_id="example",
        gateway_received_at=received_at or datetime.now(UTC).replace(microsecond=0),
    )
    trial = try_payload(adapter, data, ctx, full_validation=False)
    if trial.verdict in ("refused", "rejected", "crashed"):
        return False, trial.outcome()
    return True, trial.bundle()
