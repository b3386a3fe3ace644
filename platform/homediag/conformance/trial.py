"""One payload through an adapter, the builder and the validator with a fixed build context; nothing
stored. The conformance kit and ``POST /sandbox/{adapter}`` both use it."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from homediag.adapters.devices import DecodeError, Reading
from homediag.adapters.devices.registry import Adapter
from homediag.fhir_profiles import (
    BuildContext,
    Built,
    Issue,
    build,
    check_rules,
    has_errors,
    operation_outcome,
    validate,
)
from homediag.fhir_profiles import terminology as t
from homediag.fhir_profiles.profiles import PROFILE_BASE

# from run to run. A reading whose device clock cannot date it gets this receive time.
EXAMPLE_RECEIVED_AT = datetime(2026, 1, 1, tzinfo=UTC)
EXAMPLE_CONTEXT = BuildContext(patient_id="example", device_id="example", gateway_received_at=EXAMPLE_RECEIVED_AT)

# On a Bundle entry whose reading the platform would not store as the patient's: hold | discard
EXT_DISPOSITION = f"{PROFILE_BASE}/reading-disposition"
EXT_DISPOSITION_REASON = f"{PROFILE_BASE}/reading-disposition-reason"

Verdict = Literal["accepted", "rejected", "held", "discarded", "refused", "crashed"]


# -- one payload through an adapter ------------------------------------------------------------------
@dataclass
class Trial:
    """What the platform makes of one payload, stored nowhere.

    ``refusal``: the adapter refused the payload (a DecodeError), as an issue. ``crash``: the
    adapter (or the builder, on what the adapter returned) failed with another exception: a bug.
    ``contract``: what the adapter returned breaks its own declaration (a reading it does not
    declare in ``reads``). ``issues``: the validator's findings on the built Observations.
    """

    adapter: Adapter
    built: list[tuple[Reading, Built]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    refusal: Issue | None = None
    crash: str | None = None
    contract: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """What ingest would do with it, as far as the adapter and the profiles decide."""
        if self.crash is not None:
            return "crashed"
        if self.refusal is not None:
            return "refused"
        if has_errors(self.issues):
            return "rejected"
        kept = [r for r, _ in self.built if r.disposition == "store"]
        if self.built and not kept:
            return "held" if any(r.disposition == "hold" for r, _ in self.built) else "discarded"
        return "accepted"

    def bundle(self) -> dict[str, Any]:
        """A Bundle (collection) of the Observations; held and discarded readings' entries say so."""
        entries = []
        for reading, b in self.built:
            entry: dict[str, Any] = {"fullUrl": f"urn:uuid:{_uuid(b.resource['id'])}", "resource": b.resource}
            if reading.disposition != "store":
                entry["extension"] = [{"url": EXT_DISPOSITION, "valueCode": reading.disposition}]
                if reading.disposition_reason:
                    entry["extension"].append(
                        {"url": EXT_DISPOSITION_REASON, "valueString": reading.disposition_reason}
                    )
            entries.append(entry)
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}

    def all_issues(self) -> list[Issue]:
        issues = [Issue("warning", "business-rule", f"{self.adapter.id}: {c}", None) for c in self.contract]
        if self.crash is not None:
            issues.append(Issue("fatal", "exception", self.crash, None))
        if self.refusal is not None:
            issues.append(self.refusal)
        for reading, _ in self.built:
            if reading.disposition_text:
                issues.append(Issue("information", "informational", reading.disposition_text, None))
        return issues + self.issues

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.all_issues())

    def refusal_texts(self) -> list[str]:
        """Every reason the platform would refuse the payload for (empty when it would not)."""
        if self.refusal is not None:
            return [self.refusal.diagnostics]
        return [i.diagnostics for i in self.issues if i.severity in ("error", "fatal")]


def _uuid(hex32: object) -> str:
    h = str(hex32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _crash_text(what: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{what} raised {type(exc).__name__}: {exc}{where}"


def _contract_problems(adapter: Adapter, readings: Any) -> tuple[list[Reading], list[str], str | None]:
    """The readings, the adapter's breaches of its own declaration, and a fatal problem if any."""
    if not isinstance(readings, list) or not all(isinstance(r, Reading) for r in readings):
        return (
            [],
            [],
            f"{adapter.id}: decode must return a list of Reading, got {type(readings).__name__}"
            + (f" holding {sorted({type(r).__name__ for r in readings})}" if isinstance(readings, list) else ""),
        )
    problems: list[str] = []
    for r in readings:
        keys = [
            r.measurement,
            *(m.measurement for m in r.components),
            *([r.value.measurement] if r.value is not None else []),
        ]
        unknown = [k for k in keys if k not in t.MEASUREMENTS]
        if unknown:
            return (
                [],
                [],
                f"{adapter.id}: '{unknown[0]}' is not a measurement key of fhir_profiles/measurements.toml (see "
                "docs/profiles.md)",
            )
        if r.measurement not in adapter.reads:
            problems.append(
                f"returned a '{r.measurement}' reading, which its reads ({', '.join(adapter.reads)}) does not declare"
            )
    return readings, problems, None


def try_payload(
    adapter: Adapter,
    payload: Any,
    ctx: BuildContext = EXAMPLE_CONTEXT,
    *,
    full_validation: bool = True,
    payload_field: str | None = None,
) -> Trial:
    """Decode ``payload`` with ``adapter``, build the Observations with ``ctx``, validate them.

    ``full_validation``: structure (fhir.resources) and the profile rules, as ``validate``; else
    only the rules, as ingest. Issue expressions name the Bundle entry (``Bundle.entry[1].resource...``).
    ``payload_field`` names where the payload came from (``payload_hex``...) for a refusal's expression.
    """
    trial = Trial(adapter)
    try:
        raw = adapter.decode(payload)
    except DecodeError as exc:
        trial.refusal = Issue("error", "structure", f"{adapter.id}: {exc}", payload_field or exc.location)
        return trial
    except Exception as exc:  # noqa: BLE001 - a vendor's bug is reported, never raised into the caller
        trial.crash = (
            _crash_text(f"{adapter.id}: decode", exc) + "; an adapter refuses a payload by raising DecodeError"
        )
        return trial
    readings, trial.contract, fatal = _contract_problems(adapter, raw)
    if fatal is not None:
        trial.crash = fatal
        return trial
    for reading in readings:
        try:
            trial.built += [(reading, b) for b in build(reading, ctx)]
        except Exception as exc:  # noqa: BLE001 - e.g. a unit the measurement has no conversion for
            trial.crash = _crash_text(
                f"{adapter.id}: building the {reading.measurement} Observation from its reading", exc
            )
            trial.built = []
            return trial
    check = validate if full_validation else check_rules
    for index, (_, b) in enumerate(trial.built):
        for issue in check(b.resource):
            where = issue.expression or "Observation"
            where = (
                f"Bundle.entry[{index}].resource" + where[len("Observation") :]
                if where.startswith("Observation")
                else f"Bundle.entry[{index}].resource: {where}"
            )
            trial.issues.append(Issue(issue.severity, issue.code, f"{b.measurement}: {issue.diagnostics}", where))
    return trial
