"""Identity rules, the envelope's readable copy, the log filter, time shifts of pseudonymous views."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from homediag.access.view import View
from homediag.domains import MAX_SHIFT, domain_for
from homediag.envelope import redact
from homediag.identity import InvalidCpr, NoCprInLogs, check_cpr, looks_like_cpr, said
from homediag.keys import KeyRing
from homediag.users import Principal

CPR = "0101901234"  # synthetic
FORMS = {
    "arabic-indic": "٠١٠١٩٠١٢٣٤",
    "extended-arabic-indic": "۰۱۰۱۹۰۱۲۳۴",
    "fullwidth": "０１０１９０１２３４",
    "devanagari": "०१०१९०१२३४",
    "superscript": "⁰¹⁰¹⁹⁰¹²³⁴",
}


def test_a_cpr_is_ten_ascii_digits_with_an_optional_hyphen_after_the_sixth():
    assert check_cpr(CPR).cpr == check_cpr("010190-1234").cpr == check_cpr(" 010190-1234 ").cpr == CPR
    for wrong in ("01-01-90-1234", "0101901-234", "010190123", "01019012345", "010190-123a"):
        with pytest.raises(InvalidCpr) as err:
            check_cpr(wrong)
        assert wrong not in str(err.value)


@pytest.mark.parametrize("form", FORMS)
def test_other_digit_forms_are_refused_and_never_repeated(form):
    written = FORMS[form]
    with pytest.raises(InvalidCpr, match="ASCII digits") as err:
        check_cpr(written)
    assert written not in str(err.value)
    assert looks_like_cpr(written) and looks_like_cpr(f"cpr: {written[:6]}-{written[6:]}")
    assert said(written) != written and said(f"Patient/{written}") != f"Patient/{written}"


def test_said_withholds_cpr_shapes_but_not_hex_pseudonyms():
    assert said(CPR) != CPR and said("010190-1234") != "010190-1234"
    pseudonym = "3c3cccb13e8fa1212529756ac12e"  # ten digits inside a hex token
    assert said(pseudonym) == pseudonym and said("abc") == "abc"


def test_the_log_filter_masks_a_cpr_in_an_access_log_line():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/fhir/Patient/{CPR}?x={FORMS['fullwidth']}", "1.1", 404), None,
    )  # fmt: skip
    NoCprInLogs().filter(record)
    line = record.getMessage()
    assert CPR not in line and FORMS["fullwidth"] not in line and "/fhir/Patient/[CPR-like]" in line


def test_the_readable_envelope_is_an_allow_list_and_stable():
    sent = {
        "adapter": "ble-blood-pressure",
        "payload_hex": "1e8a00",
        "device": {"manufacturer": "M", "serial": f"S-{CPR}", "owner": "Synthia"},
        "patient": {"system": "urn:oid:1.2.208.176.1.2", "value": CPR, "name": "Synthia"},
        "gateway": {"id": "tablet-1"},
        "received_at": "2026-11-26T10:00:00+01:00",
        "note": "Synthia",
        CPR: 1,
    }
    readable = redact(sent)
    assert CPR not in repr(readable) and "Synthia" not in repr(readable)
    assert readable["device"] == {"manufacturer": "M", "serial": "[redacted]"}
    assert readable["dropped"] == ["[a field name not shown]", "device.owner", "note", "patient.name"]
    assert redact(readable) == readable
    assert redact(["a list"]) == {"unreadable": True, "type": "list"}


def test_a_vendor_json_payload_keeps_only_what_its_adapter_reads():
    sent = {"adapter": "withings-measure", "data": {"date": 1, "userid": "Synthia", "measures": [{"value": 1}]}}
    readable = redact(sent)
    assert readable["data"] == {"date": 1, "measures": [{"value": 1}]} and readable["dropped"] == ["data.userid"]
    assert "data" in redact({"adapter": "other", "data": {"x": "Synthia"}}) and "Synthia" not in repr(
        redact({"adapter": "other", "data": {"x": "Synthia"}})
    )


def _view(keys: KeyRing, org: str, coarsen: str | None = None) -> View:
    principal = Principal(f"eval-{org}", "e", "evaluator", org)
    return View(principal, "HRESCH", domain_for(keys, f"evaluator:{org}"), coarsen)


def test_times_are_shifted_per_patient_and_domain_keeping_intervals():
    keys = KeyRing.generate()
    one, two = _view(keys, "A"), _view(keys, "B")
    care = View(Principal("c", "c", "clinician", None), "TREAT", None)
    t0 = datetime(2026, 11, 26, 8, 0, 12, tzinfo=UTC)
    t1 = t0 + timedelta(hours=7, seconds=3)
    assert care.shift("p1", t0) == t0 and care.shown_time("p1", "2026-11-26T08:00:12Z") == "2026-11-26T08:00:12Z"
    for view in (one, two):
        assert view.shift("p1", t1) - view.shift("p1", t0) == t1 - t0
        assert timedelta(0) < abs(view.shift("p1", t0) - t0) <= MAX_SHIFT
        assert view.shift("p1", t0).microsecond == 0  # whole seconds
    assert one.shift("p1", t0) != two.shift("p1", t0) and one.shift("p1", t0) != one.shift("p2", t0)
    assert _view(keys, "A").shift("p1", t0) == one.shift("p1", t0)  # consistent across requests

    shown = one.shown_time("p1", "2026-11-26T08:00:12Z")
    assert shown is not None and shown.endswith("Z") and datetime.fromisoformat(shown) == one.shift("p1", t0)
    assert one.shown_time("p1", "2026") is None and one.shown_time("p1", "2026-11") is None  # partial: left out
    assert one.shown_time(None, "2026-11-26T08:00:12Z") is None  # no patient: cannot be shifted consistently
    day = replace(one, coarsen="day").shown_time("p1", "2026-11-26T08:00:12+01:00")
    assert day is not None and len(day) == 10
    with pytest.raises(ValueError):
        replace(one, coarsen="minute")


def test_offsets_spread_over_the_window_and_are_never_zero():
    domain = domain_for(KeyRing.generate(), "evaluator:X")
    offsets = [domain.offset(f"p{i}") for i in range(2000)]
    assert all(timedelta(0) != o and abs(o) <= MAX_SHIFT for o in offsets)
    assert min(offsets) < -MAX_SHIFT * 0.9 and max(offsets) > MAX_SHIFT * 0.9
    assert len(set(offsets)) > 1990


def test_an_id_too_long_to_pseudonymise_is_shown_as_a_one_way_token():
    keys = KeyRing.generate()
    view = _view(keys, "A")
    long_id = "nurse-home-visit-team-0001"
    token = view.shown_id("Device", long_id)
    assert token == _view(keys, "A").shown_id("Device", long_id) != _view(keys, "B").shown_id("Device", long_id)
    assert long_id not in token and len(token) <= 64 and view.real_id("Device", token) is None
    shown = view.shown({"resourceType": "Observation", "id": long_id, "status": "final"})
    assert shown["id"] == view.shown_id("Observation", long_id) and shown["status"] == "final"


@pytest.mark.parametrize(
    ("text", "cpr_like"),
    [
        ("0101901234", True),
        ("010190-1234", True),
        ("cpr: 0101901234", True),
        ("patient_cpr_0101901234", True),
        ("Født 0101901234.", True),
        # ten digits with a valid date inside a random hex id or token: not a CPR (our own Observation ids are
        # such tokens; before, about one in a few hundred PHD readings was refused as carrying a CPR)
        ("a0101901234b", False),
        ("6f0c3b2e0101901234ffee", False),
        ("0101901234abcdef", False),
    ],
)
def test_a_cpr_shape_counts_only_standing_apart_from_letters_and_digits(text, cpr_like):
    assert looks_like_cpr(text) is cpr_like
