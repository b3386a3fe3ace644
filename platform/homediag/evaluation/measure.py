"""The pilot metrics as FHIR R4 MeasureReport resources (summary), one per count cube, with the same
suppression as the report: a suppressed count has no ``count`` but the data-absent-reason ``masked``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhir.resources.R4B.measurereport import MeasureReport

from .suppression import ALL, Result

if TYPE_CHECKING:
    from .metrics import Metrics
    from .report import Parameters

MEASURE_BASE = "https://homediag.example.org/fhir/Measure/evaluation-"
CODES = "https://homediag.example.org/fhir/CodeSystem/evaluation"
ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
POPULATION = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population",
                          "code": "initial-population"}]}  # fmt: skip


def _population(res: Result, key: tuple[Any, ...]) -> dict[str, Any]:
    n = res.number(key)
    if n is None:
        return {
            "code": POPULATION,
            "extension": [{"url": ABSENT, "valueCode": "masked"}],
        }
    return {"code": POPULATION, "count": n}


def _report(res: Result, params: Parameters, stamp: dict[str, Any]) -> dict[str, Any]:
    cube = res.cube
    total = tuple(ALL for _ in cube.dims)
    strata = []
    for key in cube.published:
        if key == total:
            continue
        components = [
            {"code": {"coding": [{"system": CODES, "code": dim}]}, "value": {"text": str(v)}}
            for dim, v in zip(cube.dims, key, strict=True)
            if v != ALL
        ]
        strata.append({"component": components, "population": [_population(res, key)]})
    group: dict[str, Any] = {"code": {"coding": [{"system": CODES, "code": cube.name}]}}
    if total in cube.published:
        group["population"] = [_population(res, total)]
    group["stratifier"] = [{"code": [{"coding": [{"system": CODES, "code": "-".join(cube.dims)}]}], "stratum": strata}]
    resource = {
        "resourceType": "MeasureReport",
        "id": f"{cube.name}-{stamp['id'][:16]}",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE_BASE + cube.name,
        "date": f"{params.end.isoformat()}T23:59:59+01:00",
        "period": {"start": params.start.isoformat(), "end": params.end.isoformat()},
        "identifier": [{"system": "urn:homediag:evaluation-stamp", "value": stamp["id"]}],
        "group": [group],
    }
    MeasureReport.model_validate(resource)  # fhir.resources R4B: refuse to hand out an invalid resource
    return resource


def measure_reports(m: Metrics, params: Parameters, stamp: dict[str, Any]) -> dict[str, Any]:
    """A Bundle (collection) of one MeasureReport per count cube."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": _report(res, params, stamp)} for res in m.results],
    }
