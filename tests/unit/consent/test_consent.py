"""Tests of homediag.consent: parsing FHIR R4 Consent, building it, and the access decision."""

from __future__ import annotations

import ast
import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.consent import Consent
from hypothesis import given, settings
from hypothesis import strategies as st

import homediag.consent
from homediag.consent import (
    ConsentError,
    ConsentRecord,
    DataWindow,
    Decision,
    Period,
    Provision,
    decide,
    parse_consent,
    permitted_data_window,
    treatment_consent,
    unchanged_around,
)

CPH = ZoneInfo("Europe/Copenhagen")
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PATIENT = "Patient/p-0001"


def cph(*args: int) -> datetime:
    """A Copenhagen wall-clock time."""
    return datetime(*args, tzinfo=CPH)


def purpose(code: str) -> dict[str, str]:
    return {"system": ACT_REASON, "code": code}


def resource(**provision: Any) -> dict[str, Any]:
    """A valid R4 Consent around ``provision`` (permit TREAT when not given)."""
    provision.setdefault("type", "permit")
    provision.setdefault("purpose", [purpose("TREAT")])
    return {
        "resourceType": "Consent",
        "id": "c1",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": PATIENT},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision,
    }


def consent(**kwargs: Any) -> ConsentRecord:
    return parse_consent(treatment_consent(PATIENT, **kwargs))


# --- treatment_consent and parse_consent -------------------------------------------------------


