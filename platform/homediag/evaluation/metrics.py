"""The pilot metrics: SQL (DuckDB) over the evaluation export, then small-cell suppression.

Definitions (the report's methods section repeats them):
- patient-week: an ISO week (Monday to Sunday, Europe/Copenhagen) from the week of a patient's first
  reading in the period to the week of its last; adherence is the number of days in it with a reading,
  published in bands (0, 1-3, 4-6, 7 days) so that fewer counts fall under 5.
- study week: weeks since the patient's first reading (1 = the week of the first reading); retention is
  the number of patients still measuring in that study week (their last reading is that week or later).
- home blood pressure under 135/85: the week's mean systolic under 135 mmHg and mean diastolic under
  85 mmHg, over every blood-pressure reading of the patient in that week.
- delays: device time to the gateway's receive time, and the gateway's to the platform's.
- clock fault: a reading the device's clock could not date, or whose device time is more than an hour
  from the gateway's receive time.
- alert: a reading monitoring triaged red or yellow (the patient's thresholds in force at its time); alerts per
  patient-week: the week's alerts over its patient-weeks.
- time to acknowledge: from the reading's time (and from its arrival at the platform) to the first
  acknowledgement by a clinician; median and 90th percentile per colour over the acknowledged alerts.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from .suppression import ALL, Cube, Result, suppress, table_keys

CLOCK_SKEW_S = 3600
DAYS = ("0", "1-3", "4-6", "7")  # days with a reading in a patient-week, in bands
BP = ("under", "over", "none")
COLOURS = ("red", "yellow")
WITHIN = ("1 h", "1-24 h", "1-3 days", "over 3 days", "not acknowledged")  # time to the first acknowledgement


@dataclass
class Metrics:
    period: tuple[date, date]
    adherence: Result  # cube (week, days, bp): adherence and clinical tables
    retention: Result  # cube (study_week,)
    events: Result  # cube (week, event)
    uploads: Result  # cube (reason, vendor, adapter)
    clock: Result  # cube (vendor, fault)
    readings: Result  # cube (week,): readings received per week
    delays: list[dict[str, Any]]  # per week: readings, patients, median and p90 delays (None where < 5 patients)
    alerts: Result  # cube (week, colour): readings triaged red or yellow
    acknowledged: Result  # cube (colour, within): alerts by the time to their first acknowledgement, in bands
    alert_rates: list[dict[str, Any]]  # per week: alerts per patient-week (None where a count is suppressed)
    to_acknowledge: list[dict[str, Any]]  # per colour: median and p90 hours (None where < 5 patients)
    # the export's readings and the patients the period's edges cut (``_coverage``); those dated in the period are
    # the readings cube's total
    coverage: dict[str, int] = field(default_factory=dict)

    @property
    def results(self) -> list[Result]:
        return [self.events, self.retention, self.adherence, self.readings, self.uploads, self.clock, self.alerts,
                self.acknowledged]  # fmt: skip


def _source(directory: Path, table: str) -> str:
    parquet = sorted(directory.glob(f"{table}*.parquet")) + sorted(directory.glob(f"{table}/*.parquet"))
    if parquet:
        return f"read_parquet({[str(p) for p in parquet]!r})"
    csv = sorted(directory.glob(f"{table}*.csv")) + sorted(directory.glob(f"{table}/*.csv"))
    return f"read_csv({[str(p) for p in csv]!r}, header=true, auto_detect=true)"


# DuckDB's memory for the metrics, and where it spills beyond it: with the libraries (about 260 MB) the process
# stays under issue 13's 500 MB for 1 M readings; the queries need less (spilling only if a pilot is much larger)
MEMORY_LIMIT = "100MB"


def _connect(directory: Path, start: date, end: date, spill: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": 2, "memory_limit": MEMORY_LIMIT, "temp_directory": spill})
    con.execute(f"CREATE VIEW readings_all AS SELECT * FROM {_source(directory, 'readings')}")
    con.execute(
        "CREATE VIEW readings AS SELECT * FROM readings_all WHERE local_date BETWEEN ? AND ?".replace(
            "?", "'{}'"
        ).format(start.isoformat(), end.isoformat())
    )
    con.execute(f"CREATE VIEW uploads AS SELECT * FROM {_source(directory, 'uploads')} "
                f"WHERE day BETWEEN DATE '{start}' AND DATE '{end}'")  # fmt: skip
    for name in ("alerts", "acknowledgements"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {_source(directory, name)} "
                    f"WHERE local_date BETWEEN DATE '{start}' AND DATE '{end}'" if name == "alerts" else
                    f"CREATE VIEW {name} AS SELECT * FROM {_source(directory, name)}")  # fmt: skip
    con.execute(f"CREATE VIEW events AS SELECT * FROM {_source(directory, 'events')} "
                f"WHERE week BETWEEN DATE '{start}' - INTERVAL 6 DAY AND DATE '{end}'")  # fmt: skip
    return con


PATIENT_WEEKS = """
WITH days AS (
    SELECT patient, local_date AS day, date_trunc('week', local_date)::DATE AS week FROM readings GROUP BY ALL
), spans AS (
    SELECT patient, min(week) AS first_week, max(week) AS last_week FROM days GROUP BY patient
), weeks AS (
    SELECT patient, first_week, unnest(range(first_week, last_week + INTERVAL 1 DAY, INTERVAL 7 DAY))::DATE AS week
    FROM spans
), bp AS (
    SELECT patient, date_trunc('week', local_date)::DATE AS week,
           avg(value) FILTER (WHERE quantity = 'systolic') AS sys,
           avg(value) FILTER (WHERE quantity = 'diastolic') AS dia
    FROM readings WHERE quantity IN ('systolic', 'diastolic') GROUP BY ALL
)
SELECT w.week, (datediff('day', w.first_week, w.week) // 7 + 1)::INTEGER AS study_week,
       CASE count(DISTINCT d.day) WHEN 0 THEN '0' WHEN 7 THEN '7'
            WHEN 1 THEN '1-3' WHEN 2 THEN '1-3' WHEN 3 THEN '1-3' ELSE '4-6' END AS days,
       CASE WHEN bp.sys IS NULL OR bp.dia IS NULL THEN 'none' WHEN bp.sys < 135 AND bp.dia < 85 THEN 'under'
            ELSE 'over' END AS bp
FROM weeks w LEFT JOIN days d USING (patient, week) LEFT JOIN bp USING (patient, week)
GROUP BY w.patient, w.week, w.first_week, bp.sys, bp.dia
"""


def compute(directory: Path, start: date, end: date) -> Metrics:
    with tempfile.TemporaryDirectory(prefix="homediag-metrics-") as spill:
        return _compute(_connect(directory, start, end, spill), start, end)


def _compute(con: duckdb.DuckDBPyConnection, start: date, end: date) -> Metrics:
    con.execute(f"CREATE TEMP TABLE pw AS {PATIENT_WEEKS}")

    weeks = tuple(r[0] for r in con.execute("SELECT DISTINCT week FROM pw ORDER BY 1").fetchall())
    counts = {
        (w, d, b): n for w, d, b, n in con.execute("SELECT week, days, bp, count(*) FROM pw GROUP BY ALL").fetchall()
    }
    values = (weeks, DAYS, BP)
    published = table_keys(3, [0, 1], {}, values) + [k for k in table_keys(3, [0, 2], {}, values) if k[2] != ALL]
    adherence = suppress(
        Cube(
            "patient-weeks",
            ("week", "days", "bp"),
            values,
            counts,
            published,
            possible=lambda k: not (k[1] == 0 and k[2] != "none"),
        )  # fmt: skip
    )

    studies = tuple(r[0] for r in con.execute("SELECT DISTINCT study_week FROM pw ORDER BY 1").fetchall())
    retained = {(k,): n for k, n in con.execute("SELECT study_week, count(*) FROM pw GROUP BY 1").fetchall()}
    retention = suppress(Cube("retention", ("study_week",), (studies,), retained, table_keys(1, [0], {}, (studies,))))

    ev = con.execute("SELECT week, event, sum(patients)::BIGINT FROM events GROUP BY ALL").fetchall()
    ev_weeks = tuple(sorted({r[0] for r in ev}))
    kinds = ("enrolled", "research-consent", "research-withdrawn")
    ev_published = [k for k in table_keys(2, [0, 1], {}, (ev_weeks, kinds)) if k[1] != ALL]
    events = suppress(
        Cube("cohort-events", ("week", "event"), (ev_weeks, kinds), {(w, e): n for w, e, n in ev}, ev_published)
    )

    up = con.execute(
        "SELECT CASE WHEN outcome IN ('created', 'duplicate') THEN 'accepted' ELSE outcome || ': ' || reason END, "
        "vendor, adapter, sum(uploads)::BIGINT FROM uploads GROUP BY ALL"
    ).fetchall()
    up_values = tuple(tuple(sorted({r[i] for r in up})) for i in range(3))
    up_published = table_keys(3, [0, 1], {}, up_values) + [
        k for k in table_keys(3, [0, 2], {}, up_values) if k[2] != ALL
    ]
    uploads = suppress(Cube("uploads", ("outcome", "vendor", "adapter"), up_values, {(a, b, c): n for a, b, c, n in up},
                            up_published))  # fmt: skip

    clock_rows = con.execute(
        f"""SELECT coalesce(vendor, 'unknown'),
                   CASE WHEN NOT device_clock_set THEN 'clock not set'
                        WHEN abs(delay_device_to_gateway_s) > {CLOCK_SKEW_S} THEN 'clock off by more than 1 h'
                        ELSE 'ok' END AS fault, count(DISTINCT reading)
            FROM readings GROUP BY ALL"""
    ).fetchall()
    vendors = tuple(sorted({r[0] for r in clock_rows}))
    faults = ("ok", "clock not set", "clock off by more than 1 h")
    clock_counts = {(v, f): n for v, f, n in clock_rows}
    clock_keys = table_keys(2, [0, 1], {}, (vendors, faults))
    clock = suppress(Cube("clock-faults", ("vendor", "fault"), (vendors, faults), clock_counts, clock_keys))

    rd = con.execute(
        "SELECT date_trunc('week', local_date)::DATE, count(DISTINCT reading) FROM readings GROUP BY 1"
    ).fetchall()
    rweeks = tuple(sorted(r[0] for r in rd))
    readings = suppress(
        Cube("readings", ("week",), (rweeks,), {(w,): n for w, n in rd}, table_keys(1, [0], {}, (rweeks,)))
    )

    delays = [
        {
            "week": w,
            "patients": p,
            "median_device_to_gateway_s": a if p >= 5 else None,
            "p90_device_to_gateway_s": b if p >= 5 else None,
            "median_gateway_to_platform_s": c if p >= 5 else None,
            "p90_gateway_to_platform_s": d if p >= 5 else None,
        }
        for w, p, a, b, c, d in con.execute(
            """SELECT week, count(DISTINCT patient), median(d1), quantile_cont(d1, 0.9),
                      median(d2), quantile_cont(d2, 0.9)
               FROM (SELECT DISTINCT reading, patient, date_trunc('week', local_date)::DATE AS week,
                            delay_device_to_gateway_s AS d1, delay_gateway_to_platform_s AS d2 FROM readings)
               GROUP BY week ORDER BY week"""
        ).fetchall()
    ]
    al = con.execute(
        "SELECT date_trunc('week', local_date)::DATE, colour, count(*) FROM alerts GROUP BY ALL"
    ).fetchall()
    al_weeks = tuple(sorted(set(weeks) | {r[0] for r in al}))
    alerts = suppress(Cube("alerts", ("week", "colour"), (al_weeks, COLOURS), {(w, c): n for w, c, n in al},
                           table_keys(2, [0, 1], {}, (al_weeks, COLOURS))))  # fmt: skip
    alert_rates = []
    for w in al_weeks:
        n, pw = alerts.number((w, ALL)), adherence.number((w, ALL, ALL)) if w in weeks else None
        alert_rates.append({"week": w, "rate": n / pw if n is not None and pw else None})
    bands = """CASE WHEN delay_reading_to_acknowledgement_s IS NULL THEN 'not acknowledged'
                    WHEN delay_reading_to_acknowledgement_s <= 3600 THEN '1 h'
                    WHEN delay_reading_to_acknowledgement_s <= 86400 THEN '1-24 h'
                    WHEN delay_reading_to_acknowledgement_s <= 259200 THEN '1-3 days' ELSE 'over 3 days' END"""
    ack = con.execute(f"SELECT colour, {bands}, count(*) FROM alerts GROUP BY ALL").fetchall()
    within = (COLOURS, WITHIN)
    acknowledged = suppress(Cube("time-to-acknowledge", ("colour", "within"), within, {(c, b): n for c, b, n in ack},
                                 table_keys(2, [0, 1], {}, within)))  # fmt: skip
    to_acknowledge = [
        {
            "colour": c,
            "patients": p,
            "median_from_reading_h": a if p >= 5 else None,
            "p90_from_reading_h": b if p >= 5 else None,
            "median_from_arrival_h": d if p >= 5 else None,
            "p90_from_arrival_h": e if p >= 5 else None,
        }
        for c, p, a, b, d, e in con.execute(
            """SELECT colour, count(DISTINCT patient),
                      median(delay_reading_to_acknowledgement_s) / 3600,
                      quantile_cont(delay_reading_to_acknowledgement_s, 0.9) / 3600,
                      median(delay_arrival_to_acknowledgement_s) / 3600,
                      quantile_cont(delay_arrival_to_acknowledgement_s, 0.9) / 3600
               FROM alerts WHERE acknowledged GROUP BY colour ORDER BY colour"""
        ).fetchall()
    ]
    coverage = _coverage(con, start, end)
    con.close()
    return Metrics((start, end), adherence, retention, events, uploads, clock, readings, delays, alerts, acknowledged,
                   alert_rates, to_acknowledge, coverage)  # fmt: skip


def _coverage(con: duckdb.DuckDBPyConnection, start: date, end: date) -> dict[str, int]:
    """How the period meets the export: all its readings, and the patients with readings on both sides of an edge.
    An evaluator's dates are each patient's shifted by its own offset (up to 60 days either way), so the period's days
    cut each such patient at other real days; the report says so."""
    inside = f"local_date BETWEEN DATE '{start}' AND DATE '{end}'"
    readings = con.execute("SELECT count(DISTINCT reading) FROM readings_all").fetchone()
    cut = con.execute(
        f"SELECT count(*) FROM (SELECT patient FROM readings_all GROUP BY patient"
        f" HAVING bool_or({inside}) AND bool_or(NOT ({inside})))"
    ).fetchone()
    return {"readings": int(readings[0]) if readings else 0, "patients_cut": int(cut[0]) if cut else 0}
