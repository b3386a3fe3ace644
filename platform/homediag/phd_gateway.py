"""PHD-conformant gateways: FHIR in, for gateways that already speak the HL7 Personal Health Device IG.

``POST /fhir`` takes a ``transaction`` or ``batch`` Bundle (Patient, Device and Observation entries),
``POST /fhir/Observation`` one Observation. Per request, in one database transaction:

1. keep the body in the upload log exactly as sent (sealed with the vault key) with a redacted copy
   (patient identifiers, names and the PHD dedup identifier taken out) and, at the end, its outcome;
2. resolve the patients: ``Patient/{our id}`` of an enrolled patient, or a Patient in the Bundle (or a
   logical ``subject.identifier``) whose CPR, or an identifier registered as an alias
   (``patient_alias``), is an enrolled patient's. A Patient sent here never becomes an identity;
3. upsert the Devices by identifier (``system|value``, the IEEE EUI-64 system id where there is one);
4. validate each Observation fully (structure, base invariants, profile rules: it comes from outside),
   refuse what is dated too far in the future, rewrite subject and device references to ours,
   pseudonymise identifiers that carry a patient identifier, and insert idempotently on the dedup key:
   the PHD dedup identifier (or the Observation's first identifier) scoped by the patient key, or a
   hash of device, patient key, code, time and value when it has none;
5. audit.

A transaction is all or nothing: when any entry fails, nothing of it is stored and the answer is an
OperationOutcome (422) naming the entries. In a batch each entry stands alone.

Times: the device's time is the Observation's effective[x], kept as sent; the gateway's receive time
is ``observation.gateway_received_at`` (the Observation's gateway-received-time extension, else the
effective time of the PHD coincident time stamp it references, else the Bundle's timestamp, else the
request time); the platform's is ``observation.received_at``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from hashlib import sha256
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag.fhir_profiles import Issue, check_structure, fhirjson, has_errors, operation_outcome, validate
from homediag.fhir_profiles import terminology as t
from homediag.fhir_profiles.builder import EXT_GATEWAY_RECEIVED

from . import audit, care
from .clock import from_store, to_store, utcnow
from .identity import CPR_SYSTEM, InvalidCpr, check_cpr, patient_key
from .ingest import IngestService, _statements
from .keys import Key, KeyRing
from .runtime import Runtime
from .store import models as m
from .users import Principal

log = logging.getLogger(__name__)

ADAPTER = "fhir-phd"  # what the upload log and the observation rows name as the source
PHD_SD = "http://hl7.org/fhir/uv/phd/StructureDefinition"
PHD_IDENTIFIER_SYSTEM = f"{PHD_SD}/PhdBaseObservation"  # the PHD IG's dedup identifier
CTS_REFERENCE = f"{PHD_SD}/CoincidentTimeStampReference"
GATEWAY_DEVICE = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
EUI64_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"  # IEEE 11073 system id (EUI-64)
BLUETOOTH_SYSTEM = "http://hl7.org/fhir/sid/eui-48/bluetooth"
MDC_AHD = "531981"
MDC_TIME_ABS = "67975"  # MDC_ATTR_TIME_ABS: the PHD coincident time stamp  # MDC_MOC_VMS_MDS_AHD: an application hosting device, i.e. a PHG
MAX_ENTRIES = 2000
NOT_ENROLLED = "the patient is not enrolled in the pilot; the upload is kept in the upload log but not stored"
STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    404: "404 Not Found",
    422: "422 Unprocessable Entity",
    500: "500 Internal Server Error",
}
_REDACTED = "[redacted]"
_CPR_LIKE = re.compile(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)")


# -- patient identifier aliases -----------------------------------------------------------------
def identifier_hmac(system: str, value: str, key: Key) -> str:
    """HMAC-SHA256 of ``system|value`` under the pseudonym key (for the CPR system: the patient key)."""
    return hmac.new(key.secret, f"{system}|{value}".encode(), sha256).hexdigest()


def alias_identifiers(resource: dict[str, Any]) -> tuple[list[tuple[str, str]], list[Issue]]:
    """The identifiers of a Patient to enrol that are not its CPR: each becomes an alias."""
    aliases: list[tuple[str, str]] = []
    issues: list[Issue] = []
    for n, ident in enumerate(resource.get("identifier") or []):
        if not isinstance(ident, dict) or ident.get("system") == CPR_SYSTEM:
            continue
        system, value = ident.get("system"), ident.get("value")
        if not (isinstance(system, str) and system and isinstance(value, str) and value):
            issues.append(
                Issue(
                    "error",
                    "required",
                    "an identifier besides the CPR is registered as an alias of the patient and needs a system and a value",
                    f"Patient.identifier[{n}]",
                )
            )
        elif len(system) > 200:
            issues.append(
                Issue(
                    "error",
                    "value",
                    "an alias identifier's system is at most 200 characters",
                    f"Patient.identifier[{n}].system",
                )
            )
        else:
            aliases.append((system, value))
    return aliases, issues


def seal_alias(keys: KeyRing, system: str, value: str) -> tuple[str, bytes, bytes]:
    """The alias value encrypted under the vault key (bound to its system), for a later pseudonym-key rotation."""
    nonce = os.urandom(12)
    return keys.vault.kid, nonce, AESGCM(keys.vault.secret).encrypt(nonce, value.encode(), system.encode())


def open_alias(keys: KeyRing, row: m.PatientAlias) -> str:
    return AESGCM(keys.vault_key(row.kid).secret).decrypt(row.nonce, row.sealed, row.system.encode()).decode()


def register_aliases(
    session: Session, keys: KeyRing, pkey: str, aliases: list[tuple[str, str]], actor: str
) -> list[Issue]:
    """Register ``aliases`` (system, value) for the patient ``pkey``; an alias of another patient is an error."""
    issues: list[Issue] = []
    for system, value in aliases:
        digest = identifier_hmac(system, value, keys.pseudonym)
        existing = session.get(m.PatientAlias, (system, digest))
        if existing is None:
            kid, nonce, sealed = seal_alias(keys, system, value)
            session.add(
                m.PatientAlias(
                    system=system,
                    value_hmac=digest,
                    patient_key=pkey,
                    kid=kid,
                    nonce=nonce,
                    sealed=sealed,
                    created_at=utcnow(),
                    created_by=actor,
                )
            )
        elif existing.patient_key != pkey:
            issues.append(
                Issue(
                    "error",
                    "duplicate",
                    f"the identifier with system {system} is already registered for another patient",
                    "Patient.identifier",
                )
            )
    session.flush()
    return issues


def lookup_patient_key(session: Session, keys: KeyRing, system: str, value: str) -> str | None:
    """The patient key an identifier names: the CPR's HMAC, or the patient of a registered alias (None: unknown).
    Raises InvalidCpr for a malformed CPR."""
    if system == CPR_SYSTEM:
        return patient_key(check_cpr(value).cpr, keys.pseudonym)
    row = session.get(m.PatientAlias, (system, identifier_hmac(system, value, keys.pseudonym)))
    return row.patient_key if row is not None else None


# -- redaction of what a gateway sent -----------------------------------------------------------
def patient_identifier_values(raw: Any) -> set[str]:
    """Every patient identifier value a request carries: a Patient's identifiers, ``subject.identifier``,
    any CPR-system identifier."""
    found: set[str] = set()

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, dict):
            if node.get("resourceType") == "Patient":
                for ident in node.get("identifier") or []:
                    if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                        found.add(ident["value"])
            if (
                key == "subject"
                and isinstance(node.get("identifier"), dict)
                and isinstance(node["identifier"].get("value"), str)
            ):
                found.add(node["identifier"]["value"])
            if node.get("system") == CPR_SYSTEM and isinstance(node.get("value"), str):
                found.add(node["value"])
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)

    walk(raw, None)
    return {v for v in found if v.strip()}


def _carries(text: str, known: set[str]) -> bool:
    return any(v == text or (len(v) >= 5 and v in text) for v in known)


def _looks_like_cpr(text: str) -> bool:
    for match in _CPR_LIKE.finditer(text):
        try:
            check_cpr(match.group(1) + match.group(2))
            return True
        except InvalidCpr:
            continue
    return False


def redact_fhir(raw: Any, known: set[str] | None = None) -> Any:
    """The request as sent, for upload-log readers: a Patient keeps its resourceType, id, meta and
    identifier systems only; ``subject.identifier``/``display`` and the PHD dedup identifier (it embeds
    the patient's identifier) lose their values; any other string holding a patient identifier or a
    CPR-like number is replaced."""
    known = patient_identifier_values(raw) if known is None else known

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            if node.get("resourceType") == "Patient":
                out: dict[str, Any] = {}
                for k, v in node.items():
                    if k in ("resourceType", "id", "meta"):
                        out[k] = walk(v, k)
                    elif k == "identifier" and isinstance(v, list):
                        out[k] = [
                            {"system": i.get("system"), "value": _REDACTED} if isinstance(i, dict) else _REDACTED
                            for i in v
                        ]
                    else:
                        out[k] = _REDACTED
                return out
            out = {k: walk(v, k) for k, v in node.items()}
            if key == "subject":
                if "identifier" in out:
                    ident = node["identifier"]
                    out["identifier"] = (
                        {"system": ident.get("system"), "value": _REDACTED} if isinstance(ident, dict) else _REDACTED
                    )
                if "display" in out:
                    out["display"] = _REDACTED
            if key == "identifier" and node.get("system") == PHD_IDENTIFIER_SYSTEM and "value" in out:
                out["value"] = _REDACTED
            return out
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str) and (_carries(node, known) or _looks_like_cpr(node)):
            return _REDACTED
        return node

    if not isinstance(raw, dict | list):
        return {"unreadable": True, "type": type(raw).__name__}
    return walk(raw, None)


# -- results ------------------------------------------------------------------------------------
@dataclass
class EntryResult:
    index: int
    full_url: str | None
    resource_type: str | None
    status: int = 0
    location: str | None = None
    issues: list[Issue] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return has_errors(self.issues)

    def response(self, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {"status": STATUS_TEXT.get(self.status, str(self.status))}
        if self.location:
            out["location"] = self.location
        if self.issues:
            out["outcome"] = operation_outcome([_prefixed(i, prefix) for i in self.issues])
        return out


@dataclass
class GatewayResult:
    """What the API answers: ``status`` and ``body``; ``location`` (relative) for a single create."""

    upload: str
    status: int
    body: dict[str, Any]
    location: str | None = None


def _prefixed(issue: Issue, prefix: str) -> Issue:
    """An issue about a Bundle entry, its expression made relative to the Bundle (``prefix`` is
    ``Bundle.entry[n]``; empty for a single resource, whose expressions stay as they are).

    Expressions about the resource start with its type (``Observation.valueQuantity``); those about
    the entry itself start with ``request``, ``resource`` or ``fullUrl``."""
    if not prefix:
        return issue
    expr = issue.expression
    if expr is None:
        where = prefix
    elif expr.startswith(("request", "resource", "fullUrl")):
        where = f"{prefix}.{expr}"
    elif expr[:1].isupper() and not expr.startswith(("Bundle", "If-None-Exist")):
        head, dot, rest = expr.partition(".")
        where = f"{prefix}.resource.{rest}" if dot else f"{prefix}.resource"
    else:
        where = expr
    return Issue(issue.severity, issue.code, issue.diagnostics, where)


# -- the service --------------------------------------------------------------------------------
@dataclass
class _Patient:
    id: str
    key: str


@dataclass
class _Entry:
    result: EntryResult
    resource: dict[str, Any]
    request: dict[str, Any]
    patient: _Patient | None = None
    device_id: str | None = None  # a Device entry: our id; an Observation: its device
    device_values: dict[str, Any] | None = None
    subject_device: str | None = None  # an Observation about a Device (PHD coincident time stamp): the device's id
    obs_id: str | None = None
    dedup: str | None = None
    existing: bool = False  # a conditional create that matched
    effective: tuple[datetime, datetime] | None = None
    row: dict[str, Any] | None = None

    @property
    def rtype(self) -> str | None:
        return self.result.resource_type

    def fail(self, *issues: Issue, status: int = 422) -> None:
        self.result.issues.extend(issues)
        self.result.status = status

    @property
    def failed(self) -> bool:
        return self.result.failed


@cache
def _device_upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(m.Device)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={
            k: getattr(excluded, k)
            for k in ("manufacturer", "model", "serial", "address", "last_seen", "identifier", "kind", "resource")
        },
    )


class PhdGatewayService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.ingest = IngestService(rt)  # the upload log: sealing and the upload row

    # -- entry points ---------------------------------------------------------------------------
    def post_bundle(self, sender: Principal, body: bytes) -> GatewayResult:
        raw, problem = _parse(body)
        if problem is None and (not isinstance(raw, dict) or raw.get("resourceType") != "Bundle"):
            problem = Issue(
                "error", "structure", "POST /fhir takes a Bundle of type transaction or batch", "resourceType"
            )
        if problem is None and raw.get("type") not in ("transaction", "batch"):
            problem = Issue(
                "error",
                "not-supported",
                f"Bundle.type must be transaction or batch, not {raw.get('type')!r}",
                "Bundle.type",
            )
        if problem is None and not isinstance(raw.get("entry", []), list):
            problem = Issue("error", "structure", "Bundle.entry must be a list", "Bundle.entry")
        if problem is None and len(raw.get("entry") or []) > MAX_ENTRIES:
            problem = Issue(
                "error", "too-costly", f"a Bundle may hold at most {MAX_ENTRIES} entries; split it", "Bundle.entry"
            )
        if problem is not None:
            return self._refuse_whole(sender, body, raw, problem, status=400 if problem.code == "structure" else 422)
        entries = []
        for n, e in enumerate(raw.get("entry") or []):
            e = e if isinstance(e, dict) else {}
            resource = e.get("resource") if isinstance(e.get("resource"), dict) else {}
            request = e.get("request") if isinstance(e.get("request"), dict) else {}
            full_url = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
            entries.append(
                _Entry(
                    EntryResult(
                        n,
                        full_url,
                        resource.get("resourceType") if isinstance(resource.get("resourceType"), str) else None,
                    ),
                    resource,
                    request,
                )
            )
        return self._run(sender, body, raw, entries, mode=str(raw["type"]))

    def post_observation(self, sender: Principal, body: bytes, if_none_exist: str | None = None) -> GatewayResult:
        raw, problem = _parse(body)
        if problem is None and (not isinstance(raw, dict) or raw.get("resourceType") != "Observation"):
            problem = Issue("error", "structure", "POST /fhir/Observation takes an Observation", "resourceType")
        if problem is not None:
            return self._refuse_whole(sender, body, raw, problem, status=400)
        request: dict[str, Any] = {"method": "POST", "url": "Observation"}
        if if_none_exist:
            request["ifNoneExist"] = if_none_exist
        entry = _Entry(EntryResult(0, None, "Observation"), raw, request)
        return self._run(sender, body, raw, [entry], mode="single")

    # -- the upload log -------------------------------------------------------------------------
    def _new_upload(self, session: Session, sender: Principal, body: bytes, raw: Any) -> m.Upload:
        upload = self.ingest._new_upload(session, sender, body, None)
        upload.adapter = ADAPTER
        upload.redacted = redact_fhir(raw) if raw is not None else None
        return upload

    def _refuse_whole(self, sender: Principal, body: bytes, raw: Any, issue: Issue, status: int) -> GatewayResult:
        with self.rt.sessions.begin() as session:
            upload = self._new_upload(session, sender, body, raw)
            upload.outcome, upload.rejected, upload.issues = "rejected", 1, operation_outcome([issue])
            audit.append(
                session,
                self.rt.keys,
                [
                    audit.Entry(
                        sender.id,
                        sender.role,
                        "ingest",
                        "rejected",
                        entity=f"upload/{upload.id}",
                        detail=issue.diagnostics[:500],
                    )
                ],
            )
            return GatewayResult(upload.id, status, operation_outcome([issue]))

    def _run(
        self, sender: Principal, body: bytes, raw: dict[str, Any], entries: list[_Entry], mode: str
    ) -> GatewayResult:
        try:
            with self.rt.sessions.begin() as session:
                upload = self._new_upload(session, sender, body, raw)
                return _Run(self.rt, session, sender, upload, raw, entries, mode).execute()
        except Exception as exc:  # a failure of ours: keep what was sent, say so
            log.exception("a PHD gateway upload could not be stored; kept in the upload log as rejected")
            issue = Issue(
                "fatal",
                "exception",
                f"the platform could not store this upload ({type(exc).__name__}); it is kept in the upload log",
                None,
            )
            with self.rt.sessions.begin() as session:
                upload = self._new_upload(session, sender, body, raw)
                upload.outcome, upload.rejected, upload.issues = (
                    "rejected",
                    max(len(entries), 1),
                    operation_outcome([issue]),
                )
                audit.append(
                    session,
                    self.rt.keys,
                    [
                        audit.Entry(
                            sender.id,
                            sender.role,
                            "ingest",
                            "rejected",
                            entity=f"upload/{upload.id}",
                            detail=issue.diagnostics,
                        )
                    ],
                )
                return GatewayResult(upload.id, 500, operation_outcome([issue]))


def _parse(body: bytes) -> tuple[Any, Issue | None]:
    try:
        return fhirjson.loads(body), None
    except ValueError as exc:
        return None, Issue("error", "structure", f"the body is not JSON ({exc}); it is kept in the upload log", "body")


class _Run:
    """One request: resolve, check and store its entries in the caller's transaction."""

    def __init__(
        self,
        rt: Runtime,
        session: Session,
        sender: Principal,
        upload: m.Upload,
        raw: dict[str, Any],
        entries: list[_Entry],
        mode: str,
    ) -> None:
        self.rt, self.session, self.sender, self.upload, self.raw, self.entries, self.mode = (
            rt,
            session,
            sender,
            upload,
            raw,
            entries,
            mode,
        )
        self.keys = rt.keys
        self.known = patient_identifier_values(raw)
        self.request_time = from_store(upload.received_at)
        self.by_url: dict[str, _Entry] = {}
        for e in entries:
            if e.result.full_url:
                self.by_url.setdefault(e.result.full_url, e)
                # an absolute fullUrl .../Type/id is also what a relative reference Type/id means inside the Bundle
                parts = e.result.full_url.rstrip("/").split("/")
                if len(parts) >= 2 and "://" in e.result.full_url and parts[-2] in ("Patient", "Device", "Observation"):
                    self.by_url.setdefault(f"{parts[-2]}/{parts[-1]}", e)

    def prefix(self, e: _Entry) -> str:
        return "" if self.mode == "single" else f"Bundle.entry[{e.result.index}]"

    # -- the steps ------------------------------------------------------------------------------
    def execute(self) -> GatewayResult:
        for e in self.entries:
            self._check_entry(e)
        for e in self.entries:
            if e.rtype == "Patient" and not e.failed:
                self._patient_entry(e)
        for e in self.entries:
            if e.rtype == "Device" and not e.failed:
                self._device_entry(e)
        observations = [e for e in self.entries if e.rtype == "Observation"]
        for e in observations:
            if not e.failed:
                self._observation_first(e)
        for e in observations:
            if not e.failed and e.subject_device is not None:
                self._inherit_patient(e)
        for e in observations:
            if not e.failed and e.patient is not None:
                self._key_and_match(e)
        for e in observations:
            if not e.failed:
                self._observation_row(e)
        failed = [e for e in self.entries if e.failed]
        if self.mode == "transaction" and failed:
            return self._refuse_transaction(failed)
        return self._store()

    def _check_entry(self, e: _Entry) -> None:
        method = str(e.request.get("method") or ("POST" if self.mode == "single" else "")).upper()
        if not e.resource:
            e.fail(Issue("error", "required", "the entry has no resource", "resource"), status=400)
        elif e.rtype not in ("Patient", "Device", "Observation"):
            e.fail(
                Issue(
                    "error",
                    "not-supported",
                    f"a gateway Bundle may hold Patient, Device and Observation entries, not {e.rtype!r}",
                    "resource.resourceType",
                ),
                status=400,
            )
        elif method not in (("POST", "PUT") if e.rtype in ("Patient", "Device") else ("POST",)):
            e.fail(
                Issue(
                    "error",
                    "not-supported",
                    f"request.method {method or 'missing'} is not supported for {e.rtype} (POST{', PUT' if e.rtype != 'Observation' else ''})",
                    "request.method",
                ),
                status=400,
            )

    # Patient ------------------------------------------------------------------------------------
    def _resolve_identifier(self, system: Any, value: Any, where: str) -> tuple[str | None, Issue | None]:
        if not (isinstance(system, str) and isinstance(value, str) and system and value):
            return None, Issue("error", "required", "a patient identifier needs a system and a value", where)
        try:
            return lookup_patient_key(self.session, self.keys, system, value), None
        except InvalidCpr as exc:
            return None, Issue("error", "value", f"the CPR identifier: {exc}", f"{where}.value")

    def _enrolled(self, pkey: str | None, where: str) -> tuple[_Patient | None, Issue | None]:
        patient = (
            self.session.execute(select(m.Patient).where(m.Patient.patient_key == pkey)).scalar_one_or_none()
            if pkey
            else None
        )
        if patient is None or not patient.active:
            return None, Issue("error", "business-rule", NOT_ENROLLED, where)
        if not care.gateway_may_send(self.session, self.sender.id, patient.patient_key):
            return None, Issue(
                "error",
                "forbidden",
                "the patient is not enrolled on this gateway (homediag gateways assign); kept in the upload log, not stored",
                where,
            )
        return _Patient(patient.id, patient.patient_key), None

    def _patient_entry(self, e: _Entry) -> None:
        """A Patient in the Bundle only names whom the Observations are about; it is never stored."""
        keys: set[str] = set()
        for n, ident in enumerate(e.resource.get("identifier") or []):
            if not isinstance(ident, dict):
                continue
            pkey, issue = self._resolve_identifier(ident.get("system"), ident.get("value"), f"Patient.identifier[{n}]")
            if issue is not None:
                return e.fail(issue)
            if pkey is not None:
                keys.add(pkey)
        if len(keys) > 1:
            return e.fail(
                Issue(
                    "error", "business-rule", "the Patient's identifiers name different patients", "Patient.identifier"
                )
            )
        if not keys and not e.resource.get("identifier"):
            return e.fail(
                Issue(
                    "error",
                    "required",
                    f"a Patient needs an identifier: its CPR ({CPR_SYSTEM}) or one registered for an enrolled patient",
                    "Patient.identifier",
                )
            )
        patient, issue = self._enrolled(next(iter(keys), None), "Patient.identifier")
        self._note_patient_key(next(iter(keys), None))
        if issue is not None:
            return e.fail(issue)
        e.patient = patient
        e.result.status, e.result.location = 200, f"Patient/{patient.id}"  # type: ignore[union-attr]

    def _note_patient_key(self, pkey: str | None) -> None:
        if pkey is not None:
            self.upload.patient_key = pkey if self.upload.patient_key in (None, pkey) else self.upload.patient_key

    # Device -------------------------------------------------------------------------------------
    def _device_entry(self, e: _Entry) -> None:
        issues = check_structure(e.resource)
        if has_errors(issues):
            return e.fail(*issues)
        identifier = _device_identifier(e.resource)
        if identifier is None:
            return e.fail(
                Issue(
                    "error",
                    "required",
                    f"a Device is kept by its identifier: it needs one with a system and a value (the IEEE EUI-64 system id, {EUI64_SYSTEM}, for a PHD or PHG)",
                    "Device.identifier",
                )
            )
        leak = next((path for path, text in _strings(e.resource) if _carries(text, self.known)), None)
        if leak is not None:
            return e.fail(
                Issue(
                    "error",
                    "security",
                    "the Device carries a patient's identifier; identify the patient in the Observations' subject only",
                    f"Device.{leak}",
                )
            )
        names = [
            str(e.resource.get("serialNumber") or ""),
            *(str(i.get("value")) for i in e.resource.get("identifier") or [] if isinstance(i, dict)),
        ]
        if not care.gateway_may_use(self.session, self.sender.id, names):
            return e.fail(
                Issue(
                    "error",
                    "forbidden",
                    "the Device is not allowed on this gateway (homediag gateways allow-device, by serial number or identifier value)",
                    "Device.identifier",
                )
            )
        dev_id = hashlib.sha256(f"fhir-device|{identifier}".encode()).hexdigest()[:24]
        e.device_id = dev_id
        existing = self.session.get(m.Device, dev_id)
        e.result.status, e.result.location = (200 if existing is not None else 201), f"Device/{dev_id}"

    def _device_reference(self, ref: Any, where: str) -> tuple[str | None, Issue | None]:
        """Our Device id for a Reference: a Device in the Bundle, ``Device/{our id}``, or a logical identifier."""
        if not isinstance(ref, dict):
            return None, Issue("error", "structure", "a device reference is a Reference", where)
        target = ref.get("reference")
        if isinstance(target, str) and target:
            entry = self.by_url.get(target)
            if entry is not None:
                if entry.rtype != "Device":
                    return None, Issue("error", "invalid", f"{target} is a {entry.rtype}, not a Device", where)
                if entry.failed:
                    return None, Issue(
                        "error",
                        "invalid",
                        f"the Device {target} (Bundle.entry[{entry.result.index}]) was refused",
                        where,
                    )
                return entry.device_id, None
            if target.startswith("Device/") and self.session.get(m.Device, target.removeprefix("Device/")) is not None:
                return target.removeprefix("Device/"), None
            return None, Issue(
                "error",
                "not-found",
                f"{target} is not a Device known here: send the Device in the Bundle, or reference it by identifier",
                where,
            )
        ident = ref.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("system"), str) and isinstance(ident.get("value"), str):
            key = _identifier_key(ident["system"], ident["value"])
            found = self.session.execute(select(m.Device.id).where(m.Device.identifier == key)).scalar_one_or_none()
            if found is None:
                for entry in self.entries:
                    if entry.rtype == "Device" and not entry.failed and _device_identifier(entry.resource) == key:
                        found = entry.device_id
            if found is not None:
                return found, None
            return None, Issue(
                "error",
                "not-found",
                "no Device with this identifier is known here: send the Device in the Bundle first",
                where,
            )
        return None, Issue("error", "required", "a device reference needs a reference or an identifier", where)

    # Observation --------------------------------------------------------------------------------
    def _observation_first(self, e: _Entry) -> None:
        """Find the subject (a patient, or for a coincident time stamp the device); validate; find the device; date it."""
        subject = e.resource.get("subject")
        if not isinstance(subject, dict):
            return e.fail(
                Issue(
                    "error",
                    "required",
                    "an Observation needs a subject: the patient (Patient/{id}, a Patient in the Bundle, or an identifier)",
                    "Observation.subject",
                )
            )
        target = subject.get("reference")
        if isinstance(target, str) and target:
            entry = self.by_url.get(target)
            if entry is not None and entry.rtype == "Patient":
                if entry.failed:
                    reason = (
                        NOT_ENROLLED
                        if any(NOT_ENROLLED == i.diagnostics for i in entry.result.issues)
                        else f"the Patient {target} (Bundle.entry[{entry.result.index}]) was refused"
                    )
                    return e.fail(Issue("error", "business-rule", reason, "Observation.subject"))
                e.patient = entry.patient
            elif (entry is not None and entry.rtype == "Device") or (entry is None and target.startswith("Device/")):
                dev, issue = self._device_reference(subject, "Observation.subject")
                if issue is not None:
                    return e.fail(issue)
                e.subject_device = dev
            elif entry is None and target.startswith("Patient/"):
                pid = target.removeprefix("Patient/")
                row = self.session.execute(
                    select(m.Patient.patient_key).where(m.Patient.id == pid)
                ).scalar_one_or_none()
                patient, issue = self._enrolled(row, "Observation.subject")
                if issue is not None:
                    return e.fail(Issue(issue.severity, issue.code, f"{target}: {issue.diagnostics}", issue.expression))
                e.patient = patient
            else:
                return e.fail(
                    Issue(
                        "error",
                        "not-found",
                        f"Observation.subject {target!r} is neither Patient/{{id}} of an enrolled patient nor a Patient or Device in the Bundle",
                        "Observation.subject",
                    )
                )
        elif isinstance(subject.get("identifier"), dict):
            ident = subject["identifier"]
            pkey, issue = self._resolve_identifier(
                ident.get("system"), ident.get("value"), "Observation.subject.identifier"
            )
            if issue is not None:
                return e.fail(issue)
            self._note_patient_key(pkey)
            patient, issue = self._enrolled(pkey, "Observation.subject")
            if issue is not None:
                return e.fail(issue)
            e.patient = patient
        else:
            return e.fail(
                Issue(
                    "error", "required", "Observation.subject needs a reference or an identifier", "Observation.subject"
                )
            )

        checked = e.resource
        if not target and e.patient is not None:
            # the profile rules want a literal subject reference: a logical one (an identifier) is checked as the one it resolved to
            checked = {**e.resource, "subject": {"reference": f"Patient/{e.patient.id}"}}
        issues = validate(checked)
        e.result.issues.extend(issues)
        if has_errors(issues):
            e.result.status = 422
            return
        if "device" in e.resource:
            e.device_id, issue = self._device_reference(e.resource["device"], "Observation.device")
            if issue is not None:
                return e.fail(issue)
        for n, ext in enumerate(e.resource.get("extension") or []):
            if isinstance(ext, dict) and ext.get("url") == GATEWAY_DEVICE:
                _, issue = self._device_reference(
                    ext.get("valueReference"), f"Observation.extension[{n}].valueReference"
                )
                if issue is not None:
                    return e.fail(issue)

        try:
            e.effective = _effective(e.resource, self.rt.local_zone)
        except ValueError as exc:
            return e.fail(Issue("error", "required", str(exc), "Observation.effective"))
        latest = datetime.now(UTC) + timedelta(minutes=self.rt.settings.future_tolerance_minutes)
        if e.effective[1] > latest:
            element = next(
                (k for k in ("effectiveDateTime", "effectivePeriod", "effectiveInstant") if k in e.resource),
                "effective",
            )
            return e.fail(
                Issue(
                    "error",
                    "business-rule",
                    f"dated {e.effective[1].isoformat()}, more than {self.rt.settings.future_tolerance_minutes} minutes ahead of the platform's clock (check the device's clock, and the gateway's when it set the time)",
                    f"Observation.{element}",
                )
            )

    def _inherit_patient(self, e: _Entry) -> None:
        """An Observation about a device (the PHD coincident time stamp) belongs to the patient whose readings refer to it."""
        url = e.result.full_url
        keys = {
            o.patient.key: o.patient
            for o in self.entries
            if o.rtype == "Observation"
            and o.patient is not None
            and not o.failed
            and url
            and url in _references(o.resource)
        }
        if len(keys) == 1:
            e.patient = next(iter(keys.values()))
        elif not keys:
            e.fail(
                Issue(
                    "error",
                    "business-rule",
                    "an Observation about a device (e.g. a PHD coincident time stamp) is accepted only beside a patient's Observation in the same Bundle that refers to it",
                    "Observation.subject",
                )
            )
        else:
            e.fail(
                Issue(
                    "error",
                    "not-supported",
                    "an Observation about a device is referred to by Observations of more than one patient; send one Bundle per patient",
                    "Observation.subject",
                )
            )

    def _key_and_match(self, e: _Entry) -> None:
        """The dedup key and our id; a conditional create (ifNoneExist) that matches takes the existing one."""
        assert e.patient is not None and e.effective is not None
        pkey = e.patient.key
        chosen = _dedup_identifier(e.resource)
        if chosen is not None:
            e.dedup = _identifier_dedup(pkey, *chosen)
        else:
            value = {
                k: v for k, v in e.resource.items() if k.startswith("value") or k in ("component", "dataAbsentReason")
            }
            parts = [
                "fhir",
                e.device_id or e.subject_device or "",
                pkey,
                json.dumps(e.resource.get("code"), sort_keys=True, default=str),
                e.effective[0].isoformat(),
                e.effective[1].isoformat(),
                json.dumps(value, sort_keys=True, default=str),
            ]
            e.dedup = hashlib.sha256("|".join(parts).encode()).hexdigest()
        e.obs_id = e.dedup[:32]
        condition = e.request.get("ifNoneExist")
        if condition:
            try:
                system, value = _if_none_exist(str(condition))
            except ValueError as exc:
                return e.fail(
                    Issue(
                        "error",
                        "not-supported",
                        str(exc),
                        "If-None-Exist" if self.mode == "single" else "request.ifNoneExist",
                    ),
                    status=400,
                )
            key = _identifier_dedup(pkey, system, value)
            found = self.session.execute(
                select(m.Observation.id).where(m.Observation.dedup == key, m.Observation.patient_key == pkey)
            ).scalar_one_or_none()
            if found is not None:
                e.existing, e.obs_id = True, found
                e.result.status, e.result.location = 200, f"Observation/{found}"

    def _observation_row(self, e: _Entry) -> None:
        """The resource as stored (references ours, identifiers that carry a patient identifier pseudonymised) and its row."""
        if e.existing:
            return
        assert e.patient is not None and e.effective is not None and e.dedup is not None and e.obs_id is not None
        resource = copy.deepcopy(e.resource)
        resource["id"] = e.obs_id
        resource["subject"] = {
            "reference": f"Device/{e.subject_device}" if e.subject_device else f"Patient/{e.patient.id}"
        }
        problems = self._rewrite_references(resource)
        if problems:
            return e.fail(*problems)
        for ident in resource.get("identifier") or []:
            if isinstance(ident, dict) and isinstance(ident.get("value"), str) and isinstance(ident.get("system"), str):
                if ident["system"] == PHD_IDENTIFIER_SYSTEM or _carries(ident["value"], self.known):
                    ident["value"] = _identifier_dedup(e.patient.key, ident["system"], ident["value"])
        leak = next((path for path, text in _strings(resource) if _carries(text, self.known)), None)
        if leak is not None:
            return e.fail(
                Issue(
                    "error",
                    "security",
                    "the Observation carries the patient's identifier outside subject; identify the patient in subject (or the Bundle's Patient) only",
                    f"Observation.{leak}",
                )
            )
        code = e.resource.get("code") or {}
        measurement = t.identify(code)
        codings = [c for c in code.get("coding") or [] if isinstance(c, dict)]
        primary = (
            measurement.primary_code
            if measurement is not None
            else str(codings[0].get("code") or "")
            if codings
            else ""
        )
        quantity = resource.get("valueQuantity") if isinstance(resource.get("valueQuantity"), dict) else None
        value = quantity.get("value") if quantity else None
        e.row = {
            "id": e.obs_id,
            "patient_key": e.patient.key,
            "code": primary[:64],
            "category": " ".join(
                str(c["coding"][0].get("code"))
                for c in resource.get("category") or []
                if isinstance(c, dict) and c.get("coding")
            )[:200],
            "codes": " ".join(f"{c.get('system')}|{c.get('code')}" for c in codings),
            "effective_start": to_store(e.effective[0]),
            "effective_end": to_store(e.effective[1]),
            "device_id": e.device_id,
            "value": float(value) if value is not None else None,
            "unit": (str(quantity.get("code") or quantity.get("unit") or "")[:32] or None) if quantity else None,
            "status": str(resource.get("status")),
            "dedup": e.dedup,
            "resource": resource,
            "received_at": None,
            "adapter": ADAPTER,
            "upload_id": self.upload.id,
            "gateway_received_at": to_store(self._gateway_time(e)),
        }
        e.result.location = f"Observation/{e.obs_id}"

    def _rewrite_references(self, resource: dict[str, Any]) -> list[Issue]:
        """References to other entries of the Bundle become ours (Patient/{id}, Device/{id}, Observation/{id})."""
        problems: list[Issue] = []
        for path, ref in _reference_nodes(resource):
            target = ref.get("reference")
            entry = self.by_url.get(target) if isinstance(target, str) else None
            if entry is None:
                if isinstance(ref.get("identifier"), dict) and path.startswith(("device", "extension")):
                    dev, _ = self._device_reference(ref, path)
                    if dev is not None:
                        ref["reference"] = f"Device/{dev}"
                continue
            local = self._local(entry)
            if local is None:
                problems.append(
                    Issue(
                        "error",
                        "invalid",
                        f"refers to {target} (Bundle.entry[{entry.result.index}]), which was refused",
                        f"Observation.{path}",
                    )
                )
            else:
                ref["reference"] = local
                if entry.rtype == "Patient":
                    ref.pop("display", None)
        return problems

    def _local(self, entry: _Entry) -> str | None:
        if entry.failed:
            return None
        if entry.rtype == "Patient" and entry.patient is not None:
            return f"Patient/{entry.patient.id}"
        if entry.rtype == "Device" and entry.device_id is not None:
            return f"Device/{entry.device_id}"
        if entry.rtype == "Observation" and entry.obs_id is not None:
            return f"Observation/{entry.obs_id}"
        return None

    def _gateway_time(self, e: _Entry) -> datetime:
        """The gateway's receive time: its own extension, the coincident time stamp's effective time, the Bundle's timestamp, the request time."""
        for ext in e.resource.get("extension") or []:
            if (
                isinstance(ext, dict)
                and ext.get("url") == EXT_GATEWAY_RECEIVED
                and isinstance(ext.get("valueDateTime"), str)
            ):
                parsed = _instant(ext["valueDateTime"], self.rt.local_zone)
                if parsed is not None:
                    return parsed
        if e.subject_device and e.effective and _first_code(e.resource) == MDC_TIME_ABS:
            return e.effective[0]  # a coincident time stamp: its effective time is the gateway's clock
        for ext in e.resource.get("extension") or []:
            if (
                isinstance(ext, dict)
                and ext.get("url") == CTS_REFERENCE
                and isinstance(ext.get("valueReference"), dict)
            ):
                target = str(ext["valueReference"].get("reference"))
                cts = self.by_url.get(target)
                if cts is not None and cts.effective is not None:
                    return cts.effective[0]
                if cts is None and target.startswith("Observation/"):  # a time stamp sent in an earlier upload
                    row = self.session.execute(
                        select(m.Observation.code, m.Observation.effective_start, m.Observation.patient_key).where(
                            m.Observation.id == target.removeprefix("Observation/")
                        )
                    ).one_or_none()
                    if (
                        row is not None
                        and row.code == MDC_TIME_ABS
                        and e.patient is not None
                        and row.patient_key == e.patient.key
                    ):
                        return from_store(row.effective_start)
        stamp = self.raw.get("timestamp") if self.mode != "single" else None
        parsed = _instant(stamp, self.rt.local_zone) if isinstance(stamp, str) else None
        return parsed or self.request_time

    # -- the outcome ----------------------------------------------------------------------------
    def _refuse_transaction(self, failed: list[_Entry]) -> GatewayResult:
        issues = []
        for e in failed:
            where = f"Bundle.entry[{e.result.index}]" + (f" ({e.result.full_url})" if e.result.full_url else "")
            for i in e.result.issues:
                if i.severity in ("error", "fatal"):
                    p = _prefixed(i, self.prefix(e))
                    issues.append(Issue(p.severity, p.code, f"{where}: {i.diagnostics}", p.expression))
        issues.append(
            Issue(
                "information",
                "informational",
                "a transaction is all or nothing: nothing of this Bundle was stored; it is kept in the upload log",
                "Bundle",
            )
        )
        self.upload.outcome, self.upload.rejected = "rejected", len(failed)
        self.upload.issues = operation_outcome(issues)
        self._audit("rejected", issues[0].diagnostics)
        return GatewayResult(self.upload.id, 422, operation_outcome(issues))

    def _store(self) -> GatewayResult:
        now = utcnow()
        good = [e for e in self.entries if not e.failed]
        devices = {e.device_id: e for e in good if e.rtype == "Device"}
        for e in devices.values():
            self.session.execute(_device_upsert(self.rt.engine.dialect.name), self._device_values(e, now))
        rows: dict[str, dict[str, Any]] = {}
        for e in good:
            if e.row is not None and e.row["dedup"] not in rows:
                e.row["received_at"] = now
                rows[e.row["dedup"]] = e.row
        created: set[str] = set()
        if rows:
            insert, _ = _statements(self.rt.engine.dialect.name)
            created = set(self.session.execute(insert, list(rows.values())).scalars())
        n_created = n_duplicate = 0
        for e in good:
            if e.rtype != "Observation":
                continue
            if e.row is not None and e.obs_id in created and rows.get(e.row["dedup"]) is e.row:
                e.result.status = 201
                n_created += 1
            else:
                e.result.status = 200
                e.existing = True
                n_duplicate += 1
        rejected = len(self.entries) - len(good)
        if self.mode == "single":
            outcome = "rejected" if rejected else "created" if n_created else "duplicate"
        else:
            outcome = ("partial" if good else "rejected") if rejected else "created" if n_created else "duplicate"
        self.upload.outcome, self.upload.created, self.upload.duplicates, self.upload.rejected = (
            outcome,
            n_created,
            n_duplicate,
            rejected,
        )
        self.upload.device_id = next(
            (e.device_id for e in self.entries if e.rtype == "Observation" and e.device_id), next(iter(devices), None)
        )
        all_issues = [_prefixed(i, self.prefix(e)) for e in self.entries for i in e.result.issues]
        self.upload.issues = operation_outcome(all_issues) if all_issues else None
        self._audit(
            outcome, f"{n_created} created, {n_duplicate} duplicate, {rejected} rejected; {len(devices)} devices"
        )
        if self.mode == "single":
            return self._single_result(self.entries[0])
        return GatewayResult(
            self.upload.id,
            200,
            {
                "resourceType": "Bundle",
                "type": f"{self.mode}-response",
                "entry": [
                    {
                        **({"fullUrl": e.result.full_url} if e.result.full_url else {}),
                        "response": e.result.response(self.prefix(e)),
                    }
                    for e in self.entries
                ],
            },
        )

    def _single_result(self, e: _Entry) -> GatewayResult:
        if e.failed:
            return GatewayResult(
                self.upload.id, e.result.status if e.result.status >= 400 else 422, operation_outcome(e.result.issues)
            )
        if e.result.status == 201 and e.row is not None:
            return GatewayResult(self.upload.id, 201, e.row["resource"], location=e.result.location)
        # an Observation with this identifier is stored: a gateway writes, it does not read, so it gets
        # back the stored resource only when it sent that itself
        from .access import AccessService

        location = f"Observation/{e.obs_id}"
        stored = AccessService(self.rt).gateway_read_back(self.session, self.sender, e.obs_id)
        if stored is not None:
            return GatewayResult(self.upload.id, 200, stored, location=location)
        note = Issue(
            "information",
            "duplicate",
            f"an Observation with this identifier is stored already ({location}); nothing was stored",
            "Observation.identifier",
        )
        return GatewayResult(self.upload.id, 200, operation_outcome([note]), location=location)

    def _device_values(self, e: _Entry, now: datetime) -> dict[str, Any]:
        resource = copy.deepcopy(e.resource)
        resource["id"] = e.device_id
        self._rewrite_references(resource)
        identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict)]
        bluetooth = next(
            (str(i.get("value")) for i in identifiers if i.get("system") == BLUETOOTH_SYSTEM and i.get("value")), None
        )
        profiles = " ".join(str(p) for p in (resource.get("meta") or {}).get("profile") or [])
        types = [str(c.get("code")) for c in (resource.get("type") or {}).get("coding") or [] if isinstance(c, dict)]
        kind = "phg" if "PhgDevice" in profiles or MDC_AHD in types else "phd"
        return {
            "id": e.device_id,
            "manufacturer": _text(resource.get("manufacturer"), 200),
            "model": _text(resource.get("modelNumber"), 200),
            "serial": _text(resource.get("serialNumber"), 200),
            "address": _text(bluetooth, 64),
            "first_seen": now,
            "last_seen": now,
            "identifier": _device_identifier(e.resource),
            "kind": kind,
            "resource": resource,
        }

    def _audit(self, outcome: str, detail: str) -> None:
        keys = sorted({e.patient.key for e in self.entries if e.patient is not None})
        entries = [
            audit.Entry(
                self.sender.id,
                self.sender.role,
                "ingest",
                outcome,
                patient_key=k,
                entity=f"upload/{self.upload.id}",
                detail=detail[:500],
            )
            for k in keys
        ]
        audit.append(
            self.session,
            self.keys,
            entries
            or [
                audit.Entry(
                    self.sender.id,
                    self.sender.role,
                    "ingest",
                    outcome,
                    patient_key=self.upload.patient_key,
                    entity=f"upload/{self.upload.id}",
                    detail=detail[:500],
                )
            ],
        )