def test_treatment_consent_is_valid_r4_and_round_trips() -> None:
    built = treatment_consent(
        PATIENT,
        purposes=("TREAT", "HRESCH"),
        start=date(2026, 1, 1),
        end=date(2026, 12, 31),
        date_time=cph(2025, 12, 20, 10, 30),
    )
    Consent.model_validate(built)  # raises on any structural error
    assert built["policyRule"] or built["policy"]  # ppc-1, which the generated model does not check
    assert built["category"][0]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "59284-0",
        "display": "Patient Consent",
    }
    assert built["scope"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/consentscope"

    record = parse_consent(built)
    assert record.status == "active"
    assert record.scope == "treatment"
    assert record.patient == PATIENT
    assert record.date_time == cph(2025, 12, 20, 10, 30)
    assert record.provision_type == "permit"
    assert record.purposes == {"TREAT", "HRESCH"}
    assert record.period is not None
    assert (record.period.start_text, record.period.end_text) == ("2026-01-01", "2026-12-31")
    assert record.period.start == cph(2026, 1, 1)
    assert record.period.end == cph(2027, 1, 1)  # the end date covers its whole day
    assert record.data_period is None
    assert record.exceptions == ()


def test_treatment_consent_defaults() -> None:
    built = treatment_consent(PATIENT)
    assert built["status"] == "active"
    assert built["scope"]["coding"][0]["code"] == "treatment"
    assert built["provision"] == {"type": "permit", "purpose": [{**purpose("TREAT"), "display": "treatment"}]}
    assert "dateTime" not in built
    assert parse_consent(built).purposes == {"TREAT"}


def test_treatment_consent_with_instants_and_other_status() -> None:
    built = treatment_consent(
        PATIENT, start=cph(2026, 3, 1, 8, 0), end=datetime(2026, 9, 1, tzinfo=UTC), status="draft", scope="research"
    )
    assert built["provision"]["period"] == {"start": "2026-03-01T08:00:00+01:00", "end": "2026-09-01T00:00:00+00:00"}
    record = parse_consent(built)
    assert (record.status, record.scope) == ("draft", "research")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"purposes": ()},
        {"purposes": ("NOPE",)},
        {"scope": "everything"},
        {"status": "withdrawn"},
        {"start": datetime(2026, 1, 1)},  # naive
        {"start": date(2026, 2, 1), "end": date(2026, 1, 31)},
    ],
)
def test_treatment_consent_refuses_bad_input(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        treatment_consent(PATIENT, **kwargs)


def test_treatment_consent_refuses_empty_patient() -> None:
    with pytest.raises(ValueError):
        treatment_consent("  ")


def test_parse_keeps_nested_provisions_and_data_period() -> None:
    record = parse_consent(
        resource(
            purpose=[purpose("TREAT"), purpose("HRESCH")],
            dataPeriod={"start": "2026-01-01"},
            provision=[
                {
                    "type": "deny",
                    "purpose": [purpose("HRESCH")],
                    "dataPeriod": {"start": "2026-05-01", "end": "2026-05-31"},
                }
            ],
        )
    )
    assert record.id == "c1"
    assert record.data_period == Period.from_fhir("2026-01-01", None)
    (nested,) = record.exceptions
    assert nested.type == "deny"
    assert nested.purposes == {"HRESCH"}
    assert nested.data_period is not None and nested.data_period.end == cph(2026, 6, 1)


def test_one_day_period_is_valid() -> None:
    record = parse_consent(resource(period={"start": "2026-05-01", "end": "2026-05-01"}))
    assert record.period is not None
    assert (record.period.start, record.period.end) == (cph(2026, 5, 1), cph(2026, 5, 2))


def _set(path: str, value: Any) -> Any:
    """A change to a resource: set the element at the dotted ``path``."""

    def change(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = raw
        for part in parents:
            target = target[part]
        target[last] = value

    return change


def _without(path: str) -> Any:
    """A change to a resource: remove the element at the dotted ``path``."""

    def change(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = raw
        for part in parents:
            target = target[part]
        del target[last]

    return change


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (_without("status"), "Consent.status"),
        (_set("status", "withdrawn"), "Consent.status"),
        (_without("patient"), "Consent.patient"),
        (_set("patient", {"display": "someone"}), "Consent.patient.reference"),
        (_without("provision"), "Consent.provision"),
        (_without("policyRule"), "Consent"),
        (_set("resourceType", "Patient"), "Consent.resourceType"),
        (_set("scope", "treatment"), "Consent.scope"),
        (_set("provision.purpose", [{"system": ACT_REASON, "code": 5}]), "Consent.provision.purpose[0].code"),
        (_set("provision.purpose", [purpose("TREAT"), purpose("NOPE")]), "Consent.provision.purpose[1].code"),
        # a v3-ActReason code, but a reason for something else, not a purpose of use
        (_set("provision.purpose", [purpose("ACCREQNA")]), "Consent.provision.purpose[0].code"),
        (
            _set("provision.purpose", [{"system": "http://example.org/purposes", "code": "TREAT"}]),
            "Consent.provision.purpose[0].system",
        ),
        (_set("provision.purpose", [{"code": "TREAT"}]), "Consent.provision.purpose[0].system"),
        (_set("provision.type", "maybe"), "Consent.provision.type"),
        (_without("provision.type"), "Consent.provision.type"),
        (_set("provision.period", {"start": "2026-06-01", "end": "2026-05-31"}), "Consent.provision.period.end"),
        (
            _set("provision.period", {"start": "2026-06-01T12:00:00+02:00", "end": "2026-06-01T11:59:59+02:00"}),
            "Consent.provision.period.end",
        ),
        (_set("provision.dataPeriod", {"start": "2026", "end": "2025-12"}), "Consent.provision.dataPeriod.end"),
        (_set("provision.period", {"start": "2026-02-30"}), "Consent.provision.period.start"),
        (_set("provision.provision", [{"purpose": [purpose("HRESCH")]}]), "Consent.provision.provision[0].type"),
        (
            _set("provision.provision", [{"type": "deny", "purpose": [purpose("RESEARCH")]}]),
            "Consent.provision.provision[0].purpose[0].code",
        ),
        (
            _set("provision.provision", [{"type": "deny", "period": {"start": "2026-02-01", "end": "2026-01-01"}}]),
            "Consent.provision.provision[0].period.end",
        ),
    ],
)
def test_parse_reports_what_is_wrong_and_where(change: Any, expression: str) -> None:
    raw = resource()
    change(raw)
    with pytest.raises(ConsentError) as caught:
        parse_consent(raw)
    assert caught.value.expression == expression
    assert caught.value.message
    assert isinstance(caught.value, ValueError)


def test_parse_refuses_a_non_object() -> None:
    with pytest.raises(ConsentError) as caught:
        parse_consent(["not", "a", "resource"])  # type: ignore[arg-type]
    assert caught.value.expression == "Consent"


def test_parse_does_not_change_its_input() -> None:
    raw = resource(provision=[{"type": "deny", "purpose": [purpose("HRESCH")]}])
    before = copy.deepcopy(raw)
    parse_consent(raw)
    assert raw == before


# --- decide: status ------------------------------------------------------------------------------

NOW = cph(2026, 6, 15, 12, 0)


def test_no_consent_on_file_is_a_deny() -> None:
    assert decide([], purpose="TREAT", data_time=None, as_of=NOW) == Decision(False, "no consent on file")


def test_active_consent_permits_its_purpose() -> None:
    decision = decide([consent()], purpose="TREAT", data_time=cph(2026, 6, 1), as_of=NOW)
    assert decision.permit
    assert decision.reason == "consent permits TREAT"
    assert bool(decision) is True


def test_withdrawn_consent_denies() -> None:
    decision = decide([consent(status="inactive")], purpose="TREAT", data_time=None, as_of=NOW)
    assert decision == Decision(False, "consent withdrawn")
    assert not decision  # a deny is falsy, so `if decide(...)` cannot let it through


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("inactive", "consent withdrawn"),
        ("draft", "consent not yet active (draft)"),
        ("proposed", "consent not yet active (proposed)"),
        ("rejected", "consent rejected"),
        ("entered-in-error", "consent entered in error"),
    ],
)
def test_only_active_consents_count(status: str, reason: str) -> None:
    records = [consent(status=status, purposes=("TREAT", "HRESCH"))]
    assert decide(records, purpose="TREAT", data_time=cph(2026, 6, 1), as_of=NOW) == Decision(False, reason)
    assert permitted_data_window(records, purpose="TREAT", as_of=NOW) is None


