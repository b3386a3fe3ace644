"""Typed readings: what every adapter returns, whatever the device spoke.

A reading says what was measured (a key of the terminology table in ``homediag.fhir_profiles``),
the values with the unit the device used, the device's own clock reading, and any status the device
reported. Turning it into FHIR is the builder's job, not the adapter's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from .ieee11073 import Number

# what the platform does with a reading (see Reading.disposition)
Disposition = Literal["store", "hold", "discard"]


@dataclass(frozen=True, slots=True)
class DeviceTime:
    """A date-time exactly as the device's clock gave it.

    ``year`` is ``None`` when the device said "unknown" (0 in a Bluetooth Date Time); such a
    time is kept as the device's own, but cannot date the reading. ``utc_offset`` is set only when
    the device itself states its offset; otherwise the time is local time where the patient is.
    """

    year: int | None
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int
    utc_offset: timedelta | None = None

    @property
    def is_complete(self) -> bool:
        return self.year is not None and self.month != 0 and self.day != 0

    def as_naive_datetime(self) -> datetime | None:
        """The device time as a naive datetime, or None when the date is unknown or impossible."""
        if not self.is_complete:
            return None
        assert self.year is not None
        try:
            return datetime(self.year, self.month, self.day, self.hours, self.minutes, self.seconds)
        except ValueError:
            return None

    def text(self) -> str:
        """The time as the device sent it, ``0000`` standing for an unknown year."""
        year = f"{self.year:04d}" if self.year is not None else "0000"
        return f"{year}-{self.month:02d}-{self.day:02d}T{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}"


@dataclass(frozen=True, slots=True)
class Measured:
    """One measured quantity: a number (or special value) and the unit code the device used."""

    measurement: str
    number: Number
    unit: str


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading, compound (``components``) or single-valued (``value``).

    ``flags`` is the device's measurement status, every bit it reported by name (``None`` when the
    device sent no status). ``device_time`` is ``None`` when the payload carried no time at all.
    ``measurement`` and every ``Measured.measurement`` are keys of ``fhir_profiles/measurements.toml``.
    """

    measurement: str
    value: Measured | None = None
    components: tuple[Measured, ...] = ()
    device_time: DeviceTime | None = None
    flags: Mapping[str, bool] | None = None
    user_id: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # the device says its clock is not set: its time is kept but cannot date the reading
    clock_set: bool = True
    # the device marked the reading demo/test data: the Observation gets the security label HTEST
    test_data: bool = False
    # where on the body it was measured, as a SNOMED CT code and display
    body_site: tuple[str, str] | None = None
    # what the platform does with it: "store" (a patient's reading), "hold" (not assigned to the
    # patient automatically; kept in the upload log for review), "discard" (never a patient's
    # reading, e.g. a control-solution test); ``disposition_reason`` says why for hold and discard
    disposition: Disposition = "store"
    disposition_reason: str | None = None

    @property
    def disposition_text(self) -> str | None:
        """What happens to a reading that is not stored as the patient's, and why (None when it is)."""
        if self.disposition == "store":
            return None
        what = (
            "held for review, not assigned to the patient"
            if self.disposition == "hold"
            else "not a patient's reading; not stored"
        )
        return f"{self.measurement}: {what} ({self.disposition_reason or 'the adapter says so'})"

    @property
    def flags_set(self) -> tuple[str, ...]:
        return tuple(name for name, is_set in (self.flags or {}).items() if is_set)
