"""The adapter registry: adapter id to adapter."""

from __future__ import annotations

from typing import Any, Protocol

from .blood_pressure import BleBloodPressureAdapter
from .readings import Reading


class Adapter(Protocol):
    """What an adapter is: an id, a description, what it reads, and ``decode``.

    ``input_kind`` is ``"bytes"`` (the envelope's ``payload_hex`` or ``payload_base64``; Bluetooth
    characteristics, HL7 v2 messages) or ``"json"`` (the envelope's ``data`` object; vendor cloud
    JSON). ``decode`` takes that payload and returns readings, or raises
    :class:`~homediag.adapters.devices.errors.DecodeError` saying what is wrong and where.
    """

    id: str
    description: str
    input_kind: str
    reads: tuple[str, ...]

    def decode(self, payload: Any) -> list[Reading]: ...


class UnknownAdapter(LookupError):
    def __init__(self, adapter_id: str, known: list[str]) -> None:
        self.adapter_id = adapter_id
        super().__init__(f"no adapter '{adapter_id}'; known adapters: {', '.join(known)}")


_ADAPTERS: dict[str, Adapter] = {a.id: a for a in (BleBloodPressureAdapter(),)}


def get(adapter_id: str) -> Adapter:
    try:
        return _ADAPTERS[adapter_id]
    except KeyError:
        raise UnknownAdapter(adapter_id, sorted(_ADAPTERS)) from None


def all_adapters() -> list[Adapter]:
    return [_ADAPTERS[k] for k in sorted(_ADAPTERS)]