def test_withdrawn_consent_followed_by_a_new_active_one_permits() -> None:
    records = [consent(status="inactive"), consent(start=date(2026, 6, 1))]
    assert decide(records, purpose="TREAT", data_time=None, as_of=NOW).permit


# --- decide: consent period ----------------------------------------------------------------------


def test_before_the_consent_period_is_a_deny() -> None:
    records = [consent(start=date(2026, 7, 1))]
    assert decide(records, purpose="TREAT", data_time=None, as_of=NOW) == Decision(
        False, "consent period has not started"
    )
    assert decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 6, 30, 23, 59, 59)).permit is False
    assert decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 7, 1)).permit


def test_gics_regression_as_of_before_the_first_consent_is_not_permitted() -> None:
    # The patient consented on 2026-03-01 and again (adding research) on 2026-06-01; asking about
    # 2026-01-15 must find no consent, not the later ones.
    first = consent(start=date(2026, 3, 1), date_time=cph(2026, 3, 1, 9, 0))
    second = consent(purposes=("TREAT", "HRESCH"), start=date(2026, 6, 1), date_time=cph(2026, 6, 1, 9, 0))
    records = [first, second]
    before = cph(2026, 1, 15)
    assert decide(records, purpose="TREAT", data_time=before, as_of=before) == Decision(
        False, "consent period has not started"
    )
    assert permitted_data_window(records, purpose="TREAT", as_of=before) is None
    assert decide(records, purpose="HRESCH", data_time=None, as_of=cph(2026, 4, 1)).permit is False
    assert decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 4, 1)).permit


def test_gics_regression_consent_without_period_never_applies_before_it_was_given() -> None:
    records = [consent(date_time=cph(2026, 3, 1, 9, 0))]
    assert not decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 3, 1, 8, 59, 59)).permit
    assert decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 3, 1, 9, 0)).permit


def test_backdated_period_does_not_apply_before_the_consent_was_given() -> None:
    records = [consent(start=date(2026, 1, 1), date_time=cph(2026, 3, 1, 9, 0))]
    assert not decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 2, 1)).permit
    # data of earlier times may well be covered; that is dataPeriod's business, not the period's
    assert decide(records, purpose="TREAT", data_time=cph(2025, 6, 1), as_of=cph(2026, 3, 2)).permit


