"""What a device vendor uses to prove an adapter: the conformance kit, the sandbox, its upload log.

- :func:`try_payload`: one payload through an adapter, the builder and the validator, with a fixed
  build context; nothing stored. The kit and ``POST /sandbox/{adapter}`` both use it.
- The conformance kit (``homediag adapters test ADAPTER CASES_DIR``): a folder of sample payloads,
  each with its expected Observations (a golden FHIR Bundle) or the refusal it must cause;
  :func:`run_kit` runs them, :func:`format_report` prints a pass/fail line per case with a unified
  diff for each mismatch.
- :func:`list_uploads`: a vendor's own devices' upload log (``GET /uploads``), never an identity.

See docs/adapters.md (how a vendor uses them) and docs/architecture.md (the contracts).
"""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import simplejson

from homediag.adapters.devices import DecodeError, Reading
from homediag.adapters.devices.registry import Adapter, Source
from homediag.fhir_profiles import (
    BuildContext,
    Built,
    Issue,
    build,
    check_rules,
    fhirjson,
    has_errors,
    operation_outcome,
    validate,
)
from homediag.fhir_profiles import terminology as t
from homediag.fhir_profiles.builder import fhir_datetime
from homediag.fhir_profiles.profiles import PROFILE_BASE

# The fixed build context of the kit (and the sandbox's default): the golden files stay the same
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
                f"{adapter.id}: '{unknown[0]}' is not a measurement key of fhir_profiles/measurements.toml (see docs/profiles.md)",
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


# -- the conformance kit -------------------------------------------------------------------------------
PAYLOAD_SUFFIXES = (".hex", ".bin", ".json")
EXPECTED_SUFFIX = ".expected.json"


class KitError(Exception):
    """The kit cannot run at all (no such folder, no cases): a usage error, not a failed case."""


@dataclass(frozen=True)
class Case:
    name: str
    payload: Path | None  # None: an expected file without a payload
    expected: Path


@dataclass
class CaseResult:
    name: str
    status: Literal["pass", "fail", "written"]
    summary: str
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status != "fail"


@dataclass
class KitReport:
    adapter: Adapter
    source: Source
    directory: Path
    results: list[CaseResult]

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def find_cases(directory: Path) -> list[Case]:
    """The cases of a folder: each payload file (NAME.hex, NAME.bin, NAME.json) with NAME.expected.json."""
    if not directory.is_dir():
        raise KitError(f"{directory} is not a folder of cases")
    payloads: dict[str, list[Path]] = {}
    expected: set[str] = set()
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        if path.name.endswith(EXPECTED_SUFFIX):
            expected.add(path.name[: -len(EXPECTED_SUFFIX)])
        elif path.suffix in PAYLOAD_SUFFIXES:
            payloads.setdefault(path.stem, []).append(path)
    cases = []
    for name in sorted(set(payloads) | expected):
        found = payloads.get(name, [])
        if len(found) > 1:
            raise KitError(f"case {name} has {len(found)} payload files ({', '.join(p.name for p in found)}); keep one")
        cases.append(Case(name, found[0] if found else None, directory / f"{name}{EXPECTED_SUFFIX}"))
    if not cases:
        raise KitError(
            f"{directory} holds no cases: add NAME.hex, NAME.bin or NAME.json payload files, each with NAME{EXPECTED_SUFFIX}"
        )
    return cases


class _PayloadProblem(Exception):
    pass


