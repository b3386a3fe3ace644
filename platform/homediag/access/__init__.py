"""The access layer: the one enforcement point every read of patient data goes through.

Given an authenticated principal (the API's route policies authenticate; ``homediag.api.policy``) it
decides, per patient, from the patient's consents (``homediag.consent``), the principal's role,
purpose of use and care relations, what may be seen. Searches are narrowed in SQL before counting
and paging, so totals and links show only what is permitted. Outside care every id is a pseudonym of
the reader's domain. A resource that may not be seen answers exactly as one that does not exist.
Every decision, permit and deny, is audited.

One module per kind of read: ``observations``, ``patients``, ``devices``, ``consents``, ``auditlog``
(AuditEvent), ``uploads`` (the upload log), ``readback`` (a PHD gateway's conditional-create answer),
``monitoring`` (triage, thresholds and plans; and the triage a clinician's Observations carry), ``reviews``
(acknowledgements as Task and Provenance);
the shared steps in ``decisions`` and ``view``.
"""

from .auditlog import AuditPage
from .service import AccessService
from .uploads import MAX_UPLOADS_PAGE, UploadPage
from .view import ROLE_PURPOSES, View, Window

__all__ = ["ROLE_PURPOSES", "MAX_UPLOADS_PAGE", "AccessService", "AuditPage", "UploadPage", "View", "Window"]
