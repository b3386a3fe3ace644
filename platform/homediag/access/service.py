"""``AccessService``: every read of patient data, each decided, narrowed, masked and audited here."""

from __future__ import annotations

from .administration import AdministrationReads
from .auditlog import AuditLogReads
from .consents import ConsentReads
from .devices import DeviceReads
from .evaluation import EvaluationReads
from .export import ExportReads
from .patient_page import PatientPageReads
from .patients import PatientReads
from .readback import GatewayReadBack
from .reviews import ReviewReads
from .uploads import UploadLogReads


class AccessService(
    DeviceReads,
    PatientReads,
    ConsentReads,
    AuditLogReads,
    UploadLogReads,
    GatewayReadBack,
    AdministrationReads,
    ExportReads,
    EvaluationReads,
    ReviewReads,
    PatientPageReads,
):
    """The one enforcement point for reads. ``AccessService(rt).<read>(principal, ...)``; the HTTP app
    reaches it only through a route's declared policy (``homediag.api.policy``)."""
