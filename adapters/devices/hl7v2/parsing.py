"""Reading an HL7 v2 message in ER7 (pipe-and-hat) encoding into segments.

The payload is one message: segments separated by CR (CR LF and LF are read too), in UTF-8 or,
when that fails, ISO 8859-1; MLLP framing (VT ... FS CR) is removed. The message is split with
python-hl7 (PyPI ``hl7``: separators from MSH-1/MSH-2, segments, fields, repetitions, components);
escapes are undone here, field by field, as they are read (:func:`unescape`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import hl7
from hl7.exceptions import HL7Exception

from ..errors import DecodeError

MAX_LENGTH = 1_000_000


def quote(text: str, limit: int = 40) -> str:
    """``text`` for a message, cut after ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclass(frozen=True)
class Encoding:
    """The separator and escape characters of a message (MSH-1 and MSH-2)."""

    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str


@dataclass(frozen=True)
class Segment:
    """One segment: its name, its ordinal among segments of that name (1-based), its fields.

    ``fields[n]`` is field n (HL7 numbering, MSH too) as a list of repetitions, each a list of
    components, each its first subcomponent, still escaped.
    """

    name: str
    ordinal: int
    fields: dict[int, list[list[str]]]

    def where(self, number: int) -> str:
        return f"{self.name}[{self.ordinal}].{number}" if self.name != "MSH" else f"MSH.{number}"

    def repetitions(self, number: int) -> list[list[str]]:
        return self.fields.get(number, [])


def to_text(payload: bytes | bytearray | memoryview | str) -> str:
    """The message text: MLLP framing removed, UTF-8 or else ISO 8859-1, segments separated by CR."""
    if isinstance(payload, str):  # tolerated for callers that already decoded
        text = payload
    else:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise DecodeError(f"an HL7 v2 message is bytes, got {type(payload).__name__}", field="payload")
        raw = bytes(payload)
        if len(raw) > MAX_LENGTH:
            raise DecodeError(
                f"a message of {len(raw)} bytes is larger than the {MAX_LENGTH} this adapter reads", field="payload"
            )
        raw = raw.strip(b" \t\r\n\x00").removeprefix(b"\x0b").removesuffix(b"\x1c").strip(b" \t\r\n")
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


def encoding_of(text: str) -> Encoding:
    """The encoding characters MSH-1 and MSH-2 declare; DecodeError when there is no MSH or they are unusable."""
    if not text.startswith("MSH"):
        raise DecodeError("no MSH segment: an HL7 v2 message starts with MSH", field="MSH", offset=0)
    if len(text) < 8:
        raise DecodeError("MSH is too short to hold its encoding characters", field="MSH.2", offset=3)
    field = text[3]
    end = text.find(field, 4)
    chars = text[4:end] if end != -1 else text[4:]
    # four encoding characters; HL7 2.7 and later may add a fifth, the truncation character
    if (
        len(chars) not in (4, 5)
        or len(set(field + chars)) != len(chars) + 1
        or any(c.isalnum() or c in "\r " for c in field + chars)
    ):
        raise DecodeError(
            f"MSH-1 and MSH-2 must be distinct separator characters (|^~\\\\& or the like), got {quote(field + chars)}",
            field="MSH.2",
            offset=3,
        )
    return Encoding(field, chars[0], chars[1], chars[2], chars[3])


def _repetitions(field: Any) -> list[list[str]]:
    """python-hl7 nests only where a separator occurs: a field is a list of repetitions, each a leaf
    string or a list of components, each a leaf string or a list of subcomponents."""
    out: list[list[str]] = []
    for rep in field:
        if isinstance(rep, str):
            out.append([rep])
            continue
        out.append([comp if isinstance(comp, str) else (str(comp[0]) if len(comp) else "") for comp in rep])
    return out


def split_segments(text: str) -> list[Segment]:
    """Split the message with python-hl7 (separators from MSH-1/MSH-2, segments, fields, repetitions,
    components)."""
    try:
        message = hl7.parse(text)
    except (HL7Exception, ValueError, IndexError, TypeError) as exc:  # what the library raises on input it cannot split
        raise DecodeError(
            f"the message cannot be split as HL7 v2 ({type(exc).__name__})", field="MSH", offset=0
        ) from None
    counts: dict[str, int] = {}
    out = []
    for seg in message:
        name = str(seg[0]) if len(seg) else ""
        counts[name] = counts.get(name, 0) + 1
        fields = {number: _repetitions(seg[number]) for number in range(1, len(seg))}
        out.append(Segment(name, counts[name], fields))
    if counts.get("MSH", 0) > 1:
        raise DecodeError("more than one message (a second MSH): send one message per envelope", field="MSH[2]")
    return out


_ESCAPES = {"F": "field", "S": "component", "T": "subcomponent", "R": "repetition", "E": "escape"}


def unescape(text: str, enc: Encoding) -> str:
    """HL7 escape sequences \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ back to their characters; any other
    escape (highlighting, formatting, hex, character sets) dropped. Done here rather than with
    python-hl7's ``unescape``, which repeats formatting escapes such as \\.spNNN\\ NNN times unbounded."""
    if enc.escape not in text:
        return text
    e = re.escape(enc.escape)

    def replace(m: re.Match[str]) -> str:
        name = _ESCAPES.get(m.group(1))
        return str(getattr(enc, name)) if name else ""

    return re.sub(f"{e}([^{e}]*){e}", replace, text)