def test_gics_regression_end_date_covers_the_whole_last_day_in_copenhagen() -> None:
    records = [consent(start=date(2026, 1, 1), end=date(2026, 12, 31))]

    def at(moment: datetime) -> Decision:
        return decide(records, purpose="TREAT", data_time=None, as_of=moment)

    assert at(cph(2026, 12, 31, 0, 0)).permit
    assert at(cph(2026, 12, 31, 23, 59, 59, 999_999)).permit
    assert at(cph(2027, 1, 1, 0, 0)) == Decision(False, "consent expired on 2026-12-31")
    # the same instants in UTC (Copenhagen is UTC+1 in winter)
    assert at(datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC)).permit
    assert not at(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)).permit
    assert not at(cph(2027, 1, 2)).permit


def test_end_date_in_summer_time_ends_at_copenhagen_midnight() -> None:
    records = [consent(end=date(2026, 7, 31))]
    assert decide(records, purpose="TREAT", data_time=None, as_of=datetime(2026, 7, 31, 21, 59, 59, tzinfo=UTC)).permit
    assert decide(records, purpose="TREAT", data_time=None, as_of=datetime(2026, 7, 31, 22, 0, tzinfo=UTC)) == Decision(
        False, "consent expired on 2026-07-31"
    )


def test_end_month_covers_the_whole_month() -> None:
    records = [parse_consent(resource(period={"end": "2026-02"}))]
    assert decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 2, 28, 23, 59)).permit
    assert decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 3, 1)) == Decision(
        False, "consent expired on 2026-02-28"
    )


def test_end_instant_is_exclusive() -> None:
    records = [parse_consent(resource(period={"end": "2026-06-30T12:00:00+02:00"}))]
    assert decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 6, 30, 11, 59, 59, 999_999)).permit
    assert decide(records, purpose="TREAT", data_time=None, as_of=cph(2026, 6, 30, 12, 0)) == Decision(
        False, "consent expired at 2026-06-30T12:00:00+02:00"
    )


# --- decide: purpose and data period -------------------------------------------------------------


def test_purpose_not_listed_is_not_permitted() -> None:
    decision = decide([consent()], purpose="HRESCH", data_time=None, as_of=NOW)
    assert decision == Decision(False, "purpose HRESCH not permitted")


def test_data_time_outside_the_data_period_is_a_deny() -> None:
    records = [parse_consent(resource(dataPeriod={"start": "2026-01-01", "end": "2026-03-31"}))]

    def data_at(moment: datetime) -> Decision:
        return decide(records, purpose="TREAT", data_time=moment, as_of=NOW)

    assert data_at(cph(2026, 1, 1)).permit
    assert data_at(cph(2026, 3, 31, 23, 59, 59)).permit  # the end date is inside
    assert data_at(cph(2026, 4, 1)) == Decision(False, "data time outside consent data period")
    assert data_at(cph(2025, 12, 31, 23, 59, 59)) == Decision(False, "data time outside consent data period")
    # asked without a data time: some data is permitted, narrowed by the window
    assert decide(records, purpose="TREAT", data_time=None, as_of=NOW).permit
    assert permitted_data_window(records, purpose="TREAT", as_of=NOW) == DataWindow(
        ((cph(2026, 1, 1), cph(2026, 4, 1)),)
    )


def test_nested_deny_for_a_purpose_overrides_the_outer_permit() -> None:
    records = [
        parse_consent(
            resource(
                purpose=[purpose("TREAT"), purpose("HRESCH")],
                provision=[{"type": "deny", "purpose": [purpose("HRESCH")]}],
            )
        )
    ]
    assert decide(records, purpose="HRESCH", data_time=cph(2026, 6, 1), as_of=NOW) == Decision(
        False, "consent denies purpose HRESCH"
    )
    assert decide(records, purpose="TREAT", data_time=cph(2026, 6, 1), as_of=NOW).permit
    assert permitted_data_window(records, purpose="HRESCH", as_of=NOW) is None


