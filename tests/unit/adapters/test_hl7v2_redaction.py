"""The HL7 v2 identity redaction: an allow-list of MSH/EVN/ORC/OBR/OBX fields; every other segment keeps its
name and set id only; the redacted message still decodes to the same readings."""

from __future__ import annotations

from pathlib import Path

import pytest

from homediag.adapters.devices import DecodeError
from homediag.adapters.devices.hl7v2 import decode_message, redact_message

FIXTURES = Path(__file__).parents[2] / "fixtures" / "hl7v2"
IDENTITY = ("SYNTH-PID-0042", "Testperson", "Synthia", "19700101")


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.hl7")))
def test_every_fixture_loses_its_identity_and_keeps_its_readings(fixture):
    raw = (FIXTURES / fixture).read_bytes()
    redacted = redact_message(raw)
    text = redacted.decode()
    assert not [s for s in IDENTITY if s in text]
    assert decode_message(redacted) == decode_message(raw)


def test_identity_segments_keep_only_their_name_and_set_id():
    message = "\r".join(
        [
            "MSH|^~\\&|HUB|SYNTH|||202611261032||ORU^R01|C1|P|2.5",
            "PID|1||0101901234^^^CPR||Testperson^Synthia||19700101|F|||Synthvej 1",
            "NK1|1|Testperson^Rita|SPO|||+4500000000",
            "PV1|1|O|WARD^^^^^^^^Dr Synth",
            "ZXY|secret|0101901234",
            "OBR|1||ORD-1|1988-5^CRP^LN|||202611261030|||Collector^Carl|||Clinical note|||Ordering^Olga",
            "OBX|1|NM|1988-5^CRP^LN|1|42|mg/l|<8|H|||F|||20261126103015||Observer^Otto",
            "OBX|2|TX|8251-1^Note^LN|2|Synthia called|||||F",
            "NTE|1||free text about Synthia",
        ]
    )
    out = redact_message(message.encode()).decode().split("\r")
    assert out[1:5] == ["PID|1", "NK1|1", "PV1|1", "ZXY"]
    assert out[5] == "OBR|1||ORD-1|1988-5^CRP^LN|||202611261030"  # collector, clinical note, orderer blanked
    assert out[6] == "OBX|1|NM|1988-5^CRP^LN|1|42|mg/l|<8|H|||F|||20261126103015"  # responsible observer blanked
    assert out[7] == "OBX|2|TX|8251-1^Note^LN|2||||||F"  # a text value is free text
    assert out[8] == "NTE|1"


def test_fields_the_caller_flags_are_blanked_too():
    message = "MSH|^~\\&|HUB|SYNTH|||202611261032||ORU^R01|0101901234|P|2.5\rOBR|1||ORD-0101901234"
    out = redact_message(message.encode(), identifying=lambda v: "0101901234" in v).decode()
    assert "0101901234" not in out and out.startswith("MSH|^~\\&|HUB|SYNTH|||202611261032||ORU^R01||P|2.5")


def test_what_is_not_a_message_is_refused():
    with pytest.raises(DecodeError):
        redact_message(b"PID|1||0101901234")
