"""Search parity with what FHIR clients send: Prefer handling, _summary, _total, _elements, _id, _lastUpdated,
date prefixes sa/eb/ap, value-quantity (UCUM-aware), :not, :missing, _include through the access layer,
the Patient compartment, POST _search, exact tokens and _sort on every sortable parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fhir.resources.R4B.bundle import Bundle
from test_fhir_search import BP, Readings, search
from test_fhir_search import readings as make_readings


@pytest.fixture
def readings(client, tokens, pilot) -> Readings:
    """Five cuff readings (blood pressure and pulse) of one consenting patient (as in test_fhir_search)."""
    return make_readings.__wrapped__(client, tokens, pilot)


def ids(bundle: dict, mode: str = "match") -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode}


def pulses(client, tokens, readings) -> dict[str, Decimal]:
    bundle = search(client, tokens, ("patient", readings.patient_id), ("code", "urn:iso:std:iso:11073:10101|149546"))
    assert bundle.status_code == 200, bundle.text
    return {e["resource"]["id"]: Decimal(str(e["resource"]["valueQuantity"]["value"])) for e in bundle.json()["entry"]}


def test_strict_refuses_and_lenient_ignores_and_reports_unknown_parameters(client, tokens, readings):
    params = [("patient", readings.patient_id), ("colour", "blue")]
    strict = client.get("/fhir/Observation", params=params, headers={**tokens.auth("clinician")})
    assert strict.status_code == 400
    explicit = client.get(
        "/fhir/Observation", params=params, headers={**tokens.auth("clinician"), "Prefer": "handling=strict"}
    )
    assert explicit.status_code == 400
    lenient = client.get(
        "/fhir/Observation", params=params, headers={**tokens.auth("clinician"), "Prefer": "handling=lenient"}
    )
    assert lenient.status_code == 200, lenient.text
    bundle = lenient.json()
    Bundle.model_validate(bundle)
    assert bundle["total"] == 10 and len(ids(bundle)) == 10
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1 and outcome[0]["resource"]["resourceType"] == "OperationOutcome"
    assert outcome[0]["resource"]["issue"][0]["expression"] == ["colour"]
    # a known parameter with a bad value is still a 400
    bad = client.get(
        "/fhir/Observation",
        params=[("date", "yesterday")],
        headers={**tokens.auth("clinician"), "Prefer": "handling=lenient"},
    )
    assert bad.status_code == 400


def test_summary_total_and_elements(client, tokens, readings):
    pid = readings.patient_id
    count = search(client, tokens, ("patient", pid), ("_summary", "count")).json()
    assert count["total"] == 10 and not count.get("entry")
    none = search(client, tokens, ("patient", pid), ("_total", "none")).json()
    assert "total" not in none and len(none["entry"]) == 10
    assert search(client, tokens, ("patient", pid), ("_total", "accurate")).json()["total"] == 10

    summary = search(client, tokens, ("patient", pid), ("_summary", "true")).json()
    for e in summary["entry"]:
        resource = e["resource"]
        assert "code" in resource and "subject" in resource and "device" not in resource
        assert {"code": "SUBSETTED"}.items() <= resource["meta"]["tag"][-1].items()
    data = search(client, tokens, ("patient", pid), ("_summary", "data")).json()
    assert all("device" in e["resource"] for e in data["entry"])

    elements = search(client, tokens, ("patient", pid), ("_elements", "code,effective")).json()
    for e in elements["entry"]:
        resource = e["resource"]
        assert set(resource) == {"resourceType", "id", "meta", "code", "effectiveDateTime"}


def test_id_last_updated_and_date_prefixes(client, tokens, readings):
    pid = readings.patient_id
    two = f"{readings.bp['A']},{readings.bp['E']}"
    assert ids(search(client, tokens, ("_id", two)).json()) == {readings.bp["A"], readings.bp["E"]}
    assert search(client, tokens, ("_id", "nope")).json()["total"] == 0

    today = datetime.now(UTC).date()
    assert search(client, tokens, ("patient", pid), ("_lastUpdated", f"ge{today}")).json()["total"] == 10
    assert search(client, tokens, ("patient", pid), ("_lastUpdated", f"lt{today}")).json()["total"] == 0
    tomorrow = today + timedelta(days=1)
    assert search(client, tokens, ("patient", pid), ("_lastUpdated", f"sa{tomorrow}")).json()["total"] == 0

    def labels(*params) -> str:
        return "".join(sorted(readings.labels(search(client, tokens, ("code", BP), *params).json())))

    assert labels(("date", "sa2026-03-10")) == "DE"  # starts after the 10th (Copenhagen day)
    assert labels(("date", "eb2026-03-10")) == "A"  # ends before it
    assert labels(("date", "ap2026-07-15")) == "E"  # within 10% of the distance from now (about 5 weeks)
    assert labels(("date", "ap2026-03-10")) == "ABCD"  # D is 23 days later, within 10% of ~9 months


def test_value_quantity_with_prefixes_and_ucum_units(client, tokens, readings):
    values = pulses(client, tokens, readings)
    assert len(values) == 5
    middle = sorted(values.values())[2]

    def found(value: str) -> set[str]:
        response = search(client, tokens, ("patient", readings.patient_id), ("value-quantity", value))
        assert response.status_code == 200, response.text
        return ids(response.json())

    assert found(f"gt{middle}") == {i for i, v in values.items() if v > middle}
    assert found(f"le{middle}") == {i for i, v in values.items() if v <= middle}
    assert found(f"{middle}") == {i for i, v in values.items() if v == middle}
    assert found(f"ne{middle}") == {i for i, v in values.items() if v != middle}
    # UCUM: {beat}/min is /min; a unit nobody stores matches nothing
    assert found(f"gt{middle}|http://unitsofmeasure.org|{{beat}}/min") == {i for i, v in values.items() if v > middle}
    assert found(f"gt{middle}||/min") == {i for i, v in values.items() if v > middle}
    assert found(f"gt{middle}|http://unitsofmeasure.org|kg") == set()
    missing = ids(search(client, tokens, ("patient", readings.patient_id), ("value-quantity:missing", "true")).json())
    assert missing == set(readings.bp.values())  # a panel has its values in components


def test_not_missing_and_exact_tokens(client, tokens, readings):
    pid = readings.patient_id
    not_bp = ids(search(client, tokens, ("patient", pid), ("code:not", BP)).json())
    assert not_bp == set(readings.pulse.values())
    assert search(client, tokens, ("patient", pid), ("category", "vital_signs")).json()["total"] == 0
    assert search(client, tokens, ("patient", pid), ("category", "vital-signs")).json()["total"] == 10
    assert search(client, tokens, ("patient", pid), ("category:not", "vital-signs")).json()["total"] == 0
    assert search(client, tokens, ("patient", pid), ("device:missing", "false")).json()["total"] == 10
    assert search(client, tokens, ("patient", pid), ("device:missing", "true")).json()["total"] == 0
    assert search(client, tokens, ("patient", pid), ("code", "%")).json()["total"] == 0


@pytest.mark.parametrize("key", ["date", "_lastUpdated", "_id"])
def test_sort_on_every_sortable_parameter_and_paging_follows_it(client, tokens, readings, key):
    def value(resource: dict):
        return {
            "date": lambda r: datetime.fromisoformat(r["effectiveDateTime"]),
            "_lastUpdated": lambda r: (r["meta"]["lastUpdated"], r["id"]),
            "_id": lambda r: r["id"],
        }[key](resource)

    for descending in (False, True):
        sort = f"-{key}" if descending else key
        seen: list[dict] = []
        response = search(client, tokens, ("patient", readings.patient_id), ("_sort", sort), ("_count", "3"))
        while True:
            bundle = response.json()
            seen += [e["resource"] for e in bundle["entry"]]
            following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
            if not following:
                break
            response = client.get(following[0], headers=tokens.auth("clinician"))
        assert len(seen) == len({r["id"] for r in seen}) == 10
        if key != "_lastUpdated":
            assert [value(r) for r in seen] == sorted((value(r) for r in seen), reverse=descending)
        else:
            stamps = [r["meta"]["lastUpdated"] for r in seen]
            assert stamps == sorted(stamps, reverse=descending)


def test_include_patient_and_device_only_what_the_reader_may_see(client, tokens, pilot, readings):
    pid = readings.patient_id
    bundle = search(
        client,
        tokens,
        ("patient", pid),
        ("_include", "Observation:patient"),
        ("_include", "Observation:device"),
        ("_count", "4"),
    ).json()
    Bundle.model_validate(bundle)
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert {r["resourceType"] for r in included} == {"Patient", "Device"}
    assert [r["id"] for r in included if r["resourceType"] == "Patient"] == [pid]
    assert all("identifier" not in r for r in included if r["resourceType"] == "Patient")  # no reason stated
    assert bundle["total"] == 10 and len(ids(bundle)) == 4

    # a reader without a relation to the patient gets neither the readings nor the included resources
    from conftest import ADMIN

    from homediag import care
    from homediag.users import create_user

    runtime = client.app.state.runtime
    with runtime.sessions.begin() as session:
        _, outsider = create_user(session, name="outside clinician", role="clinician")
        team = care.create_team(session, runtime.keys, ADMIN, "other team", runtime.settings.pilot)
        assert team.id
    response = client.get(
        "/fhir/Observation",
        params=[("_include", "Observation:patient"), ("_include", "Observation:device")],
        headers={"Authorization": f"Bearer {outsider}"},
    )
    assert response.status_code == 200
    assert response.json()["total"] == 0 and not response.json().get("entry")


def test_compartment_and_post_search_match_the_plain_search(client, tokens, readings):
    pid = readings.patient_id
    plain = search(client, tokens, ("patient", pid), ("code", BP)).json()
    compartment = client.get(
        f"/fhir/Patient/{pid}/Observation", params={"code": BP}, headers=tokens.auth("clinician")
    ).json()
    posted = client.post(
        "/fhir/Observation/_search",
        data={"patient": pid, "code": BP},
        headers=tokens.auth("clinician"),
    )
    assert posted.status_code == 200, posted.text
    assert ids(plain) == ids(compartment) == ids(posted.json()) == set(readings.bp.values())
    wrong = client.post("/fhir/Observation/_search", json={"patient": pid}, headers=tokens.auth("clinician"))
    assert wrong.status_code == 400 and "x-www-form-urlencoded" in wrong.text
    other = client.get("/fhir/Patient/someone-else/Observation", headers=tokens.auth("clinician"))
    assert other.status_code == 200 and other.json()["total"] == 0


def test_component_code_component_value_quantity_and_combo_code(client, tokens, readings):
    pid = readings.patient_id
    panels = {
        e["resource"]["id"]: e["resource"]
        for e in search(client, tokens, ("patient", pid), ("code", BP)).json()["entry"]
    }
    systolic = {i: Decimal(str(r["component"][0]["valueQuantity"]["value"])) for i, r in panels.items()}
    assert all(r["component"][0]["code"]["coding"][1]["code"] == "8480-6" for r in panels.values())

    def found(*params) -> set[str]:
        response = search(client, tokens, ("patient", pid), *params)
        assert response.status_code == 200, response.text
        return ids(response.json())

    assert found(("component-code", "http://loinc.org|8480-6")) == set(panels)
    assert found(("component-code", "8480-6")) == set(panels)
    assert found(("component-code", "http://loinc.org|85354-9")) == set()  # the panel's own code is no component's
    assert found(("combo-code", "http://loinc.org|8480-6")) == set(panels)
    assert found(("combo-code", "http://loinc.org|8867-4")) == set(readings.pulse.values())

    def any_component(rule) -> set[str]:
        return {
            i
            for i, r in panels.items()
            if any(rule(Decimal(str(c["valueQuantity"]["value"]))) for c in r["component"] if "valueQuantity" in c)
        }

    top = max(systolic.values())
    assert found(("component-value-quantity", f"ge{top}||mm[Hg]")) == any_component(lambda v: v >= top)
    assert found(("component-value-quantity", f"lt{top}")) == any_component(lambda v: v < top)
    assert found(("component-value-quantity", f"{top}")) == any_component(lambda v: v == top)
    # UCUM: the same bound in kPa (mm[Hg] = kPa x 7.500637554...)
    kpa = (top / Decimal("7.500637554192106329037968227")).quantize(Decimal("0.0001"))
    in_kpa = found(("component-value-quantity", f"ge{kpa}|http://unitsofmeasure.org|kPa"))
    assert in_kpa == any_component(lambda v: v >= kpa * Decimal("7.500637554192106329037968227"))
    assert found(("component-value-quantity", f"gt{top}|http://unitsofmeasure.org|kg")) == set()