def test_nested_deny_limited_to_a_data_period_cuts_a_hole() -> None:
    records = [
        parse_consent(
            resource(
                purpose=[purpose("HRESCH")],
                dataPeriod={"start": "2026-01-01", "end": "2026-12-31"},
                provision=[
                    {
                        "type": "deny",
                        "purpose": [purpose("HRESCH")],
                        "dataPeriod": {"start": "2026-05-01", "end": "2026-05-31"},
                    }
                ],
            )
        )
    ]
    assert decide(records, purpose="HRESCH", data_time=cph(2026, 4, 30, 23, 0), as_of=NOW).permit
    assert decide(records, purpose="HRESCH", data_time=cph(2026, 5, 15), as_of=NOW) == Decision(
        False, "consent denies purpose HRESCH"
    )
    assert decide(records, purpose="HRESCH", data_time=cph(2026, 6, 1), as_of=NOW).permit
    window = permitted_data_window(records, purpose="HRESCH", as_of=NOW)
    assert window == DataWindow(((cph(2026, 1, 1), cph(2026, 5, 1)), (cph(2026, 6, 1), cph(2027, 1, 1))))
    assert window is not None and not window.is_contiguous
    assert (window.start, window.end) == (cph(2026, 1, 1), cph(2027, 1, 1))
    assert not window.contains(cph(2026, 5, 15))


def test_nested_deny_applies_only_during_its_own_period() -> None:
    records = [
        parse_consent(
            resource(
                purpose=[purpose("TREAT"), purpose("HRESCH")],
                provision=[{"type": "deny", "purpose": [purpose("HRESCH")], "period": {"start": "2026-07-01"}}],
            )
        )
    ]
    assert decide(records, purpose="HRESCH", data_time=None, as_of=NOW).permit
    assert not decide(records, purpose="HRESCH", data_time=None, as_of=cph(2026, 7, 1)).permit


def test_nested_permit_is_an_exception_to_an_outer_deny() -> None:
    # "no use of my data, except for my treatment"
    records = [
        parse_consent(resource(type="deny", purpose=[], provision=[{"type": "permit", "purpose": [purpose("TREAT")]}]))
    ]
    assert decide(records, purpose="TREAT", data_time=None, as_of=NOW).permit
    assert decide(records, purpose="HRESCH", data_time=None, as_of=NOW) == Decision(
        False, "consent denies purpose HRESCH"
    )


def test_explicit_deny_in_one_consent_wins_over_a_permit_in_another() -> None:
    permit = consent(purposes=("TREAT", "HRESCH"))
    opt_out = parse_consent(resource(type="deny", purpose=[purpose("HRESCH")]))
    for records in ([permit, opt_out], [opt_out, permit]):
        assert decide(records, purpose="HRESCH", data_time=cph(2026, 6, 1), as_of=NOW) == Decision(
            False, "consent denies purpose HRESCH"
        )
        assert permitted_data_window(records, purpose="HRESCH", as_of=NOW) is None
        assert decide(records, purpose="TREAT", data_time=cph(2026, 6, 1), as_of=NOW).permit


def test_nested_deny_in_one_consent_wins_over_a_permit_in_another() -> None:
    treatment_only = parse_consent(resource(provision=[{"type": "deny", "purpose": [purpose("HRESCH")]}]))
    research = consent(purposes=("HRESCH",))
    assert not decide([treatment_only, research], purpose="HRESCH", data_time=None, as_of=NOW).permit


def test_a_deny_that_has_ended_no_longer_denies() -> None:
    permit = consent(purposes=("HRESCH",))
    opt_out = parse_consent(resource(type="deny", purpose=[purpose("HRESCH")], period={"end": "2026-05-31"}))
    assert decide([permit, opt_out], purpose="HRESCH", data_time=None, as_of=NOW).permit


def test_the_most_useful_reason_is_given_when_several_consents_fail() -> None:
    expired = consent(end=date(2026, 1, 31))
    other_purpose = consent(purposes=("HTEST",))
    assert (
        decide([expired, other_purpose], purpose="TREAT", data_time=None, as_of=NOW).reason
        == "purpose TREAT not permitted"
    )
    assert decide([expired], purpose="TREAT", data_time=None, as_of=NOW).reason == "consent expired on 2026-01-31"


# --- permitted_data_window -----------------------------------------------------------------------


def test_window_is_unbounded_without_a_data_period() -> None:
    window = permitted_data_window([consent()], purpose="TREAT", as_of=NOW)
    assert window == DataWindow(((None, None),))
    assert window is not None and window.contains(datetime(1990, 1, 1, tzinfo=UTC))


