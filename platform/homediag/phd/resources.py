"""Devices and Observations of a PHD gateway request: checked, identified (our ids and dedup keys), made
into what is stored (references ours, identifiers carrying a patient identifier pseudonymised)."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import select

from homediag import care
from homediag.access.observations import search_filters
from homediag.consent.fhirtime import local_span
from homediag.errors import BadRequest, Unprocessable
from homediag.fhir_profiles import Issue, check_structure, has_errors, validate
from homediag.fhir_profiles import terminology as t
from homediag.fhir_profiles.walk import strings
from homediag.ingest.pipeline import observation_row
from homediag.search_params import parse_observation_query
from homediag.store import models as m
from homediag.store.repositories import devices, observations

from .constants import ADAPTER, BLUETOOTH_SYSTEM, EUI64_SYSTEM, GATEWAY_DEVICE, MDC_AHD, PHD_IDENTIFIER_SYSTEM, WHAT
from .context import Context
from .entries import Entry
from .redaction import carries
from .references import device_identifier, device_reference, gateway_time, rewrite_references

EFFECTIVE = ("effectiveDateTime", "effectivePeriod", "effectiveInstant")


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if isinstance(value, str) and value else None


def _leak(ctx: Context, resource: dict[str, Any]) -> str | None:
    """The path of a string in ``resource`` that carries a patient identifier the request holds."""
    return next((path for path, text in strings(resource) if carries(text, ctx.known)), None)


# Device -----------------------------------------------------------------------------------------
def device_entry(ctx: Context, e: Entry) -> None:
    issues = check_structure(e.resource)
    if has_errors(issues):
        return e.fail(*issues)
    identifier = device_identifier(e.resource)
    if identifier is None:
        text = (
            "a Device is kept by its identifier: it needs one with a system and a value (the IEEE EUI-64 system"
            f" id, {EUI64_SYSTEM}, for a PHD or PHG)"
        )
        return e.fail(Issue("error", "required", text, "Device.identifier"))
    leak = _leak(ctx, e.resource)
    if leak is not None:
        text = "the Device carries a patient's identifier; identify the patient in the Observations' subject only"
        return e.fail(Issue("error", "security", text, f"Device.{leak}"))
    names = [
        str(e.resource.get("serialNumber") or ""),
        *(str(i.get("value")) for i in e.resource.get("identifier") or [] if isinstance(i, dict)),
    ]
    try:
        ctx.pipeline.admit_device(
            ctx.session, ctx.sender, names, described="the Device", where="Device.identifier", what=WHAT
        )
    except Unprocessable as exc:
        return e.fail(*exc.issues)
    dev_id = hashlib.sha256(f"fhir-device|{identifier}".encode()).hexdigest()[:24]
    if e.client_id is not None:  # PUT Device/{id}: kept under the client's id, unless that would re-home a device
        kept = devices.id_by_identifier(ctx.session, identifier)
        if kept is not None and kept != e.client_id:
            text = f"this Device (identifier {identifier}) is kept here as Device/{kept}; PUT it to that id, or POST it"
            return e.fail(Issue("error", "conflict", text, "request.url"), status=409)
        other = ctx.session.get(m.Device, e.client_id)
        if other is not None and other.identifier != identifier:
            text = f"Device/{e.client_id} is another device here (another identifier); a device's identifier is kept"
            return e.fail(Issue("error", "conflict", text, "request.url"), status=409)
        dev_id = e.client_id
    e.device_id = dev_id
    e.result.status, e.result.location = (200 if devices.exists(ctx.session, dev_id) else 201), f"Device/{dev_id}"


def device_values(ctx: Context, e: Entry) -> dict[str, Any]:
    """The ``device`` row of a Device entry (the resource kept with our references)."""
    resource = copy.deepcopy(e.resource)
    resource["id"] = e.device_id
    rewrite_references(ctx, resource)
    identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict)]
    bluetooth = next(
        (str(i.get("value")) for i in identifiers if i.get("system") == BLUETOOTH_SYSTEM and i.get("value")), None
    )
    profiles = " ".join(str(p) for p in (resource.get("meta") or {}).get("profile") or [])
    types = [str(c.get("code")) for c in (resource.get("type") or {}).get("coding") or [] if isinstance(c, dict)]
    return {
        "id": e.device_id,
        "manufacturer": _text(resource.get("manufacturer"), 200),
        "model": _text(resource.get("modelNumber"), 200),
        "serial": _text(resource.get("serialNumber"), 200),
        "address": _text(bluetooth, 64),
        "identifier": device_identifier(e.resource),
        "kind": "phg" if "PhgDevice" in profiles or MDC_AHD in types else "phd",
        "resource": resource,
    }


# Observation ------------------------------------------------------------------------------------
def effective(resource: dict[str, Any], zone: Any) -> tuple[datetime, datetime]:
    """Start and end of the time the Observation is about (device time, as sent)."""
    if isinstance(resource.get("effectiveDateTime"), str):
        start, _ = local_span(resource["effectiveDateTime"], zone)
        return start, start
    if isinstance(resource.get("effectiveInstant"), str):
        return local_span(resource["effectiveInstant"], zone)
    period = resource.get("effectivePeriod")
    if isinstance(period, dict) and (period.get("start") or period.get("end")):
        start = local_span(period["start"], zone)[0] if period.get("start") else None
        end = local_span(period["end"], zone)[1] if period.get("end") else None
        return start or end, end or start  # type: ignore[return-value]
    raise ValueError(
        "the Observation needs effectiveDateTime, effectivePeriod or effectiveInstant: the time the device took"
        " the reading"
    )


def check_observation(ctx: Context, e: Entry) -> None:
    """Validate in full (it comes from outside), find its devices, date it."""
    checked = e.resource
    if not e.resource["subject"].get("reference") and e.patient is not None:
        # the profile rules want a literal subject reference: a logical one (an identifier) is checked as the
        # one it resolved to
        checked = {**e.resource, "subject": {"reference": f"Patient/{e.patient.id}"}}
    issues = validate(checked)
    e.result.issues.extend(issues)
    if has_errors(issues):
        e.result.status = 422
        return
    if "device" in e.resource:
        e.device_id, issue = device_reference(ctx, e.resource["device"], "Observation.device")
        if issue is not None:
            return e.fail(issue)
    for n, ext in enumerate(e.resource.get("extension") or []):
        if isinstance(ext, dict) and ext.get("url") == GATEWAY_DEVICE:
            where = f"Observation.extension[{n}].valueReference"
            _, issue = device_reference(ctx, ext.get("valueReference"), where)
            if issue is not None:
                return e.fail(issue)
    try:
        e.effective = effective(e.resource, ctx.rt.local_zone)
    except ValueError as exc:
        return e.fail(Issue("error", "required", str(exc), "Observation.effective"))
    element = next((k for k in EFFECTIVE if k in e.resource), "effective")
    ahead = ctx.pipeline.too_far_ahead(e.effective[1], f"Observation.{element}")
    if ahead is not None:
        return e.fail(ahead)
    early = ctx.pipeline.implausibly_early(e.effective[0], None, f"Observation.{element}")
    if early is not None:  # no held outcome on this front: refused, and kept in the upload log for review
        text = early.diagnostics.replace("held for review, not stored", "refused (kept in the upload log for review)")
        return e.fail(Issue("error", early.code, text, early.expression))


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


def identifier_dedup(pkey: str, system: str, value: str) -> str:
    """An Observation identifier scoped by the patient: what ``dedup`` holds and readers see in its place.
    The patient key is a keyed HMAC, so the hash cannot be reversed by enumerating identifiers."""
    return hashlib.sha256(f"fhir-identifier|{pkey}|{system}|{value}".encode()).hexdigest()


CONDITIONAL_PARAMETERS = (
    "identifier",
    "patient",
    "subject",
    "code",
    "category",
    "date",
    "device",
    "value-quantity",
    "_id",
)


def conditional_matches(ctx: Context, e: Entry, condition: str) -> list[str]:
    """The ids of this patient's stored readings that a conditional create's criteria match (at most two:
    one is a match, two are too many). Criteria: ``identifier=system|value`` and the Observation search
    parameters; a patient named must be the reading's own. ValueError says what cannot be used."""
    assert e.patient is not None
    items = parse_qsl(condition.lstrip("?"), keep_blank_values=True)
    if not items:
        raise ValueError("a conditional create needs search criteria, e.g. identifier=system|value")
    unknown = sorted({k for k, _ in items if k not in CONDITIONAL_PARAMETERS})
    if unknown:
        raise ValueError(f"conditional create supports {', '.join(CONDITIONAL_PARAMETERS)}, not {', '.join(unknown)}")
    filters: list[Any] = [m.Observation.patient_key == e.patient.key]
    others = []
    for name, value in items:
        if name == "identifier":
            system, bar, ident = value.partition("|")
            if not bar or not system or not ident:
                raise ValueError("conditional create needs identifier=system|value (both parts)")
            filters.append(m.Observation.dedup == identifier_dedup(e.patient.key, system, ident))
        else:
            others.append((name, value))
    try:
        q = parse_observation_query(others, ctx.rt.local_zone, 1, 1)
    except BadRequest as exc:
        raise ValueError(str(exc)) from None
    if any(pid != e.patient.id for pid in q.patient_ids):
        return []
    if q.ids:
        filters += [m.Observation.id.in_(ids) for ids in q.ids]
    filters += search_filters(q, list(q.device_ids))
    return list(ctx.session.execute(select(m.Observation.id).where(*filters).limit(2)).scalars())


