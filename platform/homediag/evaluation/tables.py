"""The tidy tables of the evaluation export: their columns (name, Arrow type, unit, code system, meaning),
and the rows made from what the access layer returns for the evaluator.

One row per observation per measured quantity (``readings``), per day, adapter, vendor, outcome and
reason (``uploads``), per ISO week and cohort event (``events``). The codebook is generated from the
same column definitions, so that it cannot drift from the files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from homediag.access.evaluation import CohortEvent, EvaluatedAcknowledgement, EvaluatedAlert, UploadOutcomes
from homediag.fhir_profiles import terminology

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

_DELAYS = (
    Column(
        "delay_reading_to_acknowledgement_s",
        pa.float64(),
        "the first acknowledgement's time minus the reading's time (null: not acknowledged)",
        unit="s",
    ),
    Column(
        "delay_arrival_to_acknowledgement_s",
        pa.float64(),
        "the first acknowledgement's time minus the platform's receive time (null: not acknowledged)",
        unit="s",
    ),
)

ALERTS = Table(
    "alerts",
    "one reading that monitoring triaged red or yellow (by the patient's thresholds in force at its time)",
    (
        Column("reading", pa.string(), "the Observation's id in the evaluator's pseudonym domain (as in readings)"),
        Column("patient", pa.string(), "the patient's id in the evaluator's pseudonym domain"),
        Column(
            "colour",
            pa.string(),
            "red | yellow: the reading's triage (the worst of its values)",
            code_system="homediag monitoring triage (docs/monitoring.md)",
        ),
        Column(
            "measures", pa.string(), "the measures at that colour, comma-separated (systolic, diastolic, pulse, ...)"
        ),
        Column(
            "effective",
            pa.timestamp("us", tz="UTC"),
            "when the reading was taken, shifted per patient like readings.effective",
            unit="UTC, microseconds",
        ),
        Column("local_date", pa.date32(), "the day of 'effective' in Europe/Copenhagen"),
        Column("acknowledged", pa.bool_(), "whether a clinician has acknowledged the reading"),
        *_DELAYS,
    ),
    note="Triaged by the same engine as the clinician's worklist (homediag.monitoring), for the readings the "
    "evaluator receives. No reason text, threshold or clinician is exported.",
)

ACKNOWLEDGEMENTS = Table(
    "acknowledgements",
    "the first acknowledgement of one reading by a clinician (a review recorded as a FHIR Task and Provenance)",
    (
        Column("reading", pa.string(), "the Observation's id in the evaluator's pseudonym domain (as in readings)"),
        Column("patient", pa.string(), "the patient's id in the evaluator's pseudonym domain"),
        Column(
            "colour",
            pa.string(),
            "the reading's triage colour when it was acknowledged: red | yellow | blue | green",
            code_system="homediag monitoring triage (docs/monitoring.md)",
        ),
        Column(
            "review", pa.string(), "readings (acknowledged one by one) | all-green (every green reading of a period)"
        ),
        Column(
            "acknowledged",
            pa.timestamp("us", tz="UTC"),
            "when it was acknowledged, shifted per patient like readings.effective",
            unit="UTC, microseconds",
        ),
        *_DELAYS,
    ),
    note="Who acknowledged, and any note, are never exported.",
)

TABLES = (READINGS, UPLOADS, EVENTS, ALERTS, ACKNOWLEDGEMENTS)

NOT_YET: dict[str, str] = {}


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


@lru_cache(maxsize=1)
def _by_primary() -> dict[str, terminology.Measurement]:
    return {mm.primary_code: mm for mm in terminology.MEASUREMENTS.values()}


def _named(primary: str | None) -> tuple[str | None, str | None]:
    """(quantity, code) of an Observation by its primary code (the store's ``observation.code``)."""
    found = _by_primary().get(primary or "")
    return (found.key, _code(found, None)) if found is not None else (None, primary or None)


@lru_cache(maxsize=4096)
def _component(text: str) -> tuple[str | None, str | None]:
    """(quantity, code) of a component by its code (a CodeableConcept as JSON text); quantity None if unknown."""
    try:
        concept = json.loads(text)
    except ValueError:
        return None, None
    concept = concept if isinstance(concept, dict) else None
    found = identify(concept)
    return (found.key if found else None), _code(found, concept)


def _mapped(column: pa.Array, lookup: Any, index: int) -> pa.Array:
    """``lookup(value)[index]`` for every value of a string column, computed once per distinct value."""
    encoded = column.dictionary_encode()
    values = [lookup(v)[index] if v is not None else None for v in encoded.dictionary.to_pylist()]
    return pa.array(values, pa.string()).take(encoded.indices)


def reading_table(page: pa.Table) -> pa.Table:
    """The tidy rows (``READINGS``) of a page of readings as the access layer returns them for the evaluator
    (``access.evaluation.reading_page()``): an Observation's own value as one row, each component with a value as
    one row after it; vectorised in Arrow, codes looked up once per distinct code."""
    page = pa.RecordBatch.from_arrays([c.combine_chunks() for c in page.columns], schema=page.schema)
    n = page.num_rows
    order = pa.array(range(n), pa.int64())
    own = pc.and_(page["first"], page["has_value"])
    parts = pc.fill_null(page["component_has_value"], False)
    primary = page["primary_code"]
    quantity, code = _mapped(primary, _named, 0), _mapped(primary, _named, 1)
    common = {
        "reading": page["reading"],
        "patient": page["patient"],
        "device": page["device"],
        "vendor": page["vendor"],
        "adapter": page["adapter"],
        "observation_code": code,
    }
    effective = page["effective"]
    local = pc.local_timestamp(effective.cast(pa.timestamp("us", tz=str(COPENHAGEN)))).cast(pa.date32())
    tail = {
        "effective": effective,
        "local_date": local,
        "status": page["status"],
        "device_clock_set": page["device_clock_set"],
        "delay_device_to_gateway_s": page["delay_device_to_gateway_s"],
        "delay_gateway_to_platform_s": page["delay_gateway_to_platform_s"],
    }
    comp_quantity = _mapped(page["component_code"], _component, 0)
    # a status bit is a component of the status Observation; it is named by the Observation's measurement
    comp_quantity = pc.coalesce(comp_quantity, quantity)
    rows = [
        (own, pc.multiply(order, 2), quantity, code, page["value"], page["unit"]),
        (parts, pc.add(pc.multiply(order, 2), 1), comp_quantity, _mapped(page["component_code"], _component, 1),
         page["component_value"], page["component_unit"]),
    ]  # fmt: skip
    tables = []
    for mask, rank, q, c, v, u in rows:
        columns = {**common, "quantity": q, "code": c, "value": v, "unit": u, **tail}
        table = pa.table({name: columns[name] for name in READINGS.schema.names}, schema=READINGS.schema)
        tables.append(table.append_column("_rank", rank).filter(mask))
    out = pa.concat_tables(tables)
    return out.take(pc.sort_indices(out["_rank"])).drop_columns(["_rank"])


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


def _local_date(moment: datetime) -> date:
    return moment.astimezone(COPENHAGEN).date()


def alert_rows(alerts: Iterable[EvaluatedAlert]) -> Iterator[dict[str, Any]]:
    for a in alerts:
        yield {"reading": a.reading, "patient": a.patient, "colour": a.colour, "measures": a.measures,
               "effective": a.effective.astimezone(UTC), "local_date": _local_date(a.effective),
               "acknowledged": a.to_acknowledge_s is not None,
               "delay_reading_to_acknowledgement_s": a.to_acknowledge_s,
               "delay_arrival_to_acknowledgement_s": a.arrival_to_acknowledge_s}  # fmt: skip


def acknowledgement_rows(acks: Iterable[EvaluatedAcknowledgement]) -> Iterator[dict[str, Any]]:
    for a in acks:
        yield {"reading": a.reading, "patient": a.patient, "colour": a.colour, "review": a.scope,
               "acknowledged": a.acknowledged.astimezone(UTC),
               "delay_reading_to_acknowledgement_s": a.to_acknowledge_s,
               "delay_arrival_to_acknowledgement_s": a.arrival_to_acknowledge_s}  # fmt: skip


def event_rows(events: Iterable[CohortEvent]) -> Iterator[dict[str, Any]]:
    for e in events:
        yield {"week": e.week, "event": e.event, "patients": e.patients}
