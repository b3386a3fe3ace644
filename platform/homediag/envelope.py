"""The ingest envelope: what a gateway sends for one reading (see docs/architecture.md)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from homediag.adapters.devices import DecodeError
from homediag.adapters.devices.hl7v2 import redact_message
from homediag.identity import looks_like_cpr


class EnvelopeDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manufacturer: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    serial: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _identified(self) -> EnvelopeDevice:
        if not (self.serial or self.address):
            raise ValueError("a device needs a serial or an address to be told apart from others")
        return self


class EnvelopePatient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str
    value: str = Field(repr=False)  # a CPR: never in a repr, a log line or an error message


class EnvelopeGateway(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=100)
    software: str | None = Field(default=None, max_length=100)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter: str = Field(max_length=100)
    payload_hex: str | None = None
    payload_base64: str | None = None
    data: dict[str, Any] | None = None
    device: EnvelopeDevice
    patient: EnvelopePatient
    gateway: EnvelopeGateway | None = None
    received_at: AwareDatetime

    @model_validator(mode="after")
    def _one_payload(self) -> Envelope:
        given = [n for n in ("payload_hex", "payload_base64", "data") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"an envelope carries exactly one of payload_hex, payload_base64 or data; got {given or 'none'}"
            )
        return self

    @property
    def payload_field(self) -> str:
        return next(n for n in ("payload_hex", "payload_base64", "data") if getattr(self, n) is not None)

    def payload_json(self) -> dict[str, Any]:
        """The ``data`` object, for adapters that read vendor JSON."""
        if self.data is None:
            raise DecodeError("this adapter reads a JSON object: send it as data", field="data")
        return self.data

    def payload_bytes(self) -> bytes:
        """The payload as bytes; a DecodeError names the field when it is not valid hex or base64."""
        if self.payload_hex is not None:
            text = self.payload_hex.replace(" ", "").replace(":", "")
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise DecodeError(
                    "not valid hexadecimal (an even number of 0-9/a-f digits)", field="payload_hex"
                ) from None
        if self.payload_base64 is not None:
            try:
                return base64.b64decode(self.payload_base64, validate=True)
            except (binascii.Error, ValueError):
                raise DecodeError("not valid base64", field="payload_base64") from None
        raise DecodeError("this adapter reads bytes: send payload_hex or payload_base64", field="data")


REDACTED = "[redacted]"
NAME_NOT_SHOWN = "[a field name not shown]"
MAX_READABLE_PAYLOAD = 64 * 1024  # characters of a payload shown in the upload log; the vault keeps it all
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
_PART = r"(?:[A-Za-z_][A-Za-z0-9_\-]{0,63}|\[a field name not shown\])(?:\[\d{1,6}\])?"
_DROPPED_PATH = re.compile(rf"{_PART}(?:\.{_PART}){{0,4}}")
_PAYLOAD_TEXT = re.compile(r"[0-9A-Za-z+/=: ]*")
# the envelope's objects and the length a string member may have to be shown
_KNOWN: dict[str, dict[str, int]] = {
    "device": {"manufacturer": 200, "model": 200, "serial": 200, "address": 64},
    "gateway": {"id": 100, "software": 100},
}
_TOP_TEXT = {"adapter": 100, "received_at": 64}
# JSON payloads: per adapter, the members of ``data`` (and of its ``measures[]``) and which may be text
_WITHINGS_GROUP = {"grpid", "attrib", "date", "created", "modified", "category", "deviceid", "timezone", "measures"}
_WITHINGS_MEASURE = {"value", "type", "unit", "algo", "fm"}
HL7V2_ADAPTER = "hl7v2-oru"


def _name(key: Any) -> str:
    """A field name as it may be listed: only a plain identifier that holds no CPR-like number."""
    return key if isinstance(key, str) and _SAFE_NAME.fullmatch(key) and not looks_like_cpr(key) else NAME_NOT_SHOWN


def _text(value: Any, limit: int) -> Any:
    """A known member's value when it is safe to show: a short string with no CPR-like number, a number, a
    boolean or null. Anything else is replaced."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and len(value) <= limit and not looks_like_cpr(value):
        return value
    return REDACTED