def test_window_is_none_when_nothing_is_permitted() -> None:
    assert permitted_data_window([], purpose="TREAT", as_of=NOW) is None
    assert permitted_data_window([consent()], purpose="HRESCH", as_of=NOW) is None
    assert permitted_data_window([consent(end=date(2026, 1, 31))], purpose="TREAT", as_of=NOW) is None


def test_window_unions_several_consents() -> None:
    records = [
        parse_consent(resource(dataPeriod={"start": "2026-01-01", "end": "2026-01-31"})),
        parse_consent(resource(dataPeriod={"start": "2026-02-01", "end": "2026-02-28"})),
        parse_consent(resource(dataPeriod={"start": "2026-04-01"})),
    ]
    window = permitted_data_window(records, purpose="TREAT", as_of=NOW)
    assert window == DataWindow(((cph(2026, 1, 1), cph(2026, 3, 1)), (cph(2026, 4, 1), None)))


# --- input checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data_time": None, "as_of": datetime(2026, 6, 15, 12, 0)},
        {"data_time": datetime(2026, 6, 1), "as_of": NOW},
    ],
)
def test_naive_datetimes_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide([consent()], purpose="TREAT", **kwargs)


def test_naive_as_of_is_refused_for_the_window_and_even_without_records() -> None:
    with pytest.raises(ValueError):
        permitted_data_window([consent()], purpose="TREAT", as_of=datetime(2026, 6, 15))
    with pytest.raises(ValueError):
        decide([], purpose="TREAT", data_time=None, as_of=datetime(2026, 6, 15))


def test_naive_period_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        Period(start=datetime(2026, 1, 1))


def test_unknown_purpose_is_refused() -> None:
    with pytest.raises(ValueError):
        decide([consent()], purpose="treatment", data_time=None, as_of=NOW)


def test_consents_of_several_patients_are_refused() -> None:
    other = parse_consent(treatment_consent("Patient/p-0002"))
    with pytest.raises(ValueError, match="more than one patient"):
        decide([consent(), other], purpose="TREAT", data_time=None, as_of=NOW)


def test_hand_built_records_work_like_parsed_ones() -> None:
    record = ConsentRecord(
        status="active",
        scope="treatment",
        patient=PATIENT,
        date_time=None,
        provision=Provision(type="permit", purposes=frozenset({"TREAT"}), period=Period(end=cph(2026, 7, 1))),
    )
    assert decide([record], purpose="TREAT", data_time=None, as_of=NOW).permit
    assert (
        decide([record], purpose="TREAT", data_time=None, as_of=cph(2026, 7, 1)).reason
        == "consent expired at 2026-06-30T22:00:00+00:00"
    )


# --- properties ----------------------------------------------------------------------------------

PURPOSES = ["TREAT", "HRESCH", "HTEST", "HOPERAT", "ETREAT"]
STATUSES = ["draft", "proposed", "active", "rejected", "inactive", "entered-in-error"]
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
HORIZON_DAYS = 4 * 365

instants = st.integers(min_value=0, max_value=HORIZON_DAYS * 24 * 60).map(
    lambda minutes: EPOCH + timedelta(minutes=minutes)
)
some_timezone = st.sampled_from([UTC, CPH, ZoneInfo("America/New_York")])


@st.composite
def aware_instants(draw: st.DrawFn) -> datetime:
    return draw(instants).astimezone(draw(some_timezone))


@st.composite
def fhir_times(draw: st.DrawFn) -> str:
    moment = draw(instants).astimezone(CPH)
    form = draw(st.sampled_from(["date", "instant", "month"]))
    if form == "date":
        return moment.date().isoformat()
    if form == "month":
        return moment.strftime("%Y-%m")
    return moment.isoformat(timespec="seconds")


@st.composite
def periods(draw: st.DrawFn) -> dict[str, str] | None:
    # Ordered by first instant, an end never lies before its start, whatever the precisions.
    start, end = sorted(
        draw(st.lists(fhir_times(), min_size=2, max_size=2)), key=lambda text: Period.from_fhir(text, None).start
    )
    period: dict[str, str] = {}
    if draw(st.booleans()):
        period["start"] = start
    if draw(st.booleans()):
        period["end"] = end
    return period or None