def read_payload(path: Path, adapter: Adapter) -> Any:
    """A case's payload as the adapter gets it at ingest: bytes, or the parsed JSON object.

    A ``.hex`` file holds hexadecimal digits; whitespace and ``:`` between them are ignored, and so
    is everything from a ``#`` to the end of a line (comments).
    """
    if adapter.input_kind == "json":
        if path.suffix != ".json":
            raise _PayloadProblem(
                f"{adapter.id} reads JSON (input_kind 'json'): give the payload as {path.stem}.json, the object a gateway sends as the envelope's data"
            )
        try:
            return fhirjson.loads(path.read_bytes())  # numbers as Decimal, as at ingest
        except ValueError as exc:
            raise _PayloadProblem(f"{path.name} is not JSON: {exc}") from None
    if path.suffix == ".json":
        raise _PayloadProblem(
            f"{adapter.id} reads bytes (input_kind 'bytes'): give the payload as {path.stem}.hex (hexadecimal text) or {path.stem}.bin (the bytes)"
        )
    if path.suffix == ".bin":
        return path.read_bytes()
    text = "".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    try:
        return bytes.fromhex(text.replace(":", "").replace(" ", "").replace("\t", ""))
    except ValueError:
        raise _PayloadProblem(
            f"{path.name} is not hexadecimal (pairs of 0-9/a-f digits; whitespace, ':' and # comments are ignored)"
        ) from None


def _canonical(document: Any) -> str:
    """Pretty JSON with sorted keys and exact decimals: what golden files are compared as."""
    return str(simplejson.dumps(document, use_decimal=True, indent=2, sort_keys=True, ensure_ascii=False))


def _write(path: Path, document: Any) -> None:
    path.write_text(fhirjson.dumps_pretty(document) + "\n")


def _differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where two JSON documents differ, as ``path: expected X, got Y`` lines."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in [*expected, *(k for k in actual if k not in expected)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{where}: expected, missing")
            elif key not in expected:
                out.append(f"{where}: not expected, present")
            else:
                out += _differences(expected[key], actual[key], where)
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = [
            line
            for i, (e, a) in enumerate(zip(expected, actual, strict=False))
            for line in _differences(e, a, f"{path}[{i}]")
        ]
        if len(expected) != len(actual):
            out.append(f"{path}: expected {len(expected)} item(s), got {len(actual)}")
        return out
    if _canonical(expected) != _canonical(actual):
        return [f"{path}: expected {_canonical(expected)[:60]}, got {_canonical(actual)[:60]}"]
    return []


def _diff(expected: Any, actual: Any, name: str, limit: int = 200) -> list[str]:
    where = _differences(expected, actual)
    lines = where[:10] + ([f"... and {len(where) - 10} more"] if len(where) > 10 else [])
    diff = list(
        difflib.unified_diff(
            _canonical(expected).splitlines(),
            _canonical(actual).splitlines(),
            f"{name}{EXPECTED_SUFFIX}",
            f"{name}: the adapter's output",
            n=5,
            lineterm="",
        )
    )
    if len(diff) > limit:
        diff = diff[:limit] + [f"... ({len(diff) - limit} more diff lines)"]
    return lines + diff


def _summary(bundle: dict[str, Any]) -> list[str]:
    """One line per Observation: its code, value(s) and time."""
    lines = []
    for i, entry in enumerate(bundle["entry"]):
        r = entry["resource"]
        parts = [r] + list(r.get("component") or [])
        values = []
        for part in parts:
            if "valueQuantity" in part:
                values.append(f"{part['valueQuantity'].get('value')} {part['valueQuantity'].get('code')}")
            elif "valueBoolean" in part:
                values.append(str(part["code"]["coding"][0].get("display") or part["code"]["coding"][0]["code"]))
            elif "dataAbsentReason" in part:
                values.append(f"no value ({part['dataAbsentReason']['coding'][0]['code']})")
        code = r["code"].get("text") or r["code"]["coding"][0]["code"]
        lines.append(f"entry[{i}] {code} at {r.get('effectiveDateTime')}: {', '.join(values) or '-'}")
    return lines


def _issue_lines(issues: Sequence[Issue]) -> list[str]:
    return [f"{i.severity}: {i.diagnostics}" + (f" [{i.expression}]" if i.expression else "") for i in issues]


