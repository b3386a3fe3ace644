"""An HL7 v2 message with the identity it carries blanked, for everyone but the vault.

An allow-list, not a deny-list: of MSH, EVN, ORC, OBR and OBX only the fields that describe the
device, the order and the result are kept (codes, values, units, times, equipment ids); every other
segment (PID, PD1, NK1, PV1, PV2, NTE, GT1, IN1, Z-segments, and whatever a hub invents) keeps only
its name and set id. OBX-5 is kept only for numeric, coded-free and time value types (NM, SN, NA, TS,
DTM, DT, TM): a TX/ST/FT value is free text. Fields a caller's ``identifying`` test flags (a
CPR-shaped number in an order id, say) are blanked as well. The redacted message keeps its segment
order and still decodes with this adapter when the original did.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import DecodeError
from .parsing import encoding_of, to_text

BLANKED = ""
# segment -> the fields kept (HL7 numbering; for MSH, field 1 is the field separator itself)
KEPT_FIELDS: dict[str, frozenset[int]] = {
    "MSH": frozenset({1, 2, 3, 4, 7, 9, 10, 11, 12, 18, 21}),
    "EVN": frozenset({1, 2, 6}),
    "ORC": frozenset({1, 2, 3, 5, 9}),
    "OBR": frozenset({1, 2, 3, 4, 6, 7, 8, 22, 24, 25}),
    "OBX": frozenset({1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 14, 17, 18, 19, 20}),
}
VALUE_TYPES_KEPT = frozenset({"", "NM", "SN", "NA", "TS", "DTM", "DT", "TM"})
_SET_ID_MAX = 4


def redact_message(payload: bytes, identifying: Callable[[str], bool] | None = None) -> bytes:
    """``payload`` (one ER7 message, UTF-8 or ISO 8859-1, MLLP framing allowed) with only the allowed
    fields kept, as UTF-8 with CR between segments. DecodeError when it is not a readable message."""
    text = to_text(payload)
    enc = encoding_of(text)
    out: list[str] = []
    for line in text.split("\r"):
        if not line:
            continue
        name = line[:3]
        parts = line.split(enc.field)
        if name == "MSH":
            # parts[0] is "MSH", parts[i] is MSH-(i+1): MSH-1 is the separator the split consumed
            fields = {i + 1: p for i, p in enumerate(parts) if i >= 1}
        else:
            fields = dict(enumerate(parts))
            fields.pop(0, None)
        if not name.isalnum() or len(name) != 3:
            continue  # not a segment: nothing of it is kept
        kept = KEPT_FIELDS.get(name)
        if kept is None:
            set_id = fields.get(1, "")
            kept_values = {1: set_id} if set_id.isascii() and set_id.isdigit() and len(set_id) <= _SET_ID_MAX else {}
        else:
            kept_values = {n: v for n, v in fields.items() if n in kept}
            if name == "OBX" and fields.get(2, "").split(enc.component)[0].upper() not in VALUE_TYPES_KEPT:
                kept_values.pop(5, None)
        if identifying is not None:
            kept_values = {n: v for n, v in kept_values.items() if not (n > 2 and identifying(v))}
        last = max(kept_values, default=1 if name == "MSH" else 0)
        if name == "MSH":
            values = [kept_values.get(n, BLANKED) for n in range(2, last + 1)]
        else:
            values = [kept_values.get(n, BLANKED) for n in range(1, last + 1)]
        while values and values[-1] == BLANKED and not (name == "MSH" and len(values) == 1):
            values.pop()
        out.append(enc.field.join([name, *values]))
    if not out:
        raise DecodeError("no segment to keep", field="MSH")
    return "\r".join(out).encode("utf-8")