# -- helpers ------------------------------------------------------------------------------------
def _first_code(resource: dict[str, Any]) -> str | None:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return (
        str(codings[0].get("code")) if isinstance(codings, list) and codings and isinstance(codings[0], dict) else None
    )


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if isinstance(value, str) and value else None


def _identifier_key(system: str, value: str) -> str:
    """``system|value`` as the device table keeps it (an EUI-64 in upper case: gateways differ)."""
    return f"{system}|{value.upper() if system == EUI64_SYSTEM else value}"[:300]


def _device_identifier(resource: dict[str, Any]) -> str | None:
    """The identifier a Device is kept by: the IEEE EUI-64 system id, else its first identifier."""
    identifiers = [
        i
        for i in resource.get("identifier") or []
        if isinstance(i, dict) and isinstance(i.get("system"), str) and isinstance(i.get("value"), str) and i["value"]
    ]
    chosen = next((i for i in identifiers if i["system"] == EUI64_SYSTEM), identifiers[0] if identifiers else None)
    return _identifier_key(chosen["system"], chosen["value"]) if chosen else None


def _dedup_identifier(resource: dict[str, Any]) -> tuple[str, str] | None:
    """The identifier that is the dedup key: the PHD one, else the first with a system and a value."""
    identifiers = [
        (i["system"], i["value"])
        for i in resource.get("identifier") or []
        if isinstance(i, dict)
        and isinstance(i.get("system"), str)
        and isinstance(i.get("value"), str)
        and i["system"]
        and i["value"]
    ]
    return next((i for i in identifiers if i[0] == PHD_IDENTIFIER_SYSTEM), identifiers[0] if identifiers else None)