def run_case(adapter: Adapter, case: Case, *, update: bool = False) -> CaseResult:
    name = case.name
    if case.payload is None:
        return CaseResult(
            name,
            "fail",
            f"{case.expected.name} has no payload: add {name}.hex, {name}.bin or {name}.json, or remove it",
        )
    try:
        payload = read_payload(case.payload, adapter)
    except _PayloadProblem as exc:
        return CaseResult(name, "fail", str(exc))
    if adapter.input_kind == "json" and not isinstance(payload, dict):
        trial = Trial(
            adapter,
            refusal=Issue(
                "error", "structure", f"the envelope's data must be a JSON object, got {type(payload).__name__}", "data"
            ),
        )
    else:
        trial = try_payload(adapter, payload)
    if trial.crash is not None:
        return CaseResult(name, "fail", trial.crash)
    if trial.contract:
        return CaseResult(name, "fail", f"{adapter.id} breaks its own declaration:", trial.contract)

    expectation: Any = None
    if case.expected.exists():
        try:
            expectation = fhirjson.loads(case.expected.read_bytes())
        except ValueError as exc:
            return CaseResult(name, "fail", f"{case.expected.name} is not JSON: {exc}")
        valid = isinstance(expectation, dict) and (
            expectation.get("resourceType") == "Bundle" or isinstance(expectation.get("refuse"), str)
        )
        if not valid:
            return CaseResult(
                name,
                "fail",
                f'{case.expected.name} must be a FHIR Bundle of the expected Observations, or {{"refuse": "text the refusal must contain"}}',
            )
    elif not update:
        return CaseResult(
            name,
            "fail",
            f'no {case.expected.name}: write the Observations you expect there (a FHIR Bundle, type collection), or {{"refuse": "..."}} for a payload that must be refused; or run again with --update to write the current output as it, then check it by hand',
            _preview(trial),
        )

    result = _judge(trial, expectation, name) if expectation is not None else None
    if result is not None and result.passed:
        return result
    if update:
        _write(case.expected, _expectation_of(trial))
        was = "wrote" if expectation is None else "updated"
        return CaseResult(
            name,
            "written",
            f"{was} {case.expected.name} from the current output ({trial.verdict}); check it by hand",
            _preview(trial),
        )
    assert result is not None
    return result


def _preview(trial: Trial) -> list[str]:
    reasons = trial.refusal_texts()
    return [f"refused: {reasons[0]}"] if reasons else _summary(trial.bundle())


def _expectation_of(trial: Trial) -> dict[str, Any]:
    """What the expected file would say if the current output were right."""
    reasons = trial.refusal_texts()
    if reasons:
        return {"refuse": reasons[0]}
    return trial.bundle()


def _judge(trial: Trial, expectation: dict[str, Any], name: str) -> CaseResult:
    reasons = trial.refusal_texts()
    by = "the adapter" if trial.refusal is not None else "the profile rules"
    warnings = _issue_lines([i for i in trial.all_issues() if i.severity == "warning"])
    if "refuse" in expectation:
        wanted = str(expectation["refuse"])
        if not reasons:
            return CaseResult(
                name,
                "fail",
                f"expected a refusal containing {wanted!r}, but the payload was not refused ({trial.verdict}); it gave:",
                _summary(trial.bundle()),
            )
        if not any(wanted in r for r in reasons):
            return CaseResult(name, "fail", f"refused by {by}, but not with {wanted!r}; the reason given:", reasons)
        return CaseResult(name, "pass", f"refused by {by}: {next(r for r in reasons if wanted in r)}", warnings)
    actual = trial.bundle()
    count = len(actual["entry"])
    if reasons and trial.refusal is not None:
        return CaseResult(
            name,
            "fail",
            f"expected {len(expectation.get('entry') or [])} Observation(s), but the adapter refused the payload: {reasons[0]}",
        )
    if _canonical(actual) != _canonical(expectation):
        return CaseResult(
            name,
            "fail",
            f"the Observations differ from {name}{EXPECTED_SUFFIX} (- expected, + actual):",
            _diff(expectation, actual, name) + _issue_lines(trial.issues),
        )
    if reasons:
        return CaseResult(
            name,
            "fail",
            f'the Observations match {name}{EXPECTED_SUFFIX}, but the profile rules refuse them, so ingest would reject the reading; if it must be refused, make the expected file {{"refuse": "..."}}',
            _issue_lines([i for i in trial.issues if i.severity in ("error", "fatal")]),
        )
    note = "" if trial.verdict == "accepted" else f", {trial.verdict}"
    return CaseResult(name, "pass", f"{count} Observation(s){note}", warnings)


