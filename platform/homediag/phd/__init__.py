"""PHD-conformant gateways: FHIR in, for gateways that already speak the HL7 Personal Health Device IG.

``POST /fhir`` takes a ``transaction`` or ``batch`` Bundle (Patient, Device and Observation entries),
``POST /fhir/Observation`` one Observation. This is a front of the one write path
(``homediag.ingest.pipeline``); per request, in one database transaction:

1. keep the body in the upload log exactly as sent (sealed with the vault key) with a redacted copy
   (patient identifiers, names and the PHD dedup identifier taken out: ``redaction``) and, at the end,
   its outcome;
2. resolve the patients (``patients``): ``Patient/{our id}`` of an enrolled patient, or a Patient in the
   Bundle (or a logical ``subject.identifier``) whose CPR, or an identifier registered as an alias
   (``patient_alias``, ``homediag.aliases``), is an enrolled patient's. A Patient sent here never
   becomes an identity;
3. upsert the Devices by identifier (``system|value``, the IEEE EUI-64 system id where there is one);
4. validate each Observation fully (structure, base invariants, profile rules: it comes from outside),
   refuse what is dated too far in the future, rewrite subject and device references to ours
   (``references``), pseudonymise identifiers that carry a patient identifier, and insert idempotently
   on the dedup key: the PHD dedup identifier (or the Observation's first identifier) scoped by the
   patient key, or a hash of device, patient key, code, time and value when it has none (``resources``);
5. audit.

Times: the device's time is the Observation's effective[x], kept as sent; the gateway's receive time
is ``observation.gateway_received_at`` (the Observation's gateway-received-time extension, else the
effective time of the PHD coincident time stamp it references, else the Bundle's timestamp, else the
request time); the platform's is ``observation.received_at``.
"""

from __future__ import annotations

from .constants import PHD_IDENTIFIER_SYSTEM
from .entries import GatewayResult
from .redaction import redact_fhir
from .service import PhdGatewayService

__all__ = ["PHD_IDENTIFIER_SYSTEM", "GatewayResult", "PhdGatewayService", "redact_fhir"]
