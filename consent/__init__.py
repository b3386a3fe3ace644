"""Patient consent: the FHIR R4 Consent model and the access decision.

Pure: imports fhir.resources, pydantic and the standard library, never the service, a database or
the web framework.
"""

from .decision import DataWindow, Decision, decide, permitted_data_window, unchanged_around
from .facts import facts_of, record_of
from .fhirtime import COPENHAGEN
from .model import ConsentError, ConsentRecord, Period, Provision, parse_consent, treatment_consent
from .terms import ACT_REASON, CONSENT_SCOPE, PURPOSES_OF_USE

__all__ = [
    "ACT_REASON",
    "CONSENT_SCOPE",
    "COPENHAGEN",
    "PURPOSES_OF_USE",
    "ConsentError",
    "ConsentRecord",
    "DataWindow",
    "Decision",
    "Period",
    "Provision",
    "decide",
    "facts_of",
    "parse_consent",
    "permitted_data_window",
    "record_of",
    "treatment_consent",
    "unchanged_around",
]
