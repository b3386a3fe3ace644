"""A patient's monitoring settings: patient group, thresholds and plan, as JSON in and out. Pure.

The default set of each patient group is data (``defaults.toml``, with its sources). A patient's settings are
versioned (``homediag.monitoring.store``); this module only reads, checks and writes their content:

    {"group": "heart-failure",
     "thresholds": {"systolic": {"red_low": 85, "yellow_low": 95, "yellow_high": 140, "red_high": 180}, ...},
     "weight_change": {"kg": 2.0, "days": 3, "red_kg": 3.0} | null,
     "plan": [{"measurement": "weight", "times": 1, "every_days": 1}, ...]}
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from .plan import PLAN_MEASURES, Plan, PlanItem
from .triage import MEASURES, UNITS, Limits, Thresholds, WeightChange

DEFAULT_GROUP = "general"
LIMIT_NAMES = ("red_low", "yellow_low", "yellow_high", "red_high")


class SettingsError(ValueError):
    """Settings that cannot be used; ``path`` says where (e.g. ``thresholds.systolic.red_high``)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


@dataclass(frozen=True)
class MonitoringSettings:
    group: str
    thresholds: Thresholds
    plan: Plan

    def to_json(self) -> dict[str, Any]:
        wc = self.thresholds.weight_change
        return {
            "group": self.group,
            "thresholds": {
                measure: {n: getattr(lim, n) for n in LIMIT_NAMES if getattr(lim, n) is not None}
                | {"unit": UNITS[measure]}
                for measure, lim in sorted(self.thresholds.limits.items(), key=lambda kv: MEASURES.index(kv[0]))
            },
            "weight_change": None
            if wc is None
            else {"kg": wc.kg, "days": wc.days, **({"red_kg": wc.red_kg} if wc.red_kg is not None else {})},
            "plan": [
                {"measurement": i.measurement, "times": i.times, "every_days": i.every_days} for i in self.plan.items
            ],
        }


def _number(value: Any, path: str) -> float:
    """A finite number (JSON read by the platform gives Decimals; TOML and Python floats and ints)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or not math.isfinite(value):
        raise SettingsError(f"a number is expected, got {value!r}", path)
    return float(value)


def _integer(value: Any, path: str) -> int:
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"a whole number is expected, got {value!r}", path)
    return value


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(f"an object is expected, got {type(value).__name__}", path)
    return value


def _no_other_keys(obj: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in obj:
        if key not in allowed:
            raise SettingsError(f"unknown field {key!r}; allowed: {', '.join(allowed)}", f"{path}.{key}")


def parse_limits(obj: Any, path: str) -> Limits:
    body = _object(obj, path)
    _no_other_keys(body, (*LIMIT_NAMES, "unit"), path)
    measure = path.rsplit(".", 1)[-1]
    if "unit" in body and body["unit"] != UNITS.get(measure):
        raise SettingsError(
            f"the limits of {measure} are in {UNITS.get(measure)}, not {body['unit']!r}", f"{path}.unit"
        )
    values = {n: _number(body[n], f"{path}.{n}") if body.get(n) is not None else None for n in LIMIT_NAMES}
    limits = Limits(**values)
    problem = limits.check()
    if problem:
        raise SettingsError(problem, path)
    return limits


def parse_thresholds(obj: Any, weight_change: Any, path: str = "thresholds") -> Thresholds:
    body = _object(obj, path)
    limits: dict[str, Limits] = {}
    for measure, lim in body.items():
        if measure not in MEASURES:
            raise SettingsError(f"unknown measure {measure!r}; known: {', '.join(MEASURES)}", f"{path}.{measure}")
        limits[measure] = parse_limits(lim, f"{path}.{measure}")
    wc = None
    if weight_change is not None:
        wpath = "weight_change"
        wbody = _object(weight_change, wpath)
        _no_other_keys(wbody, ("kg", "days", "red_kg"), wpath)
        wc = WeightChange(
            kg=_number(wbody.get("kg", 2.0), f"{wpath}.kg"),
            days=_integer(wbody.get("days", 3), f"{wpath}.days"),
            red_kg=_number(wbody["red_kg"], f"{wpath}.red_kg") if wbody.get("red_kg") is not None else None,
        )
        problem = wc.check()
        if problem:
            raise SettingsError(problem, wpath)
    return Thresholds(limits, wc)


def parse_plan(obj: Any, path: str = "plan") -> Plan:
    if not isinstance(obj, list):
        raise SettingsError(f"a list of plan items is expected, got {type(obj).__name__}", path)
    items: list[PlanItem] = []
    seen: set[str] = set()
    for index, raw in enumerate(obj):
        ipath = f"{path}[{index}]"
        body = _object(raw, ipath)
        _no_other_keys(body, ("measurement", "times", "every_days"), ipath)
        measurement = body.get("measurement")
        if not isinstance(measurement, str):
            raise SettingsError(f"measurement is required; one of {', '.join(PLAN_MEASURES)}", f"{ipath}.measurement")
        item = PlanItem(
            measurement,
            _integer(body.get("times", 1), f"{ipath}.times"),
            _integer(body.get("every_days", 1), f"{ipath}.every_days"),
        )
        problem = item.check()
        if problem:
            raise SettingsError(problem, ipath)
        if measurement in seen:
            raise SettingsError(f"{measurement} is planned twice", ipath)
        seen.add(measurement)
        items.append(item)
    return Plan(tuple(items))


def parse_settings(body: Any, base: MonitoringSettings | None = None) -> MonitoringSettings:
    """Settings from JSON. A new ``group`` starts from that group's defaults; what ``body`` gives (thresholds,
    weight_change, plan) replaces that part; what it leaves out is kept from ``base`` (same group) or the group."""
    obj = _object(body, "settings")
    _no_other_keys(obj, ("group", "thresholds", "weight_change", "plan", "valid_from", "note", "version"), "settings")
    group = obj.get("group", base.group if base is not None else DEFAULT_GROUP)
    groups = default_groups()
    if group not in groups:
        raise SettingsError(f"unknown patient group {group!r}; known: {', '.join(groups)}", "group")
    start = base if base is not None and base.group == group else groups[group].settings
    thresholds = start.thresholds
    if "thresholds" in obj or "weight_change" in obj:
        thresholds = parse_thresholds(
            obj["thresholds"] if "thresholds" in obj else start.to_json()["thresholds"],
            obj["weight_change"] if "weight_change" in obj else start.to_json()["weight_change"],
        )
    plan = parse_plan(obj["plan"]) if "plan" in obj else start.plan
    return MonitoringSettings(group, thresholds, plan)


@dataclass(frozen=True)
class Group:
    name: str
    title: str
    settings: MonitoringSettings


@cache
def default_groups() -> dict[str, Group]:
    """The default set of every patient group, from ``defaults.toml``."""
    raw = tomllib.loads(resources.files(__package__).joinpath("defaults.toml").read_text(encoding="utf-8"))
    groups: dict[str, Group] = {}
    for name, spec in raw["groups"].items():
        thresholds = parse_thresholds(spec.get("limits", {}), spec.get("weight_change"))
        groups[name] = Group(
            name, spec["title"], MonitoringSettings(name, thresholds, parse_plan(spec.get("plan", [])))
        )
    return groups
