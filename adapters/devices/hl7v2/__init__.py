"""HL7 v2 ORU^R01 results (``hl7v2-oru``) from point-of-care analysers and device hubs.

The payload is one message in ER7 (pipe-and-hat) encoding: segments separated by CR (CR LF and LF
are read too), in UTF-8 or, when that fails, ISO 8859-1; MLLP framing (VT ... FS CR) is removed.
The message is split with python-hl7 (PyPI ``hl7``: separators from MSH-1/MSH-2, segments, fields,
repetitions, components); this module reads the OBR and OBX fields it needs from that structure and
unescapes what it reads itself.

What is read
- MSH-9 must be ORU^R01. MSH-11 (processing id) D (debugging) or T (training) marks every reading
  as test data (the Observations get the HTEST security label).
- Every OBX whose OBX-3 (identifier, or alternate identifier) is a code this adapter knows: IHE
  PCD-01 style MDC codes (``150456^MDC_PULS_OXIM_SAT_O2^MDC``), LOINC (``1988-5^...^LN``) and NPU
  (``NPU19748^...^NPU``; HL7 table 0396 has no NPU entry, so the names NPU and 99NPU, the NPU OIDs,
  and an NPU-shaped code under a local 99xxx system are read as NPU). OBX segments with other codes
  (device hierarchy rows, settings, unknown results) are skipped, and so is every other segment:
  the patient (PID) in particular is never read; the envelope names the patient.
- OBX-2 NM (or SN without a comparator or range), OBX-5 the value, kept as an exact Decimal.
  ``NaN``, ``INF``/``+INF`` and ``-INF`` in OBX-5, or an empty OBX-5 with the IHE PCD null flavour
  NAN, PINF or NINF in OBX-8, give a value that is absent (FHIR ``dataAbsentReason``).
- OBX-6 the unit: UCUM, the usual non-UCUM spellings (``mmHg``, ``bpm``, ``mmol/l``, ``mg/l``,
  ``°C``, ...) and MDC dimension codes (``266016^MDC_DIM_MMHG^MDC``) are mapped to the UCUM code
  the terminology table accepts for the measurement; any other unit is refused.
- OBX-11 status: F, C, P, R (PCD-01 devices send R), S, U and an empty status carry a result; X
  (cannot be obtained) gives no reading; D, W, I, N and O carry no result to store.
- OBX-14 the observation time, else OBR-7 of the OBR above it: HL7 TS ``YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]``.
  With an offset the time is absolute; without one it is the device's local time. Minute precision
  at least: a date alone cannot date a home reading.
- Blood pressure: PCD-01 sends systolic, diastolic and mean as separate OBX under one parent sub-id
  (OBX-4 ``1.0.1.1``, ``1.0.1.2``, ``1.0.1.3`` under ``1.0.1``); they become one blood-pressure panel
  reading. Without dotted sub-ids the components under one OBR form the panel.
- The glucose meter's control-solution result (MDC_CONC_GLU_CONTROL) is never a patient's reading:
  its reading is marked ``discard``.

What is refused (DecodeError; ``field`` names segment and field: ``OBX[3].5`` is field 5 of the third
OBX segment of the message): no MSH, a message that is not ORU^R01, more than one message, a known
code with a value that is not a number (or a comparator, range or several values), a unit that does
not fit the measurement, an unknown result status, an unreadable time, and a blood pressure without
both systolic and diastolic.
Messages say what was wrong and where, and never quote anything outside MSH, OBR and OBX.

The package: :mod:`.parsing` splits ER7 into segments (python-hl7) and unescapes; :mod:`.segments`
reads the fields of MSH, OBR and OBX; :mod:`.codes` holds the code and unit tables; :mod:`.mapping`
turns OBX segments into readings and holds the adapter; :mod:`.redaction` blanks the identity a
message carries (PID, NK1, PV1, ... and free text) for everyone but the vault.
"""

from __future__ import annotations

from .codes import (
    BP_COMPONENTS,
    DISCARD,
    LOINC_CODES,
    MDC_CODES,
    MDC_UNIT_NAMES,
    MDC_UNITS,
    NPU_CODES,
    UNIT_ALIASES,
    UNITS,
)
from .mapping import Hl7v2OruAdapter, decode_message, measurement_of, unit_of
from .parsing import Encoding, Segment, encoding_of, split_segments, to_text, unescape
from .redaction import redact_message
from .segments import device_time, value_of

__all__ = [
    "BP_COMPONENTS",
    "DISCARD",
    "LOINC_CODES",
    "MDC_CODES",
    "MDC_UNITS",
    "MDC_UNIT_NAMES",
    "NPU_CODES",
    "UNITS",
    "UNIT_ALIASES",
    "Encoding",
    "Hl7v2OruAdapter",
    "Segment",
    "decode_message",
    "device_time",
    "encoding_of",
    "measurement_of",
    "redact_message",
    "split_segments",
    "to_text",
    "unescape",
    "unit_of",
    "value_of",
]
