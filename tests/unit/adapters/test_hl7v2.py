"""The ``hl7v2-oru`` adapter: HL7 v2 ORU^R01 from point-of-care analysers and hubs to readings.

The messages in ``fixtures/hl7v2/`` are synthetic (see its README): every analyser, serial and the
patient in PID are made up, and the PID must never come out of the adapter.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from adapter_contract import assert_only_limit_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homediag.adapters.devices import DecodeError, DeviceTime, Reading, SpecialValue, get, hl7v2
from homediag.adapters.devices.hl7v2 import Hl7v2OruAdapter
from homediag.fhir_profiles import BuildContext, build, has_errors, validate
from homediag.fhir_profiles import terminology as t

FIXTURES = Path(__file__).parents[2] / "fixtures" / "hl7v2"
CTX = BuildContext(
    patient_id="p-1", device_id="dev-1", gateway_received_at=datetime(2026, 11, 26, 12, 0, 5, tzinfo=UTC)
)
CET = timedelta(hours=1)
PID_SECRETS = ("SYNTH-PID-0042", "Testperson", "Synthia", "SYNTHHOSP", "19700101")


def fixture(name: str) -> bytes:
    """A fixture with CR segment separators, as HL7 sends them (the files use LF for reading)."""
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r")


def decode(payload: bytes | str) -> list[Reading]:
    return Hl7v2OruAdapter().decode(payload.encode() if isinstance(payload, str) else payload)


def values(reading: Reading) -> list[tuple[str, str, str]]:
    measured = (reading.value,) if reading.value is not None else reading.components
    return [
        (m.measurement, str(m.number.value) if m.number.value is not None else m.number.special.label, m.unit)
        for m in measured
    ]


def resources(readings: list[Reading]) -> list[dict]:
    return [b.resource for r in readings for b in build(r, CTX)]


def message(
    *segments: str, msh: str = "MSH|^~\\&|SYNTH-ANALYSER|SYNTHCARE|||20261126080000+0100||ORU^R01|SYN-1|P|2.5"
) -> bytes:
    return "\r".join((msh, "PID|||SYNTH-PID-0042^^^SYNTHHOSP^PI||Testperson^Synthia", *segments)).encode()


# --- the fixtures, value by value ----------------------------------------------------------------

EXPECTED: dict[str, list[tuple[str, list[tuple[str, str, str]], DeviceTime | None, str]]] = {
    "pcd01-blood-pressure.hl7": [
        (
            "blood-pressure",
            [("systolic", "138", "mm[Hg]"), ("diastolic", "88", "mm[Hg]"), ("mean-arterial-pressure", "105", "mm[Hg]")],
            DeviceTime(2026, 11, 26, 8, 0, 12, CET),
            "store",
        ),
        ("pulse-rate", [("pulse-rate", "72", "/min")], DeviceTime(2026, 11, 26, 8, 0, 12, CET), "store"),
    ],
    "pcd01-pulse-oximeter.hl7": [
        ("spo2", [("spo2", "96", "%")], DeviceTime(2026, 11, 26, 9, 14, 40, CET), "store"),
        (
            "pulse-rate-oximeter",
            [("pulse-rate-oximeter", "68", "/min")],
            DeviceTime(2026, 11, 26, 9, 14, 40, CET),
            "store",
        ),
    ],
    "poc-crp.hl7": [
        (
            "crp",
            [("crp", "42", "mg/L")],
            DeviceTime(2026, 11, 26, 10, 30, 15),
            "store",
        ),  # no offset: the device's local time
    ],
    "poc-inr.hl7": [
        ("inr", [("inr", "2.6", "{INR}")], DeviceTime(2026, 11, 26, 7, 11, 0, CET), "store"),  # OBR-7's time
    ],
    "poc-hba1c.hl7": [
        ("hba1c", [("hba1c", "53", "mmol/mol")], DeviceTime(2026, 11, 26, 11, 18, 0, CET), "store"),
        ("hba1c", [("hba1c", "7.0", "%")], DeviceTime(2026, 11, 26, 11, 18, 0, CET), "store"),
    ],
    "glucose-meter.hl7": [
        (
            "glucose-capillary-whole-blood",
            [("glucose-capillary-whole-blood", "6.4", "mmol/L")],
            DeviceTime(2026, 11, 26, 6, 29, 0, CET),
            "store",
        ),
        (
            "glucose-control-solution",
            [("glucose-control-solution", "5.6", "mmol/L")],
            DeviceTime(2026, 11, 26, 6, 27, 0, CET),
            "discard",
        ),
        (
            "glucose-undetermined-plasma",
            [("glucose-undetermined-plasma", "117", "mg/dL")],
            DeviceTime(2026, 11, 26, 6, 30, 0, CET),
            "store",
        ),
    ],
    "vital-signs-loinc.hl7": [
        (
            "blood-pressure",
            [("systolic", "121", "mm[Hg]"), ("diastolic", "79", "mm[Hg]")],
            DeviceTime(2026, 11, 26, 20, 4, 0),
            "store",
        ),
        ("pulse-rate", [("pulse-rate", "58", "/min")], DeviceTime(2026, 11, 26, 20, 4, 0), "store"),
        ("body-temperature", [("body-temperature", "37.8", "Cel")], DeviceTime(2026, 11, 26, 20, 4, 0), "store"),
        ("body-weight", [("body-weight", "81.4", "kg")], DeviceTime(2026, 11, 26, 20, 4, 0), "store"),
        ("respiratory-rate", [("respiratory-rate", "16", "/min")], DeviceTime(2026, 11, 26, 20, 4, 0), "store"),
        ("spo2", [("spo2", "0.95", "1")], DeviceTime(2026, 11, 26, 20, 4, 0), "store"),
    ],
    "absent-values.hl7": [
        ("spo2", [("spo2", "NaN", "%")], DeviceTime(2026, 11, 26, 11, 59, 0, CET), "store"),
        ("body-temperature", [("body-temperature", "+INF", "Cel")], DeviceTime(2026, 11, 26, 11, 59, 0, CET), "store"),
    ],
}

# what the Observations carry (canonical unit after the builder's conversion), per fixture
OBSERVED: dict[str, list[tuple[str, object]]] = {
    "pcd01-blood-pressure.hl7": [("150020", [Decimal(138), Decimal(88), Decimal(105)]), ("149546", Decimal(72))],
    "pcd01-pulse-oximeter.hl7": [("150456", Decimal(96)), ("149530", Decimal(68))],
    "poc-crp.hl7": [("1988-5", Decimal(42))],
    "poc-inr.hl7": [("160260", Decimal("2.6"))],
    "poc-hba1c.hl7": [("160220", Decimal(53)), ("160220", Decimal(53))],  # 7.0 % NGSP is 53 mmol/mol IFCC
    "glucose-meter.hl7": [
        ("160184", Decimal("6.4")),
        ("160208", Decimal("5.6")),
        ("160368", Decimal("6.49")),
    ],  # 117 mg/dL
    "vital-signs-loinc.hl7": [
        ("150020", [Decimal(121), Decimal(79)]),
        ("149546", Decimal(58)),
        ("150364", Decimal("37.8")),
        ("188736", Decimal("81.4")),
        ("151562", Decimal(16)),
        ("150456", Decimal(95)),
    ],
    "absent-values.hl7": [("150456", "not-a-number"), ("150364", "positive-infinity")],
}


def test_every_fixture_has_expectations():
    assert sorted(p.name for p in FIXTURES.glob("*.hl7")) == sorted(EXPECTED) == sorted(OBSERVED)


def test_registry_serves_the_adapter_as_a_bytes_adapter():
    adapter = get("hl7v2-oru")
    assert isinstance(adapter, Hl7v2OruAdapter) and adapter.input_kind == "bytes"
    assert "blood-pressure" in adapter.reads and "systolic" not in adapter.reads and "crp" in adapter.reads


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_decodes_to_the_expected_readings(name):
    readings = decode(fixture(name))
    got = [(r.measurement, values(r), r.device_time, r.disposition) for r in readings]
    assert got == EXPECTED[name]
    assert all(r.test_data == (name == "absent-values.hl7") for r in readings)  # only that one says MSH-11 T


@pytest.mark.parametrize("name", sorted(OBSERVED))
def test_fixture_builds_observations_that_validate(name):
    observed = []
    for resource in resources(decode(fixture(name))):
        issues = validate(resource)
        assert not has_errors(issues), (name, issues)
        code = resource["code"]["coding"][0]["code"]
        if "component" in resource:
            observed.append((code, [c["valueQuantity"]["value"] for c in resource["component"]]))
        elif "valueQuantity" in resource:
            observed.append((code, resource["valueQuantity"]["value"]))
        else:
            observed.append((code, resource["dataAbsentReason"]["coding"][0]["code"]))
    assert observed == OBSERVED[name]


def test_times_with_an_offset_are_absolute_and_without_one_local():
    (crp_obs,) = resources(decode(fixture("poc-crp.hl7")))
    assert crp_obs["effectiveDateTime"] == "2026-11-26T10:30:15+01:00"  # Europe/Copenhagen in November
    bp_obs, _ = resources(decode(fixture("pcd01-blood-pressure.hl7")))
    assert bp_obs["effectiveDateTime"] == "2026-11-26T08:00:12+01:00"


def test_lab_results_carry_loinc_and_npu_codings():
    (crp_obs,) = resources(decode(fixture("poc-crp.hl7")))
    codings = {(c["system"], c["code"]) for c in crp_obs["code"]["coding"]}
    assert {("http://loinc.org", "1988-5"), (t.NPU_DK_CORE, "NPU19748")} <= codings
    assert crp_obs["category"][0]["coding"][0]["code"] == "laboratory"


def test_no_patient_identity_comes_out_of_any_fixture():
    for path in FIXTURES.glob("*.hl7"):
        readings = decode(fixture(path.name))
        text = repr(readings) + json.dumps(resources(readings), default=str)
        for secret in PID_SECRETS:
            assert secret not in text, (path.name, secret)


def test_refusals_never_quote_the_pid():
    bad = message(
        "PID|||SYNTH-PID-0042^^^SYNTHHOSP^PI||Testperson^Synthia||19700101",
        "OBX|1|NM|1988-5^CRP^LN||Testperson|mg/l|||||F",
    )
    with pytest.raises(DecodeError) as caught:
        decode(bad.replace(b"||Testperson|mg/l", b"||oops|mg/l"))
    assert not any(secret in str(caught.value) for secret in PID_SECRETS)


def test_test_processing_id_marks_htest():
    readings = decode(fixture("absent-values.hl7"))
    assert all(r.test_data for r in readings)
    for resource in resources(readings):
        assert resource["meta"]["security"][0]["code"] == "HTEST"


def test_nan_gives_data_absent_reason_and_status_x_or_deleted_give_no_reading():
    readings = decode(fixture("absent-values.hl7"))
    assert [r.measurement for r in readings] == [
        "spo2",
        "body-temperature",
    ]  # pulse X, BP with diastolic X, weight D: none
    spo2, temp = readings
    assert spo2.value.number.special is SpecialValue.NAN
    assert temp.value.number.special is SpecialValue.POSITIVE_INFINITY


# --- encodings and framing ---------------------------------------------------------------------------


def test_lf_separators_mllp_framing_and_latin1_are_read():
    as_file = (FIXTURES / "pcd01-blood-pressure.hl7").read_bytes()
    framed = b"\x0b" + fixture("pcd01-blood-pressure.hl7") + b"\x1c\r"
    assert (
        [values(r) for r in decode(as_file)]
        == [values(r) for r in decode(framed)]
        == [values(r) for r in decode(fixture("pcd01-blood-pressure.hl7"))]
    )
    latin1 = fixture("vital-signs-loinc.hl7")
    assert b"\xb0C" in latin1  # the degree sign in ISO 8859-1
    assert ("body-temperature", "37.8", "Cel") in [v for r in decode(latin1) for v in values(r)]


def test_escape_sequences_are_unescaped_and_custom_separators_are_honoured():
    custom = (
        "MSH#$*!%#SYNTH#SYNTHCARE###202611260800##ORU$R01#SYN-2#P#2.5\r"
        "OBX#1#NM#8310-5$Body temp!T!x$LN##37.1#Cel#####F###202611260759"
    )
    (temp,) = decode(custom)
    assert values(temp) == [("body-temperature", "37.1", "Cel")]
    assert (
        hl7v2.unescape("C\\S\\R\\T\\P\\F\\x\\E\\\\.sp99999999\\", hl7v2.Encoding("|", "^", "~", "\\", "&"))
        == "C^R&P|x\\"
    )


def test_unit_spellings_map_to_ucum():
    cases = [
        ("8480-6^Systolic^LN", "8462-4^Diastolic^LN", "kPa", "kPa"),
        ("8480-6^Systolic^LN", "8462-4^Diastolic^LN", "mm Hg", "mm[Hg]"),
        ("8480-6^Systolic^LN", "8462-4^Diastolic^LN", "265987^MDC_DIM_KILO_PASCAL^MDC", "kPa"),
    ]
    for sys_code, dia_code, unit, ucum in cases:
        (bp,) = decode(
            message(
                "OBR|1||||||202611260800",
                f"OBX|1|NM|{sys_code}||16.0|{unit}|||||F",
                f"OBX|2|NM|{dia_code}||10.7|{unit}|||||F",
            )
        )
        assert [u for _, _, u in values(bp)] == [ucum, ucum]
    for code, unit, ucum in [
        ("8310-5^Temp^LN", "degF", "[degF]"),
        ("8310-5^Temp^LN", "^MDC_DIM_DEGC^MDC", "Cel"),
        ("29463-7^Weight^LN", "lbs", "[lb_av]"),
        ("8302-2^Height^LN", "263441^MDC_DIM_CENTI_M^MDC", "cm"),
        ("8302-2^Height^LN", "in", "[in_i]"),
        ("1988-5^CRP^LN", "mg/dl", "mg/dL"),
        ("14743-9^Glucose^LN", "mmol/l", "mmol/L"),
        ("8867-4^HR^LN", "beats/min", "/min"),
        ("34714-6^INR^LN", "INR", "{INR}"),
        ("59261-8^HbA1c^LN", "mmol/mol", "mmol/mol"),
        ("39156-5^BMI^LN", "kg/m2", "kg/m2"),
        ("2708-6^SpO2^LN", "%", "%"),
    ]:
        (reading,) = decode(message("OBR|1||||||202611260800", f"OBX|1|NM|{code}||5|{unit}|||||F"))
        assert reading.value.unit == ucum, (code, unit)


def test_codes_are_read_from_the_alternate_identifier_and_other_repetitions():
    (crp,) = decode(
        message("OBR|1||||||202611260800", "OBX|1|NM|LOCAL-CRP^CRP^99SYN^NPU19748^P-CRP^NPU||12|mg/L|||||F")
    )
    assert values(crp) == [("crp", "12", "mg/L")]
    (inr,) = decode(message("OBR|1||||||202611260800", "OBX|1|NM|X1^x^99SYN~46418-0^INR^LN||1.9||||||F"))
    assert values(inr) == [("inr", "1.9", "{INR}")]
    (glu,) = decode(message("OBR|1||||||202611260800", "OBX|1|NM|NPU02187^B-Glucose^99DK||5.5|mmol/L|||||F"))
    assert glu.measurement == "glucose-undetermined-whole-blood"


def test_unknown_codes_and_other_segments_are_skipped():
    assert (
        decode(
            message(
                "OBR|1||||||202611260800",
                "OBX|1|NM|12345-6^Unknown^LN||5|mg/L|||||F",
                "OBX|2|ST|69965^MDC_DEV_MON^MDC|1.0.0.0|x||||||X",
                "NTE|1||a note",
                "ZXY|1|2",
            )
        )
        == []
    )
    assert decode(message()) == []


def test_status_d_w_i_n_o_carry_nothing_and_c_p_r_s_carry_a_value():
    for status in "DWINO":
        assert decode(message("OBR|1||||||202611260800", f"OBX|1|NM|1988-5^CRP^LN||12|mg/L|||||{status}")) == []
    for status in ("C", "P", "R", "S", "F", "", "f"):
        (crp,) = decode(message("OBR|1||||||202611260800", f"OBX|1|NM|1988-5^CRP^LN||12|mg/L|||||{status}"))
        assert values(crp) == [("crp", "12", "mg/L")]


def test_sn_without_comparator_is_a_number_and_null_flavours_without_value_give_nothing():
    (crp,) = decode(message("OBR|1||||||202611260800", "OBX|1|SN|1988-5^CRP^LN||=^12.5|mg/L|||||F"))
    assert values(crp) == [("crp", "12.5", "mg/L")]
    assert decode(message("OBR|1||||||202611260800", "OBX|1|NM|1988-5^CRP^LN|||mg/L||NAV|||F")) == []
    (neg,) = decode(message("OBR|1||||||202611260800", "OBX|1|NM|14743-9^Glucose^LN||-INF|mmol/L|||||F"))
    assert neg.value.number.special is SpecialValue.NEGATIVE_INFINITY


def test_blood_pressure_groups_follow_the_sub_id_parents():
    two_cuffs = message(
        "OBR|1||||||202611260800+0100",
        "OBX|1|NM|150021^SYS^MDC|1.0.1.1|120|mmHg|||||R",
        "OBX|2|NM|150022^DIA^MDC|1.0.1.2|80|mmHg|||||R",
        "OBX|3|NM|150021^SYS^MDC|1.0.2.1|130|mmHg|||||R",
        "OBX|4|NM|150022^DIA^MDC|1.0.2.2|85|mmHg|||||R",
    )
    assert [values(r) for r in decode(two_cuffs)] == [
        [("systolic", "120", "mm[Hg]"), ("diastolic", "80", "mm[Hg]")],
        [("systolic", "130", "mm[Hg]"), ("diastolic", "85", "mm[Hg]")],
    ]
    per_obr = message(
        "OBR|1||||||202611260800",
        "OBX|1|NM|8480-6^SYS^LN||120|mmHg|||||F",
        "OBR|2||||||202611260900",
        "OBX|1|NM|8462-4^DIA^LN||80|mmHg|||||F",
    )
    with pytest.raises(DecodeError) as caught:
        decode(per_obr)
    assert caught.value.field == "OBX[1].3" and "diastolic" in str(caught.value)


# --- refusals ------------------------------------------------------------------------------------------

OK_OBR = "OBR|1||||||202611260800"


@pytest.mark.parametrize(
    "payload, field, words",
    [
        (b"", "MSH", "no MSH"),
        (b"PID|||SYNTH-PID-0042", "MSH", "no MSH"),
        (b"MSH|", "MSH.2", "too short"),
        (b"MSH|^^^^|x", "MSH.2", "distinct"),
        (b"MSH|^~\\&|A|B|||20261126||ADT^A01|1|P|2.5", "MSH.9", "ORU^R01"),
        (b"MSH|^~\\&|A|B|||20261126||ORU^R30|1|P|2.5", "MSH.9", "ORU^R30"),
        (
            b"MSH|^~\\&|A|B|||20261126||ORU^R01|1|P|2.5\rMSH|^~\\&|A|B|||20261126||ORU^R01|2|P|2.5",
            "MSH[2]",
            "one message",
        ),
        (
            message(
                OK_OBR,
                "OBX|1|NM|8310-5^Temp^LN||36.9|Cel|||||F",
                "OBX|2|NM|8867-4^HR^LN||60|/min|||||F",
                "OBX|3|NM|1988-5^CRP^LN||twelve|mg/L|||||F",
            ),
            "OBX[3].5",
            "'twelve' is not a number",
        ),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12,5|mg/L|||||F"), "OBX[1].5", "not a number"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12~13|mg/L|||||F"), "OBX[1].5", "2 values"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12^13|mg/L|||||F"), "OBX[1].5", "no components"),
        (message(OK_OBR, "OBX|1|SN|1988-5^CRP^LN||<^8|mg/L|||||F"), "OBX[1].5", "comparator"),
        (message(OK_OBR, "OBX|1|SN|1988-5^CRP^LN||^5^-^10|mg/L|||||F"), "OBX[1].5", "range"),
        (message(OK_OBR, "OBX|1|ST|1988-5^CRP^LN||12|mg/L|||||F"), "OBX[1].2", "NM or SN"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN|||mg/L|||||F"), "OBX[1].5", "no value"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12|furlong|||||F"), "OBX[1].6", "'furlong' is not one crp"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12|mmol/L|||||F"), "OBX[1].6", "not one crp"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12||||||F"), "OBX[1].6", "needs a unit"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12|mg/L|||||Q"), "OBX[1].11", "unknown result status"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12|mg/L|||||F|||20261126"), "OBX[1].14", "at least minutes"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12|mg/L|||||F|||20261332080000"), "OBX[1].14", "exists"),
        (message(OK_OBR, "OBX|1|NM|1988-5^CRP^LN||12|mg/L|||||F|||202611260800+2500"), "OBX[1].14", "UTC offset"),
        (message("OBR|1||||||yesterday", "OBX|1|NM|1988-5^CRP^LN||12|mg/L|||||F"), "OBR[1].7", "HL7 time"),
        (
            message(
                OK_OBR,
                "OBX|1|NM|150021^SYS^MDC|1.0.1.1|120|mmHg|||||R",
                "OBX|2|NM|150021^SYS^MDC|1.0.1.1|121|mmHg|||||R",
            ),
            "OBX[2].3",
            "second systolic",
        ),
        (message(OK_OBR, "OBX|1|NM|150022^DIA^MDC|1.0.1.2|80|mmHg|||||R"), "OBX[1].3", "systolic missing"),
    ],
)
def test_malformed_messages_are_refused_naming_segment_and_field(payload, field, words):
    with pytest.raises(DecodeError) as caught:
        decode(payload)
    assert caught.value.field == field, str(caught.value)
    assert words in str(caught.value)


# --- the code and unit tables agree with the terminology table -----------------------------------------

# codes this adapter reads that the table does not list for the measurement (each noted in the adapter)
EXTRA_LOINC = {"59408-5", "41653-7", "2339-0", "2345-7", "4548-4", "34714-6"}
EXTRA_NPU = {"NPU57947", "NPU57948"}


def test_mdc_codes_are_the_tables():
    for code, key in hl7v2.MDC_CODES.items():
        assert t.measurement(key).mdc.code == code, key


def test_loinc_and_npu_codes_are_the_tables_or_noted_extras():
    for code, key in hl7v2.LOINC_CODES.items():
        m = t.measurement(key)
        assert code in EXTRA_LOINC or m.loinc.code == code, (code, key)
    for code, key in hl7v2.NPU_CODES.items():
        m = t.measurement(key)
        assert code in EXTRA_NPU or m.npu.code == code, (code, key)


def test_units_are_the_ones_the_table_converts_canonical_first():
    for key, units in hl7v2.UNITS.items():
        m = t.measurement(key)
        assert units[0] == m.unit, key
        assert set(units) == set(m.conversions), key
    read = {*hl7v2.MDC_CODES.values(), *hl7v2.LOINC_CODES.values(), *hl7v2.NPU_CODES.values()}
    assert read <= set(hl7v2.UNITS)
    assert set(hl7v2.MDC_UNITS.values()) | set(hl7v2.MDC_UNIT_NAMES.values()) <= {
        u for m in t.MEASUREMENTS.values() for u in m.conversions
    }


# --- robustness ----------------------------------------------------------------------------------------

SEEDS = [fixture(p.name) for p in sorted(FIXTURES.glob("*.hl7"))]
HL7_CHARS = st.sampled_from(list("|^~\\&\r\n0123456789.+-ABCDEFMNOPRSTXZ NaIF%/"))


def decode_or_refuse(payload: bytes) -> None:
    """The contract: a DecodeError with a message, or readings that build into Observations the rules find no
    fault in but values outside the physiologic limits."""
    try:
        readings = decode(payload)
    except DecodeError as exc:
        assert str(exc)
        return
    for reading in readings:
        assert isinstance(reading, Reading) and reading.measurement in Hl7v2OruAdapter.reads
        for built in build(reading, CTX):
            assert_only_limit_errors(built.resource)
    text = repr(readings)
    assert not any(secret in text for secret in PID_SECRETS)


@st.composite
def mutated_messages(draw) -> bytes:
    payload = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["truncate", "delete", "insert", "replace", "byte", "swap-lines"]))
        if op == "truncate":
            del payload[draw(st.integers(0, len(payload))) :]
        elif op == "delete" and payload:
            i = draw(st.integers(0, len(payload) - 1))
            del payload[i : i + draw(st.integers(1, 8))]
        elif op == "insert":
            i = draw(st.integers(0, len(payload)))
            payload[i:i] = "".join(draw(st.lists(HL7_CHARS, min_size=1, max_size=6))).encode()
        elif op == "replace" and payload:
            payload[draw(st.integers(0, len(payload) - 1))] = ord(draw(HL7_CHARS))
        elif op == "byte" and payload:
            payload[draw(st.integers(0, len(payload) - 1))] = draw(st.integers(0, 255))
        elif op == "swap-lines":
            lines = bytes(payload).split(b"\r")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            payload = bytearray(b"\r".join(lines))
    return bytes(payload)


ROBUST = settings(
    max_examples=300, deadline=timedelta(milliseconds=1000), suppress_health_check=[HealthCheck.too_slow]
)  # 1 s: room for a loaded CI machine


@ROBUST
@given(payload=st.binary(max_size=200))
def test_random_bytes_are_decoded_or_refused(payload):
    decode_or_refuse(payload)


@ROBUST
@given(body=st.lists(HL7_CHARS, max_size=300).map("".join))
def test_random_hl7_shaped_text_is_decoded_or_refused(body):
    decode_or_refuse(("MSH|^~\\&|SYNTH|SYNTHCARE|||20261126080000||ORU^R01|1|P|2.6\r" + body).encode())


@ROBUST
@given(payload=mutated_messages())
def test_mutated_fixtures_are_decoded_or_refused(payload):
    decode_or_refuse(payload)


# --- through POST /ingest (SQLite and PostgreSQL) ------------------------------------------------------


def _hl7_envelope(payload: bytes) -> dict:
    import base64

    from homediag.synthetic import envelope, synthetic_patients

    env = envelope(synthetic_patients(1, seed=12)[0], b"", datetime.now(UTC).replace(microsecond=0))
    del env["payload_hex"]
    return {**env, "adapter": "hl7v2-oru", "payload_base64": base64.b64encode(payload).decode()}


def test_ingest_stores_results_discards_control_solution_and_refuses_a_bad_value(client, tokens, pilot):
    from homediag.synthetic import synthetic_patients

    pilot.enrol(synthetic_patients(1, seed=12)[0].cpr)
    auth = tokens.auth("gateway")
    taken = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y%m%d%H%M%S+0000")
    created = client.post(
        "/ingest",
        json=_hl7_envelope(
            message(
                f"OBR|1||||||{taken}", "OBX|1|NM|1988-5^CRP^LN||42|mg/l|||||F", "OBX|2|NM|NPU01685^INR^NPU||2.6||||||F"
            )
        ),
        headers=auth,
    )
    assert created.status_code == 201, created.text
    assert sorted(o["code"] for o in created.json()["observations"]) == ["160260", "1988-5"]
    assert "SYNTH-PID-0042" not in created.text and "Testperson" not in created.text

    control = client.post(
        "/ingest",
        json=_hl7_envelope(
            message(f"OBR|1||||||{taken}", "OBX|1|NM|160208^MDC_CONC_GLU_CONTROL^MDC|1.0.0.1|5.6|mmol/L|||||R")
        ),
        headers=auth,
    )
    assert control.status_code == 200, control.text
    assert control.json()["outcome"] == "discarded"

    refused = client.post(
        "/ingest",
        json=_hl7_envelope(message(f"OBR|1||||||{taken}", "OBX|1|NM|1988-5^CRP^LN||high|mg/l|||||F")),
        headers=auth,
    )
    assert refused.status_code == 422, refused.text
    (issue,) = refused.json()["issues"]["issue"]
    assert "OBX[1].5" in issue["diagnostics"] and issue["expression"] == ["envelope.payload_base64"]
    assert "SYNTH-PID-0042" not in refused.text and "Testperson" not in refused.text
