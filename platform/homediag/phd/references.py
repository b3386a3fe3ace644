"""References in a PHD gateway request: entries by fullUrl, Devices by reference or identifier, references
rewritten to ours, the PHD coincident time stamp (its patient, and the gateway's time it gives)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from homediag.clock import from_store
from homediag.consent.fhirtime import local_instant
from homediag.fhir_profiles import Issue
from homediag.fhir_profiles.builder import EXT_GATEWAY_RECEIVED
from homediag.fhir_profiles.walk import nodes
from homediag.store.repositories import devices, observations

from .constants import CTS_REFERENCE, EUI64_SYSTEM, MDC_TIME_ABS
from .context import Context
from .entries import Entry


def identifier_key(system: str, value: str) -> str:
    """``system|value`` as the device table keeps it (an EUI-64 in upper case: gateways differ)."""
    return f"{system}|{value.upper() if system == EUI64_SYSTEM else value}"[:300]


def device_identifier(resource: dict[str, Any]) -> str | None:
    """The identifier a Device is kept by: the IEEE EUI-64 system id, else its first identifier."""
    identifiers = [
        i
        for i in resource.get("identifier") or []
        if isinstance(i, dict) and isinstance(i.get("system"), str) and isinstance(i.get("value"), str) and i["value"]
    ]
    chosen = next((i for i in identifiers if i["system"] == EUI64_SYSTEM), identifiers[0] if identifiers else None)
    return identifier_key(chosen["system"], chosen["value"]) if chosen else None


def reference_nodes(resource: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Reference-like object (a dict with ``reference`` or a logical ``identifier``) with its path;
    not what lies inside one."""
    inside: str | None = None
    for path, _key, node in nodes(resource):
        if inside is not None and path.startswith((f"{inside}.", f"{inside}[")):
            continue
        if (
            isinstance(node, dict)
            and path
            and ("reference" in node or (path.endswith(("device", "valueReference")) and "identifier" in node))
        ):
            inside = path
            yield path, node


def references(resource: dict[str, Any]) -> set[str]:
    return {str(ref.get("reference")) for _, ref in reference_nodes(resource) if ref.get("reference")}


def first_code(resource: dict[str, Any]) -> str | None:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    first = codings[0] if isinstance(codings, list) and codings else None
    return str(first.get("code")) if isinstance(first, dict) else None


def device_reference(ctx: Context, ref: Any, where: str) -> tuple[str | None, Issue | None]:
    """Our Device id for a Reference: a Device in the Bundle, ``Device/{our id}``, or a logical identifier."""
    if not isinstance(ref, dict):
        return None, Issue("error", "structure", "a device reference is a Reference", where)
    target = ref.get("reference")
    if isinstance(target, str) and target:
        entry = ctx.by_url.get(target)
        if entry is not None:
            if entry.rtype != "Device":
                return None, Issue("error", "invalid", f"{target} is a {entry.rtype}, not a Device", where)
            if entry.failed:
                text = f"the Device {target} (Bundle.entry[{entry.result.index}]) was refused"
                return None, Issue("error", "invalid", text, where)
            return entry.device_id, None
        if target.startswith("Device/") and devices.exists(ctx.session, target.removeprefix("Device/")):
            return target.removeprefix("Device/"), None
        text = f"{target} is not a Device known here: send the Device in the Bundle, or reference it by identifier"
        return None, Issue("error", "not-found", text, where)
    ident = ref.get("identifier")
    if isinstance(ident, dict) and isinstance(ident.get("system"), str) and isinstance(ident.get("value"), str):
        key = identifier_key(ident["system"], ident["value"])
        found = devices.id_by_identifier(ctx.session, key)
        if found is None:
            for entry in ctx.entries:
                if entry.rtype == "Device" and not entry.failed and device_identifier(entry.resource) == key:
                    found = entry.device_id
        if found is not None:
            return found, None
        text = "no Device with this identifier is known here: send the Device in the Bundle first"
        return None, Issue("error", "not-found", text, where)
    return None, Issue("error", "required", "a device reference needs a reference or an identifier", where)