@st.composite
def provisions(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": draw(st.sampled_from(["permit", "deny"]))}
    codes = draw(st.lists(st.sampled_from(PURPOSES), unique=True, max_size=3))
    if codes:
        provision["purpose"] = [purpose(code) for code in codes]
    for key in ("period", "dataPeriod"):
        value = draw(periods())
        if value:
            provision[key] = value
    if depth < 2:
        children = draw(st.lists(provisions(depth + 1), max_size=2 - depth))
        if children:
            provision["provision"] = children
    return provision


@st.composite
def consent_resources(draw: st.DrawFn, status: str | None = None) -> dict[str, Any]:
    raw = resource()
    raw["provision"] = draw(provisions())
    raw["status"] = status or draw(st.sampled_from(STATUSES))
    if draw(st.booleans()):
        raw["dateTime"] = draw(fhir_times())
    return raw


@st.composite
def expired_consent_resources(draw: st.DrawFn) -> tuple[dict[str, Any], datetime]:
    """An active consent and an as-of time at or after the end of its period."""
    raw = draw(consent_resources(status="active"))
    end = draw(fhir_times())
    raw["provision"]["period"] = {"end": end}
    after = Period.from_fhir(None, end).end
    assert after is not None
    return raw, after + timedelta(minutes=draw(st.integers(min_value=0, max_value=3 * 365 * 24 * 60)))


@settings(max_examples=150, deadline=None)
@given(
    withdrawn=st.lists(consent_resources(status="inactive"), min_size=1, max_size=2),
    asked=st.sampled_from(PURPOSES),
    data_time=st.none() | aware_instants(),
    as_of=aware_instants(),
)
def test_property_withdrawn_consent_never_permits(
    withdrawn: list[dict[str, Any]], asked: str, data_time: datetime | None, as_of: datetime
) -> None:
    records = [parse_consent(raw) for raw in withdrawn]
    assert decide(records, purpose=asked, data_time=data_time, as_of=as_of) == Decision(False, "consent withdrawn")
    assert permitted_data_window(records, purpose=asked, as_of=as_of) is None


@settings(max_examples=150, deadline=None)
@given(
    expired=expired_consent_resources(),
    asked=st.sampled_from(PURPOSES),
    data_time=st.none() | aware_instants(),
    zone=some_timezone,
)
def test_property_expired_consent_never_permits(
    expired: tuple[dict[str, Any], datetime], asked: str, data_time: datetime | None, zone: ZoneInfo
) -> None:
    raw, as_of = expired
    records = [parse_consent(raw)]
    assert not decide(records, purpose=asked, data_time=data_time, as_of=as_of.astimezone(zone)).permit
    assert permitted_data_window(records, purpose=asked, as_of=as_of) is None


@settings(max_examples=150, deadline=None)
@given(
    raws=st.lists(consent_resources(), max_size=3),
    asked=st.sampled_from(PURPOSES),
    data_time=aware_instants(),
    as_of=aware_instants(),
)
def test_property_decide_and_window_agree(
    raws: list[dict[str, Any]], asked: str, data_time: datetime, as_of: datetime
) -> None:
    """What a query narrowed by the window returns is exactly what decide permits, one by one."""
    records = [parse_consent(raw) for raw in raws]
    window = permitted_data_window(records, purpose=asked, as_of=as_of)
    single = decide(records, purpose=asked, data_time=data_time, as_of=as_of)
    assert single.permit == (window is not None and window.contains(data_time))
    assert decide(records, purpose=asked, data_time=None, as_of=as_of).permit == (window is not None)
    if not any(record.status == "active" for record in records):
        assert not single.permit


@settings(max_examples=200, deadline=None)
@given(
    raw=consent_resources(),
    extra=consent_resources(status="active"),
    asked=st.sampled_from(PURPOSES),
    data_time=aware_instants(),
    as_of=aware_instants(),
)
def test_property_adding_an_explicit_deny_never_permits_more(
    raw: dict[str, Any], extra: dict[str, Any], asked: str, data_time: datetime, as_of: datetime
) -> None:
    # a current deny: no period, and not given after as_of (a later consent cannot apply earlier)
    extra["provision"] = {"type": "deny", "purpose": [purpose(asked)]}
    extra.pop("dateTime", None)
    records = [parse_consent(raw)]
    assert not decide([*records, parse_consent(extra)], purpose=asked, data_time=data_time, as_of=as_of).permit


@settings(max_examples=100, deadline=None)
@given(
    codes=st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True),
    start=st.none() | st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    days=st.integers(min_value=0, max_value=2000),
    status=st.sampled_from(STATUSES),
)
def test_property_treatment_consent_validates_and_round_trips(
    codes: list[str], start: date | None, days: int, status: str
) -> None:
    end = None if start is None else start + timedelta(days=days)
    built = treatment_consent(PATIENT, purposes=codes, start=start, end=end, status=status)
    Consent.model_validate(built)
    record = parse_consent(built)
    assert (record.status, record.patient, record.purposes, record.provision_type) == (
        status,
        PATIENT,
        frozenset(codes),
        "permit",
    )
    if start is not None:
        assert record.period is not None and record.period.start == datetime(
            start.year, start.month, start.day, tzinfo=CPH
        )