def _device_names(ctx: Context, device_id: str) -> list[str]:
    """What a device is registered by on a gateway (serial, identifier values, address): from the Device
    entry of this request, else from the stored device."""
    names: list[str] = []
    resources = [d.resource for d in ctx.entries if d.rtype == "Device" and d.device_id == device_id]
    stored = ctx.session.get(m.Device, device_id)
    if stored is not None:
        names += [stored.serial or "", stored.address or ""]
        resources.append(stored.resource or {})
    for resource in resources:
        names.append(str(resource.get("serialNumber") or ""))
        names += [str(i.get("value")) for i in resource.get("identifier") or [] if isinstance(i, dict)]
    return [n for n in names if n]


def key_and_match(ctx: Context, e: Entry) -> None:
    """The dedup key and our id; a conditional create (ifNoneExist) that matches takes the existing one."""
    assert e.patient is not None and e.effective is not None
    pkey = e.patient.key
    if e.device_id and care.bound_elsewhere(ctx.session, ctx.sender.id, _device_names(ctx, e.device_id), pkey):
        text = "the Observation's device is enrolled for another patient on this gateway; " + (
            f"the {WHAT} is kept in the upload log but not stored"
        )
        return e.fail(Issue("error", "forbidden", text, "Observation.device"))
    chosen = _dedup_identifier(e.resource)
    if chosen is not None:
        e.dedup = identifier_dedup(pkey, *chosen)
    else:
        value = {k: v for k, v in e.resource.items() if k.startswith("value") or k in ("component", "dataAbsentReason")}
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
    if e.client_id is not None:  # PUT Observation/{id}: kept under the client's id; a reading is never changed
        stored = observations.id_by_dedup(ctx.session, e.dedup, pkey)
        if stored is not None and stored != e.client_id:
            text = f"this reading is stored here already as Observation/{stored}; it is not stored twice"
            return e.fail(Issue("error", "duplicate", text, "request.url"), status=409)
        if stored is None and ctx.session.get(m.Observation, e.client_id) is not None:
            text = (
                f"Observation/{e.client_id} is another reading here; a stored reading is never changed"
                " (send a new one with a new id)"
            )
            return e.fail(Issue("error", "conflict", text, "request.url"), status=409)
        e.obs_id = e.client_id
        if stored is not None:
            e.existing = True
            e.result.status, e.result.location = 200, f"Observation/{stored}"
            return
    condition = e.request.get("ifNoneExist")
    if condition:
        where = "If-None-Exist" if ctx.mode == "single" else "request.ifNoneExist"
        try:
            found = conditional_matches(ctx, e, str(condition))
        except ValueError as exc:
            return e.fail(Issue("error", "not-supported", str(exc), where), status=400)
        if len(found) > 1:
            text = "the conditional create's criteria match more than one stored reading; make them selective"
            return e.fail(Issue("error", "multiple-matches", text, where), status=412)
        if found:
            e.existing, e.obs_id = True, found[0]
            e.result.status, e.result.location = 200, f"Observation/{found[0]}"


