"""The conformance kit (``homediag adapters test ADAPTER CASES_DIR``): a folder of sample payloads, each
with its expected Observations (a golden FHIR Bundle) or the refusal it must cause; :func:`run_kit` runs
them, :func:`format_report` prints a pass/fail line per case with a unified diff for each mismatch."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import simplejson

from homediag.adapters.devices.registry import Adapter, Source
from homediag.fhir_profiles import (
    Issue,
    fhirjson,
)
from homediag.fhir_profiles import terminology as t
from homediag.fhir_profiles.builder import fhir_datetime

from .trial import EXAMPLE_CONTEXT, Trial, try_payload

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
            f"{directory} holds no cases: add NAME.hex, NAME.bin or NAME.json payload files, each with "
            f"NAME{EXPECTED_SUFFIX}"
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
                f"{adapter.id} reads JSON (input_kind 'json'): give the payload as {path.stem}.json, the object a "
                "gateway sends as the envelope's data"
            )
        try:
            return fhirjson.loads(path.read_bytes())  # numbers as Decimal, as at ingest
        except ValueError as exc:
            raise _PayloadProblem(f"{path.name} is not JSON: {exc}") from None
    if path.suffix == ".json":
        raise _PayloadProblem(
            f"{adapter.id} reads bytes (input_kind 'bytes'): give the payload as {path.stem}.hex (hexadecimal "
            f"text) or {path.stem}.bin (the bytes)"
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
                f"{case.expected.name} must be a FHIR Bundle of the expected Observations, or "
                f'{{"refuse": "text the refusal must contain"}}',
            )
    elif not update:
        return CaseResult(
            name,
            "fail",
            f"no {case.expected.name}: write the Observations you expect there (a FHIR Bundle, type collection), "
            f'or {{"refuse": "..."}} for a payload that must be refused; or run again with --update to write the '
            "current output as it, then check it by hand",
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
                f"expected a refusal containing {wanted!r}, but the payload was not refused ({trial.verdict}); it "
                "gave:",
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
            f"expected {len(expectation.get('entry') or [])} Observation(s), but the adapter refused the payload: "
            f"{reasons[0]}",
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
            f"the Observations match {name}{EXPECTED_SUFFIX}, but the profile rules refuse them, so ingest would "
            f'reject the reading; if it must be refused, make the expected file {{"refuse": "..."}}',
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
                f"reads names {', '.join(repr(k) for k in unknown)}, not measurement keys of "
                "fhir_profiles/measurements.toml (see docs/profiles.md)",
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
        f"  build context: Patient/{ctx.patient_id}, Device/{ctx.device_id}, gateway received "
        f"{fhir_datetime(ctx.gateway_received_at)} (fixed, so that expected files stay the same)",
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