class _Readable:
    """Builds the readable copy and the list of what it left out (by name only)."""

    def __init__(self) -> None:
        self.dropped: list[str] = []

    def drop(self, where: str, key: Any) -> None:
        name = _name(key)
        self.dropped.append(f"{where}.{name}" if where else name)

    def object(self, value: Any, where: str, allowed: dict[str, int]) -> Any:
        if not isinstance(value, dict):
            return _text(value, 0) if value is None else REDACTED
        out: dict[str, Any] = {}
        for key, member in value.items():
            if key in allowed:
                out[key] = _text(member, allowed[key])
            else:
                self.drop(where, key)
        return out

    def patient(self, value: Any) -> Any:
        """The patient object keeps its system; its value (a CPR) is only said to be there."""
        if not isinstance(value, dict):
            return REDACTED
        out: dict[str, Any] = {}
        for key, member in value.items():
            if key == "system":
                out[key] = _text(member, 100)
            elif key == "value":
                out[key] = REDACTED
            else:
                self.drop("patient", key)
        return out

    def payload(self, adapter: Any, key: str, value: Any) -> Any:
        if key == "data":
            return self.data(adapter, value)
        if not isinstance(value, str):
            return REDACTED
        if len(value) > MAX_READABLE_PAYLOAD:
            return f"[{len(value)} characters: too long to show here; the upload log's sealed copy holds it]"
        if not _PAYLOAD_TEXT.fullmatch(value):
            return REDACTED
        if adapter == HL7V2_ADAPTER:
            return _redacted_hl7(key, value)
        return value  # the bytes of a Bluetooth characteristic: measurements, flags, times

    def data(self, adapter: Any, value: Any) -> Any:
        if adapter != "withings-measure" or not isinstance(value, dict):
            return "[a JSON payload this platform does not know how to redact; the sealed copy holds it]"
        out: dict[str, Any] = {}
        for key, member in value.items():
            if key not in _WITHINGS_GROUP:
                self.drop("data", key)
            elif key == "measures" and isinstance(member, list):
                out[key] = [
                    self.object(m, f"data.measures[{i}]", dict.fromkeys(_WITHINGS_MEASURE, 0))
                    for i, m in enumerate(member)
                ]
            else:
                out[key] = _text(member, 64 if key in ("deviceid", "timezone") else 0)
        return out


def _redacted_hl7(key: str, value: str) -> str:
    """An HL7 v2 payload with only the fields the adapter's allow-list keeps, in the form it was sent."""
    try:
        raw = (
            bytes.fromhex(value.replace(" ", "").replace(":", ""))
            if key == "payload_hex"
            else base64.b64decode(value, validate=True)
        )
        kept = redact_message(raw, identifying=looks_like_cpr)
    except (ValueError, binascii.Error, DecodeError):
        return "[an HL7 v2 payload that could not be read; the sealed copy holds it]"
    return kept.hex() if key == "payload_hex" else base64.b64encode(kept).decode()


def redact(raw: Any) -> Any:
    """The readable copy of an envelope for the upload log: an allow-list. Only the envelope's known
    members are kept, each only with a safe value (a short string holding no CPR-like number); the patient
    object keeps its system only; an HL7 v2 payload keeps only the fields its adapter's allow-list keeps
    (no PID, NK1, PV1, notes); a vendor's JSON only the members its adapter reads. Unknown members are
    left out and listed by name (a name that is not a plain identifier is not repeated either).
    Applying it to its own output gives the same output."""
    if not isinstance(raw, dict):
        return {"unreadable": True, "type": type(raw).__name__}
    if set(raw) <= {"unreadable", "type"} and raw.get("unreadable") is True:
        return {"unreadable": True, "type": _text(raw.get("type"), 40)}
    r = _Readable()
    adapter = raw.get("adapter")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _TOP_TEXT:
            out[key] = _text(value, _TOP_TEXT[key])
        elif key in _KNOWN:
            out[key] = r.object(value, key, _KNOWN[key])
        elif key == "patient":
            out[key] = r.patient(value)
        elif key in ("payload_hex", "payload_base64", "data"):
            out[key] = r.payload(adapter, key, value)
        elif key == "dropped" and isinstance(value, list):
            r.dropped.extend(_name_path(v) for v in value)  # the list of an earlier pass
        else:
            r.drop("", key)
    if r.dropped:
        out["dropped"] = sorted(set(r.dropped))
    return out


def _name_path(value: Any) -> str:
    """An entry of an earlier ``dropped`` list, kept when it is a path this module could have written."""
    if isinstance(value, str) and _DROPPED_PATH.fullmatch(value) and not looks_like_cpr(value):
        return value
    return NAME_NOT_SHOWN