def run_kit(adapter_id: str, directory: Path, *, update: bool = False) -> KitReport:
    """Run every case of ``directory`` with the adapter ``adapter_id`` (raises UnknownAdapter, KitError)."""
    from homediag.adapters.devices import registry

    adapter = registry.get(adapter_id)
    source = registry.source(adapter_id)
    results: list[CaseResult] = []
    unknown = [k for k in adapter.reads if k not in t.MEASUREMENTS]
    if unknown:
        results.append(
            CaseResult(
                "(adapter)",
                "fail",
                f"reads names {', '.join(repr(k) for k in unknown)}, not measurement keys of fhir_profiles/measurements.toml (see docs/profiles.md)",
            )
        )
    results += [run_case(adapter, case, update=update) for case in find_cases(directory)]
    return KitReport(adapter, source, directory, results)


def format_report(report: KitReport) -> str:
    a = report.adapter
    ctx = EXAMPLE_CONTEXT
    lines = [
        f"adapter {a.id} ({report.source}): {a.description}",
        f"  reads {a.input_kind}: {', '.join(a.reads)}",
        f"  build context: Patient/{ctx.patient_id}, Device/{ctx.device_id}, gateway received {fhir_datetime(ctx.gateway_received_at)} (fixed, so that expected files stay the same)",
        f"cases: {report.directory}",
        "",
    ]
    width = max(len(r.name) for r in report.results) if report.results else 0
    label = {"pass": "PASS ", "fail": "FAIL ", "written": "WROTE"}
    for r in report.results:
        lines.append(f"{label[r.status]} {r.name:{width}}  {r.summary}")
        lines += [f"      {d}" for d in r.details]
    passed = sum(1 for r in report.results if r.status == "pass")
    written = sum(1 for r in report.results if r.status == "written")
    lines.append("")
    tail = f", {written} written" if written else ""
    verdict = "all cases pass" if report.ok else "FAILED"
    lines.append(f"{verdict}: {passed} of {len(report.results)} cases passed, {report.failed} failed{tail}")
    return "\n".join(lines)


# -- the vendor's upload log ------------------------------------------------------------------------------
MAX_UPLOADS_PAGE = 500


@dataclass
class UploadPage:
    total: int
    count: int
    offset: int
    uploads: list[dict[str, Any]]


def _redacted(document: Any) -> Any:
    """The stored redacted envelope, redacted once more (the patient object reduced to its system)."""
    from homediag.envelope import redact

    return redact(document) if isinstance(document, dict) else document


def _testing_permitted(rt: Any, session: Any, principal: Any, rows: Sequence[Any]) -> set[str]:
    """The patient keys on this page whose consent permits product testing (HTEST) now."""
    if principal.role == "admin":
        return set()
    from homediag.access import AccessService

    keys = sorted({u.patient_key for u in rows if u.patient_key})
    return set(AccessService(rt).permitted_windows(session, "HTEST", keys)) if keys else set()


def _envelope_for(principal: Any, upload: Any, testing: set[str]) -> dict[str, Any]:
    """What a reader sees of the envelope itself.

    An administrator: the redacted envelope. A vendor: the payload only when no patient was
    identified (a refusal before that: the vendor needs it to debug its device) or the patient's
    consent permits product testing; never the device's serial or address beside an identified
    patient's reading, so that a reading cannot be tied to a patient's device outside care.
    """
    envelope = _redacted(upload.redacted)
    if principal.role == "admin" or not upload.patient_key:
        return {"redacted": envelope}
    if upload.patient_key not in testing:
        return {
            "redacted": None,
            "withheld": "the patient has not consented to product testing (HTEST): the payload is not shown",
        }
    if isinstance(envelope, dict) and isinstance(envelope.get("device"), dict):
        envelope = {
            **envelope,
            "device": {k: v for k, v in envelope["device"].items() if k not in ("serial", "address")},
        }
    return {"redacted": envelope}