def _local(entry: Entry) -> str | None:
    if entry.failed:
        return None
    if entry.rtype == "Patient" and entry.patient is not None:
        return f"Patient/{entry.patient.id}"
    if entry.rtype == "Device" and entry.device_id is not None:
        return f"Device/{entry.device_id}"
    if entry.rtype == "Observation" and entry.obs_id is not None:
        return f"Observation/{entry.obs_id}"
    return None


def rewrite_references(ctx: Context, resource: dict[str, Any]) -> list[Issue]:
    """References to other entries of the Bundle become ours (Patient/{id}, Device/{id}, Observation/{id});
    changes ``resource`` in place (a copy the caller made)."""
    problems: list[Issue] = []
    for path, ref in list(reference_nodes(resource)):
        target = ref.get("reference")
        entry = ctx.by_url.get(target) if isinstance(target, str) else None
        if entry is None:
            if isinstance(ref.get("identifier"), dict) and path.startswith(("device", "extension")):
                dev, _ = device_reference(ctx, ref, path)
                if dev is not None:
                    ref["reference"] = f"Device/{dev}"
            continue
        local = _local(entry)
        if local is None:
            text = f"refers to {target} (Bundle.entry[{entry.result.index}]), which was refused"
            problems.append(Issue("error", "invalid", text, f"Observation.{path}"))
        else:
            ref["reference"] = local
            if entry.rtype == "Patient":
                ref.pop("display", None)
    return problems


def inherit_patient(ctx: Context, e: Entry) -> None:
    """An Observation about a device (the PHD coincident time stamp) belongs to the patient whose readings
    refer to it."""
    keys = {
        o.patient.key: o.patient
        for o in ctx.entries
        if o.rtype == "Observation"
        and o.patient is not None
        and not o.failed
        # a reference to this entry, as its fullUrl or relative to it (Observation/<id>): resolved alike
        and any(ctx.by_url.get(ref) is e for ref in references(o.resource))
    }
    if len(keys) == 1:
        e.patient = next(iter(keys.values()))
    elif not keys:
        text = (
            "an Observation about a device (e.g. a PHD coincident time stamp) is accepted only beside a patient's"
            " Observation in the same Bundle that refers to it"
        )
        e.fail(Issue("error", "business-rule", text, "Observation.subject"))
    else:
        text = (
            "an Observation about a device is referred to by Observations of more than one patient; send one"
            " Bundle per patient"
        )
        e.fail(Issue("error", "not-supported", text, "Observation.subject"))


def gateway_time(ctx: Context, e: Entry) -> datetime:
    """The gateway's receive time: its own extension, the coincident time stamp's effective time, the
    Bundle's timestamp, the request time."""
    zone = ctx.rt.local_zone
    for ext in e.resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == EXT_GATEWAY_RECEIVED:
            parsed = local_instant(ext.get("valueDateTime"), zone)
            if parsed is not None:
                return parsed
    if e.subject_device and e.effective and first_code(e.resource) == MDC_TIME_ABS:
        return e.effective[0]  # a coincident time stamp: its effective time is the gateway's clock
    for ext in e.resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == CTS_REFERENCE and isinstance(ext.get("valueReference"), dict):
            target = str(ext["valueReference"].get("reference"))
            cts = ctx.by_url.get(target)
            if cts is not None and cts.effective is not None:
                return cts.effective[0]
            if cts is None and target.startswith("Observation/"):  # a time stamp sent in an earlier upload
                row = observations.code_time_patient(ctx.session, target.removeprefix("Observation/"))
                if row is not None and row.code == MDC_TIME_ABS and e.patient is not None:
                    if row.patient_key == e.patient.key:
                        return from_store(row.effective_start)
    stamp = ctx.raw.get("timestamp") if ctx.mode != "single" else None
    return local_instant(stamp, zone) or ctx.request_time
