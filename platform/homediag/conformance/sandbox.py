"""The sandbox (``POST /sandbox/{adapter}``): a vendor tries a payload and sees the Observations it
becomes and the validation outcome; nothing is stored, every call is audited."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from homediag.fhir_profiles import (
    BuildContext,
)

from .trial import EXAMPLE_CONTEXT, EXAMPLE_RECEIVED_AT


def record_sandbox(rt: Any, principal: Any, adapter_id: str, outcome: str, detail: str) -> None:
    """Audit one sandbox call."""
    from homediag import audit

    with rt.sessions.begin() as session:
        audit.append(
            session,
            rt.keys,
            [
                audit.Entry(
                    principal.id,
                    principal.role,
                    "sandbox",
                    outcome,
                    purpose=principal.purpose,
                    entity=f"adapter/{adapter_id[:100]}",
                    detail=detail[:500],
                )
            ],
        )


def sandbox_context(
    *, device_id: str | None, received_at: datetime | None, local_zone: Any = None, npu_system: str | None = None
) -> BuildContext:
    """The sandbox's build context: the example patient; the device and receive time when given."""
    ctx = replace(
        EXAMPLE_CONTEXT,
        device_id=device_id or EXAMPLE_CONTEXT.device_id,
        gateway_received_at=received_at or EXAMPLE_RECEIVED_AT,
    )
    if local_zone is not None:
        ctx = replace(ctx, local_zone=local_zone)
    if npu_system is not None:
        ctx = replace(ctx, npu_system=npu_system)
    return ctx
