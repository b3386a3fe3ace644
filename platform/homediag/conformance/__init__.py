"""What a device vendor uses to prove an adapter (see docs/adapters.md):

- ``trial``: :func:`try_payload`, one payload through an adapter, the builder and the validator with a
  fixed build context; nothing stored. The kit and the sandbox both use it.
- ``kit``: the conformance kit (``homediag adapters test``): golden files, pass/fail per case, diffs.
- ``sandbox``: ``POST /sandbox/{adapter}``, the same trial over HTTP for a vendor, audited.

A vendor's upload log (``GET /uploads``) is a read of patient-related data, so it lives behind the
enforcement point: ``homediag.access.uploads``.
"""

from .kit import Case, CaseResult, KitError, KitReport, find_cases, format_report, read_payload, run_case, run_kit
from .sandbox import record_sandbox, sandbox_context
from .trial import EXAMPLE_CONTEXT, EXAMPLE_RECEIVED_AT, Trial, Verdict, try_payload

__all__ = [
    "EXAMPLE_CONTEXT",
    "EXAMPLE_RECEIVED_AT",
    "Case",
    "CaseResult",
    "KitError",
    "KitReport",
    "Trial",
    "Verdict",
    "find_cases",
    "format_report",
    "read_payload",
    "record_sandbox",
    "run_case",
    "run_kit",
    "sandbox_context",
    "try_payload",
]