def list_uploads(rt: Any, principal: Any, *, count: int = 50, offset: int = 0) -> UploadPage:
    """The upload log a vendor may see (its organisation's devices; an administrator: all), newest first.

    Each entry: id, received_at, adapter, device id, outcome, counts, issues and the redacted
    envelope as far as the reader may see it (``_envelope_for``); never the patient key, the
    patient's id or a CPR. The listing is audited.
    """
    from sqlalchemy import and_, func, or_, select

    from homediag import audit
    from homediag.store import models as m

    count = max(0, min(count, MAX_UPLOADS_PAGE))
    offset = max(0, offset)
    query = select(m.Upload).outerjoin(m.Device, m.Device.id == m.Upload.device_id)
    if principal.role != "admin":
        # the device's maker as the gateway named it; an upload refused before its device was ever
        # stored is matched on the manufacturer in its (redacted) envelope
        stated = m.Upload.redacted[("device", "manufacturer")].as_string()
        query = query.where(
            or_(
                m.Device.manufacturer == principal.organisation,
                and_(m.Device.id.is_(None), stated == principal.organisation),
            )
        )
    with rt.sessions.begin() as session:
        total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = (
            session.execute(query.order_by(m.Upload.received_at.desc(), m.Upload.id.desc()).limit(count).offset(offset))
            .scalars()
            .all()
            if count
            else []
        )
        testing = _testing_permitted(rt, session, principal, rows)
        uploads = [
            {
                "id": u.id,
                "received_at": u.received_at.replace(tzinfo=UTC).isoformat(),
                "adapter": u.adapter,
                "device": u.device_id,
                "outcome": u.outcome,
                "counts": {"created": u.created, "duplicates": u.duplicates, "rejected": u.rejected},
                "issues": u.issues or operation_outcome([]),
                **_envelope_for(principal, u, testing),
            }
            for u in rows
        ]
        scope = "all uploads" if principal.role == "admin" else f"devices of {principal.organisation}"
        audit.append(
            session,
            rt.keys,
            [
                audit.Entry(
                    principal.id,
                    principal.role,
                    "uploads",
                    "permit",
                    purpose=principal.purpose,
                    entity="upload",
                    detail=f"{len(uploads)} of {total} returned ({scope}), offset {offset}",
                )
            ],
        )
    return UploadPage(total, count, offset, uploads)


def record_sandbox(rt: Any, principal: Any, adapter_id: str, outcome: str, detail: str) -> None:
    """Audit one sandbox call."""
    from homediag import audit

    with rt.sessions.begin() as session:
        audit.append(
            session,
            rt.keys,
            [
                audit.Entry(
                    principal.id,
                    principal.role,
                    "sandbox",
                    outcome,
                    purpose=principal.purpose,
                    entity=f"adapter/{adapter_id[:100]}",
                    detail=detail[:500],
                )
            ],
        )


def sandbox_context(
    *, device_id: str | None, received_at: datetime | None, local_zone: Any = None, npu_system: str | None = None
) -> BuildContext:
    """The sandbox's build context: the example patient; the device and receive time when given."""
    ctx = replace(
        EXAMPLE_CONTEXT,
        device_id=device_id or EXAMPLE_CONTEXT.device_id,
        gateway_received_at=received_at or EXAMPLE_RECEIVED_AT,
    )
    if local_zone is not None:
        ctx = replace(ctx, local_zone=local_zone)
    if npu_system is not None:
        ctx = replace(ctx, npu_system=npu_system)
    return ctx
