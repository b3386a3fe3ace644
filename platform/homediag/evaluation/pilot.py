"""A demo pilot with research consents, for the committed example report and the tests.

The demo (``homediag.demo``) records treatment consents only, so an evaluator would receive nothing.
This adds, through the same enrolment code the API uses, research (HRESCH) consents in a fixed plan:
some patients give none, some only for data from a date on (a consent ``dataPeriod``), some withdraw,
the rest consent to all their data; and an evaluator user of FIERS. All of it is synthetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from homediag.consent import COPENHAGEN, treatment_consent
from homediag.demo import DEMO_ADMIN, DemoPilot, build_demo
from homediag.enrolment import record_consent
from homediag.users import create_user

EVALUATOR_ORGANISATION = "FIERS (synthetic)"
PERIOD_DAYS = 10  # a dataPeriod consent covers the last PERIOD_DAYS days of data only


def research_plan(count: int) -> list[str]:
    """none | period | withdrawn | research, per patient, in enrolment order."""
    plan = []
    for i in range(count):
        if i % 5 == 0:
            plan.append("none")
        elif i % 7 == 2:
            plan.append("period")
        elif i % 9 == 4:
            plan.append("withdrawn")
        else:
            plan.append("research")
    return plan


@dataclass
class ResearchPilot:
    demo: DemoPilot
    evaluator_token: str
    evaluator_id: str
    research: dict[str, str] = field(default_factory=dict)  # patient id -> plan
    period_start: datetime | None = None

    @property
    def runtime(self) -> Any:
        return self.demo.runtime


def build_research_pilot(directory: Path, *, patients: int = 40, days: int = 42, seed: int = 2026) -> ResearchPilot:
    demo = build_demo(directory, patients=patients, days=days, seed=seed, research=False)  # its own plan below
    rt = demo.runtime
    assert rt is not None
    with rt.sessions.begin() as session:
        user, token = create_user(session, name="FIERS evaluator (synthetic)", role="evaluator",
                                  organisation=EVALUATOR_ORGANISATION)  # fmt: skip
        evaluator_id = user.id
    start_all = (datetime.now(COPENHAGEN) - timedelta(days=days + 1)).date()
    period_start = (datetime.now(COPENHAGEN) - timedelta(days=PERIOD_DAYS)).replace(microsecond=0)
    pilot = ResearchPilot(demo, token, evaluator_id, period_start=period_start)
    for patient, plan in zip(demo.patients, research_plan(len(demo.patients)), strict=True):
        pilot.research[patient["id"]] = plan
        if plan == "none":
            continue
        ref = f"Patient/{patient['id']}"
        resource = treatment_consent(ref, purposes=("HRESCH",), scope="research", start=start_all)
        if plan == "period":  # only data from period_start on
            resource["provision"]["dataPeriod"] = {"start": period_start.isoformat()}
        made = record_consent(rt, DEMO_ADMIN, resource)
        if plan == "withdrawn":
            record_consent(rt, DEMO_ADMIN, {**made, "status": "inactive"}, consent_id=made["id"])
    acknowledge_alerts(pilot, start_all)
    return pilot


def acknowledge_alerts(pilot: ResearchPilot, since: date) -> int:
    """The demo clinician's reviews, through the workspace's own acknowledge (Task and Provenance): every third
    day, some hours later (per patient), the red and yellow readings of the days before, and the green ones of
    every other patient; every fourth patient's alerts are never acknowledged. The runtime's clock is set to each
    review's time while it is recorded, and put back. Returns how many reviews were recorded."""
    from homediag.access import AccessService
    from homediag.errors import Forbidden, NotFound
    from homediag.monitoring import store
    from homediag.monitoring.triage import Colour
    from homediag.store import models as m
    from homediag.users import authenticate

    rt = pilot.runtime
    access = AccessService(rt)
    with rt.sessions() as session:
        clinician = authenticate(session, pilot.demo.tokens["clinician"])
        keys = dict(session.execute(select(m.Patient.id, m.Patient.patient_key)).all())
    assert clinician is not None
    now = rt.clock()
    first = datetime.combine(since, time(8), COPENHAGEN)
    reviews = 0
    real_clock = rt.clock
    try:
        for i, patient in enumerate(pilot.demo.patients):
            if i % 4 == 3:
                continue
            lag = timedelta(hours=1 + 5 * (i % 6), minutes=7 * i)
            window = first
            while window < now:
                end = min(window + timedelta(days=3), now)
                at = end + lag
                if at >= now:
                    break
                with rt.sessions() as session:
                    readings = store.triaged_readings(session, keys[patient["id"]], window, end)
                alerts = [r.id for r in readings if r.colour in (Colour.RED, Colour.YELLOW) and not r.acknowledged]
                rt.clock = lambda at=at: at  # type: ignore[misc]
                try:
                    if alerts:
                        access.acknowledge(clinician, patient["id"], observation_ids=alerts)
                        reviews += 1
                    if i % 2 == 0 and any(r.colour == Colour.GREEN for r in readings):
                        access.acknowledge(clinician, patient["id"], all_green=(window, end))
                        reviews += 1
                except (NotFound, Forbidden):  # not the clinician's to read (no treatment consent then)
                    pass
                rt.clock = real_clock
                window = end
    finally:
        rt.clock = real_clock
    return reviews


def write_example(out: Path, *, patients: int = 40, days: int = 42) -> dict[str, Any]:
    """The committed example (``docs/examples/evaluation/``): a research pilot, its export and its report."""
    import shutil
    import tempfile

    from homediag.access import AccessService
    from homediag.evaluation.export import export
    from homediag.evaluation.report import Parameters, render
    from homediag.users import Principal

    with tempfile.TemporaryDirectory(prefix="homediag-example-") as tmp:
        pilot = build_research_pilot(Path(tmp) / "demo", patients=patients, days=days)
        rt = pilot.runtime
        evaluator = Principal(pilot.evaluator_id, "FIERS evaluator (synthetic)", "evaluator", EVALUATOR_ORGANISATION)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        export(AccessService(rt), evaluator, out / "export", pilot=rt.settings.pilot)
        end = datetime.now(COPENHAGEN).date()
        made = render(out / "export", out, Parameters(rt.settings.pilot, end - timedelta(days=days + 7), end))
        rt.close()
    return made


if __name__ == "__main__":  # python -m homediag.evaluation.pilot docs/examples/evaluation
    import sys

    print(write_example(Path(sys.argv[1]))["stamp"])
