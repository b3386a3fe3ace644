"""The tidy tables of the evaluation export: their columns (name, Arrow type, unit, code system, meaning),
and the rows made from what the access layer returns for the evaluator.

One row per observation per measured quantity (``readings``), per day, adapter, vendor, outcome and
reason (``uploads``), per ISO week and cohort event (``events``). The codebook is generated from the
same column definitions, so that it cannot drift from the files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from homediag.access.evaluation import CohortEvent, EvaluatedReading, UploadOutcomes
from homediag.fhir_profiles import terminology
from homediag.fhir_profiles.builder import EXT_DEVICE_TIME

COPENHAGEN = ZoneInfo("Europe/Copenhagen")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    meaning: str
    unit: str | None = None
    code_system: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    row: str  # what one row is
    columns: tuple[Column, ...]
    note: str = ""

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])


READINGS = Table(
    "readings",
    "one measured quantity of one Observation (a blood-pressure reading gives a systolic, a diastolic and a "
    "mean-arterial-pressure row; its pulse rate is an Observation of its own)",
    (
        Column("reading", pa.string(), "the Observation's id in the evaluator's pseudonym domain"),
        Column("patient", pa.string(), "the patient's id in the evaluator's pseudonym domain (stable across exports)"),
        Column("device", pa.string(), "the device's id in the evaluator's pseudonym domain; null if none"),
        Column("vendor", pa.string(), "the device's manufacturer (an organisation) as the gateway named it"),
        Column("adapter", pa.string(), "the platform adapter that decoded the upload (homediag adapter id)"),
        Column(
            "observation_code",
            pa.string(),
            "the Observation's code (LOINC where the terminology has one, else MDC)",
            code_system="http://loinc.org or urn:iso:std:iso:11073:10101",
        ),
        Column("quantity", pa.string(), "what the row measures: the homediag measurement key (docs/profiles.md)"),
        Column(
            "code",
            pa.string(),
            "the quantity's code (LOINC where there is one, else MDC)",
            code_system="http://loinc.org or urn:iso:std:iso:11073:10101",
        ),
        Column("value", pa.float64(), "the measured value (a status bit: 1 set, 0 clear)", unit="see unit"),
        Column("unit", pa.string(), "the value's unit", code_system="UCUM (http://unitsofmeasure.org)"),
        Column(
            "effective",
            pa.timestamp("us", tz="UTC"),
            "when the reading was taken, as the access layer shows it to this evaluator (shifted per patient "
            "where the deployment shifts evaluator times)",
            unit="UTC, microseconds",
        ),
        Column("local_date", pa.date32(), "the day of 'effective' in Europe/Copenhagen"),
        Column("status", pa.string(), "Observation.status", code_system="http://hl7.org/fhir/observation-status"),
        Column(
            "device_clock_set",
            pa.bool_(),
            "false when the device's clock could not date the reading (the gateway's receive time stands in)",
        ),
        Column(
            "delay_device_to_gateway_s",
            pa.float64(),
            "the gateway's receive time minus the reading's time (negative: the device clock runs ahead)",
            unit="s",
        ),
        Column(
            "delay_gateway_to_platform_s",
            pa.float64(),
            "the platform's receive time minus the gateway's receive time",
            unit="s",
        ),
    ),
)

UPLOADS = Table(
    "uploads",
    "the uploads of one day, adapter, vendor, outcome and reason (a count; no patient, device or payload)",
    (
        Column("day", pa.date32(), "the day the platform received the uploads, Europe/Copenhagen"),
        Column("adapter", pa.string(), "homediag adapter id ('unknown': none could be named)"),
        Column("vendor", pa.string(), "the device's manufacturer ('unknown': refused before a device was known)"),
        Column(
            "outcome",
            pa.string(),
            "created | duplicate | held | discarded | rejected (docs/architecture.md, the ingest contract)",
        ),
        Column(
            "reason",
            pa.string(),
            "'accepted', or the first issue's type and the element at fault, without its free text",
            code_system="http://hl7.org/fhir/issue-type and the envelope / FHIR element path",
        ),
        Column("uploads", pa.int64(), "the number of uploads", unit="count"),
    ),
    note="Uploads of patients whose research consent covers the upload's time, and uploads refused before any "
    "patient was identified. Exact counts: suppression of small counts is the report's, not the export's.",
)

EVENTS = Table(
    "events",
    "the patients with one cohort event in one ISO week (a count; no patient named)",
    (
        Column("week", pa.date32(), "the Monday of the ISO week, Europe/Copenhagen"),
        Column("event", pa.string(), "enrolled | research-consent (given) | research-withdrawn"),
        Column("patients", pa.int64(), "the number of patients", unit="count"),
    ),
    note="Counted over the whole pilot, consenting or not: the denominators of enrolment and retention.",
)

TABLES = (READINGS, UPLOADS, EVENTS)

NOT_YET = {
    "alerts": "alerts raised on readings and their acknowledgements (time to acknowledge): added once the "
    "clinician workspace records them; the platform does not record them yet",
}


@lru_cache(maxsize=1024)
def _identify(codings: tuple[tuple[str, str], ...]) -> terminology.Measurement | None:
    return terminology.identify({"coding": [{"system": s, "code": c} for s, c in codings]})


def identify(concept: dict[str, Any] | None) -> terminology.Measurement | None:
    """The measurement a CodeableConcept names (``terminology.identify``, cached: an export asks a million times)."""
    codings = (concept or {}).get("coding") or []
    return _identify(tuple((str(c.get("system")), str(c.get("code"))) for c in codings if isinstance(c, dict)))


def _code(measurement: terminology.Measurement | None, concept: dict[str, Any] | None) -> str | None:
    if measurement is not None:
        coding = measurement.loinc or measurement.mdc
        return coding.code if coding else None
    codings = (concept or {}).get("coding") or []
    return str(codings[0].get("code")) if codings else None


def _ref(resource: dict[str, Any], key: str) -> str | None:
    ref = (resource.get(key) or {}).get("reference")
    return ref.split("/", 1)[1] if isinstance(ref, str) and "/" in ref else None


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=COPENHAGEN)


def reading_rows(reading: EvaluatedReading) -> Iterator[dict[str, Any]]:
    """The tidy rows of one Observation as the evaluator received it."""
    r = reading.resource
    effective = _time(r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start"))
    measured = identify(r.get("code"))
    clock_set = not any(e.get("url") == EXT_DEVICE_TIME for e in r.get("extension") or [])
    common = {
        "reading": r.get("id"),
        "patient": _ref(r, "subject"),
        "device": _ref(r, "device"),
        "vendor": reading.vendor,
        "adapter": reading.adapter,
        "observation_code": _code(measured, r.get("code")),
        "effective": effective.astimezone(UTC) if effective else None,
        "local_date": effective.astimezone(COPENHAGEN).date() if effective else None,
        "status": r.get("status"),
        "device_clock_set": clock_set,
        "delay_device_to_gateway_s": reading.device_to_gateway_s,
        "delay_gateway_to_platform_s": reading.gateway_to_platform_s,
    }
    parts = [(r.get("code"), r)] + [(c.get("code"), c) for c in r.get("component") or []]
    for concept, holder in parts:
        if "valueQuantity" in holder:
            quantity = holder["valueQuantity"]
            value, unit = quantity.get("value"), quantity.get("code") or quantity.get("unit")
        elif "valueBoolean" in holder:
            value, unit = (1.0 if holder["valueBoolean"] else 0.0), "1"
        else:
            continue
        m = identify(concept)
        yield {
            **common,
            # a status bit is a component of the status Observation; it is named by the Observation's measurement
            "quantity": m.key if m else (measured.key if measured else None),
            "code": _code(m, concept),
            "value": float(value) if value is not None else None,
            "unit": unit,
        }


def batches(rows: Iterable[dict[str, Any]], table: Table, size: int) -> Iterator[pa.RecordBatch]:
    """Rows gathered into Arrow record batches of ``size`` rows (columns built once per batch)."""
    names = [c.name for c in table.columns]
    buffer: dict[str, list[Any]] = {n: [] for n in names}
    filled = 0
    for row in rows:
        for n in names:
            buffer[n].append(row.get(n))
        filled += 1
        if filled == size:
            yield pa.RecordBatch.from_pydict(buffer, schema=table.schema)
            buffer = {n: [] for n in names}
            filled = 0
    if filled:
        yield pa.RecordBatch.from_pydict(buffer, schema=table.schema)


def upload_rows(outcomes: Iterable[UploadOutcomes]) -> Iterator[dict[str, Any]]:
    for o in outcomes:
        yield {"day": o.day, "adapter": o.adapter, "vendor": o.vendor, "outcome": o.outcome, "reason": o.reason,
               "uploads": o.uploads}  # fmt: skip


def event_rows(events: Iterable[CohortEvent]) -> Iterator[dict[str, Any]]:
    for e in events:
        yield {"week": e.week, "event": e.event, "patients": e.patients}