def _identifier_dedup(pkey: str, system: str, value: str) -> str:
    """An Observation identifier scoped by the patient: what ``dedup`` holds and readers see in its place.
    The patient key is a keyed HMAC, so the hash cannot be reversed by enumerating identifiers."""
    return hashlib.sha256(f"fhir-identifier|{pkey}|{system}|{value}".encode()).hexdigest()


def _if_none_exist(condition: str) -> tuple[str, str]:
    params = parse_qsl(condition.lstrip("?"), keep_blank_values=True)
    if [k for k, _ in params] != ["identifier"]:
        raise ValueError("conditional create supports exactly one search parameter, identifier=system|value")
    system, bar, value = params[0][1].partition("|")
    if not bar or not system or not value:
        raise ValueError("conditional create needs identifier=system|value (both parts)")
    return system, value


def _instant(text: Any, zone: Any) -> datetime | None:
    """A FHIR dateTime/instant with a time as an aware datetime (no offset: local time); None for a date alone."""
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _partial(text: str, zone: Any) -> tuple[datetime, datetime]:
    """A FHIR date or dateTime as the span it covers (aware; no offset: local time)."""
    instant = _instant(text, zone)
    if instant is not None:
        return instant, instant
    parts = [int(p) for p in text.split("-")]
    if len(parts) == 1:
        start, end = datetime(parts[0], 1, 1), datetime(parts[0] + 1, 1, 1)
    elif len(parts) == 2:
        start = datetime(parts[0], parts[1], 1)
        end = datetime(parts[0] + parts[1] // 12, parts[1] % 12 + 1, 1)
    else:
        start = datetime(parts[0], parts[1], parts[2])
        end = start + timedelta(days=1)
    return start.replace(tzinfo=zone), (end - timedelta(microseconds=1)).replace(tzinfo=zone)


def _effective(resource: dict[str, Any], zone: Any) -> tuple[datetime, datetime]:
    """Start and end of the time the Observation is about (device time, as sent)."""
    if isinstance(resource.get("effectiveDateTime"), str):
        start, _ = _partial(resource["effectiveDateTime"], zone)
        return start, start
    if isinstance(resource.get("effectiveInstant"), str):
        return _partial(resource["effectiveInstant"], zone)
    period = resource.get("effectivePeriod")
    if isinstance(period, dict) and (period.get("start") or period.get("end")):
        start = _partial(period["start"], zone)[0] if period.get("start") else None
        end = _partial(period["end"], zone)[1] if period.get("end") else None
        return start or end, end or start  # type: ignore[return-value]
    raise ValueError(
        "the Observation needs effectiveDateTime, effectivePeriod or effectiveInstant: the time the device took the reading"
    )


def _reference_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Reference-like object (a dict with ``reference`` or a logical ``identifier``) with its path."""
    if isinstance(node, dict):
        if path and ("reference" in node or (path.endswith(("device", "valueReference")) and "identifier" in node)):
            yield path, node
            return
        for k, v in node.items():
            yield from _reference_nodes(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for n, v in enumerate(node):
            yield from _reference_nodes(v, f"{path}[{n}]")


def _references(resource: dict[str, Any]) -> set[str]:
    return {str(ref.get("reference")) for _, ref in _reference_nodes(resource) if ref.get("reference")}


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for n, v in enumerate(node):
            yield from _strings(v, f"{path}[{n}]")
    elif isinstance(node, str):
        yield path, node