def observation_entry_row(ctx: Context, e: Entry) -> None:
    """The resource as stored (references ours, identifiers that carry a patient identifier pseudonymised)
    and its row."""
    if e.existing:
        return
    assert e.patient is not None and e.effective is not None and e.dedup is not None and e.obs_id is not None
    resource = copy.deepcopy(e.resource)
    resource["id"] = e.obs_id
    resource["subject"] = {"reference": f"Device/{e.subject_device}" if e.subject_device else f"Patient/{e.patient.id}"}
    problems = rewrite_references(ctx, resource)
    if problems:
        return e.fail(*problems)
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str) and isinstance(ident.get("system"), str):
            if ident["system"] == PHD_IDENTIFIER_SYSTEM or carries(ident["value"], ctx.known):
                ident["value"] = identifier_dedup(e.patient.key, ident["system"], ident["value"])
    leak = _leak(ctx, resource)
    if leak is not None:
        text = (
            "the Observation carries the patient's identifier outside subject; identify the patient in subject (or"
            " the Bundle's Patient) only"
        )
        return e.fail(Issue("error", "security", text, f"Observation.{leak}"))
    code = e.resource.get("code") or {}
    measurement = t.identify(code)
    codings = [c for c in code.get("coding") or [] if isinstance(c, dict)]
    primary = (
        measurement.primary_code if measurement is not None else str(codings[0].get("code") or "") if codings else ""
    )
    quantity = resource.get("valueQuantity") if isinstance(resource.get("valueQuantity"), dict) else None
    value = quantity.get("value") if quantity else None
    e.row = observation_row(
        resource,
        primary_code=primary,
        patient_key=e.patient.key,
        device_id=e.device_id,
        effective=e.effective,
        value=float(value) if value is not None else None,
        unit=str(quantity.get("code") or quantity.get("unit") or "") if quantity else None,
        dedup=e.dedup,
        adapter=ADAPTER,
        upload_id=ctx.upload.id,
        gateway_received_at=gateway_time(ctx, e),
    )
    e.result.location = f"Observation/{e.obs_id}"
