"""The ingest envelope: what a gateway sends for one reading (see docs/architecture.md)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from homediag.adapters.devices import DecodeError


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


def redact(raw: Any) -> Any:
    """The envelope as sent, with the patient identifier value taken out (for upload-log readers)."""
    if not isinstance(raw, dict):
        return {"unreadable": True, "type": type(raw).__name__}
    out = dict(raw)
    patient = out.get("patient")
    if isinstance(patient, dict):
        # only the system is kept: a gateway that misnames the key ("valeu", "cpr") still sent a CPR
        out["patient"] = {k: (v if k == "system" else "[redacted]") for k, v in patient.items()}
    elif "patient" in out:
        out["patient"] = "[redacted]"
    return out
