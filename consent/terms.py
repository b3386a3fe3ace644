"""Code systems and codes a FHIR R4 Consent uses here.

Purposes of use come from the v3 PurposeOfUse value set (the codes under ``PurposeOfUse`` in
v3-ActReason), which R4 binds to ``Consent.provision.purpose``. Other ActReason codes (reasons for
admission, refusal, ...) are not purposes of use, so a consent naming them is refused rather than
silently never matching.
"""

from __future__ import annotations

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"

CONSENT_STATUSES: frozenset[str] = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)
PROVISION_TYPES: frozenset[str] = frozenset({"permit", "deny"})

SCOPE_DISPLAY: dict[str, str] = {
    "adr": "Advanced Care Directive",
    "research": "Research",
    "patient-privacy": "Privacy Consent",
    "treatment": "Treatment",
}

PATIENT_CONSENT_CATEGORY: dict[str, str] = {"system": LOINC, "code": "59284-0", "display": "Patient Consent"}
OPT_IN_POLICY_RULE: dict[str, str] = {"system": ACT_CODE, "code": "OPTIN", "display": "opt-in"}

PURPOSES_OF_USE: frozenset[str] = frozenset(
    {
        # treatment and care
        "TREAT",
        "ETREAT",
        "BTG",
        "ERTREAT",
        "CLINTRL",
        "COC",
        "POPHLTH",
        # healthcare operations
        "HOPERAT",
        "CAREMGT",
        "DONAT",
        "FRAUD",
        "GOV",
        "HACCRED",
        "HCOMPL",
        "HDECD",
        "HDIRECT",
        "HDM",
        "HLEGAL",
        "HOUTCOMS",
        "HPRGRP",
        "HQUALIMP",
        "HSYSADMIN",
        "LABELING",
        "METAMGT",
        "MEMADMIN",
        "MILCDM",
        "PATADMIN",
        "PATSFTY",
        "PERFMSR",
        "RECORDMGT",
        "SYSDEV",
        "HTEST",
        "TRAIN",
        # payment
        "HPAYMT",
        "CLMATTCH",
        "COVAUTH",
        "COVERAGE",
        "ELIGDTRM",
        "ELIGVER",
        "ENROLLM",
        "MILDCRG",
        "REMITADV",
        # research
        "HRESCH",
        "BIORCH",
        "CLINTRCH",
        "CLINTRCHNPC",
        "CLINTRCHPC",
        "PRECLINTRCH",
        "DSRCH",
        "POARCH",
        "TRANSRCH",
        # on request of
        "PATRQT",
        "FAMRQT",
        "PWATRNY",
        "SUPNWK",
        # public health and marketing
        "PUBHLTH",
        "DISASTER",
        "THREAT",
        "HMARKT",
    }
)

PURPOSE_DISPLAY: dict[str, str] = {
    "TREAT": "treatment",
    "ETREAT": "Emergency Treatment",
    "HRESCH": "healthcare research",
    "HTEST": "test health data",
    "HOPERAT": "healthcare operations",
    "HQUALIMP": "health quality improvement",
    "CAREMGT": "care management",
    "PATSFTY": "patient safety",
    "PUBHLTH": "public health",
}