# --- the component stays pure --------------------------------------------------------------------

CONSENT_DIR = Path(__file__).resolve().parents[3] / "consent"
ALLOWED_IMPORTS = {
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "re",
    "typing",
    "zoneinfo",
    "fhir",
    "pydantic",
}


@pytest.mark.parametrize("module", sorted(CONSENT_DIR.glob("*.py")), ids=lambda path: path.name)
def test_consent_imports_only_the_standard_library_pydantic_and_fhir_resources(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots = {(node.module or "").split(".")[0]}
        else:
            continue
        assert roots <= ALLOWED_IMPORTS, f"{module.name} imports {roots - ALLOWED_IMPORTS}"


def test_package_exports_the_public_api() -> None:
    # A stale editable install can load consent/ as a namespace package without its __init__.
    assert homediag.consent.__file__ == str(CONSENT_DIR / "__init__.py")
    assert all(getattr(homediag.consent, name) is not None for name in homediag.consent.__all__)


@settings(max_examples=200, deadline=None)
@given(
    raws=st.lists(consent_resources(), max_size=3),
    asked=st.sampled_from(PURPOSES),
    data_time=st.none() | aware_instants(),
    as_of=aware_instants(),
    later=aware_instants(),
    share=st.floats(min_value=0, max_value=1),
)
def test_property_a_decision_holds_between_the_instants_around_it(
    raws: list[dict[str, Any]], asked: str, data_time: datetime | None, as_of: datetime, later: datetime, share: float
) -> None:
    """What the access layer remembers a window by: at any time in ``unchanged_around``'s span the decision and the
    window are those at ``as_of``; outside it (at its ends) they may differ."""
    records = [parse_consent(raw) for raw in raws]
    after, before = unchanged_around(records, as_of)
    assert (after is None or after <= as_of) and (before is None or as_of < before)
    inside = [later, as_of + (later - as_of) * share]
    for instant in _mentioned(records):  # each side of every instant the consents mention
        inside += [instant - timedelta(microseconds=1), instant]
    inside += [after, after + (as_of - after) * share] if after is not None else []
    inside += [before - timedelta(microseconds=1), as_of + (before - as_of) * share] if before is not None else []
    for t in inside:
        if (after is None or after <= t) and (before is None or t < before):
            assert permitted_data_window(records, purpose=asked, as_of=t) == permitted_data_window(
                records, purpose=asked, as_of=as_of
            )
            assert decide(records, purpose=asked, data_time=data_time, as_of=t) == decide(
                records, purpose=asked, data_time=data_time, as_of=as_of
            )


def _mentioned(records: list[ConsentRecord]) -> list[datetime]:
    """Every instant the consents mention: when given, and each (nested) provision's period and data period."""
    found: list[datetime] = []

    def walk(provision: Provision) -> None:
        for period in (provision.period, provision.data_period):
            if period is not None:
                found.extend(t for t in (period.start, period.end) if t is not None)
        for child in provision.provisions:
            walk(child)

    for record in records:
        if record.date_time is not None:
            found.append(record.date_time)
        walk(record.provision)
    return found
