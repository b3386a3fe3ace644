"""The adapter registry: adapter id to adapter.

Two sources, one namespace of ids:

- the built-in adapters, listed in ``_ADAPTERS`` below;
- vendor adapters, found through the ``homediag.adapters`` entry-point group
  (``importlib.metadata``): a vendor ships its adapter in its own package and declares, in that
  package's ``pyproject.toml``::

      [project.entry-points."homediag.adapters"]
      acme-thermo-json = "acme_homediag.thermo:AcmeThermoJsonAdapter"

  The entry point's name is the adapter id; its object is an adapter class (made with no
  arguments) or an adapter instance. See docs/adapters.md.

A vendor adapter is refused, logged and listed with the reason (:func:`refused_adapters`, shown by
``homediag adapters list``) when its entry point cannot be loaded (an import error, a missing
name, a constructor that fails), when the object is not an adapter, when its id is not the entry
point's name, when its id is a built-in adapter's, or when two packages claim the same id. A
refused adapter never breaks the platform: every other adapter works as before.

Entry points are read once, on first use (not at import: a vendor module imports this package),
and again after :func:`reload`.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, cast

from .blood_pressure import BleBloodPressureAdapter
from .glucose import BleGlucoseAdapter
from .heart_rate import BleHeartRateAdapter
from .hl7v2 import Hl7v2OruAdapter
from .pulse_oximeter import BlePlxContinuousAdapter, BlePlxSpotCheckAdapter
from .readings import Reading
from .thermometer import BleThermometerAdapter
from .weight_scale import BleWeightScaleAdapter
from .withings import WithingsMeasureAdapter

ENTRY_POINT_GROUP = "homediag.adapters"
INPUT_KINDS = ("bytes", "json")
# an adapter id: lower-case letters, digits and hyphens, starting with a letter (e.g. acme-thermo-json)
ID_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")

log = logging.getLogger(__name__)


class Adapter(Protocol):
    """What an adapter is: an id, a description, what it reads, and ``decode``.

    ``input_kind`` is ``"bytes"`` (the envelope's ``payload_hex`` or ``payload_base64``; Bluetooth
    characteristics, HL7 v2 messages) or ``"json"`` (the envelope's ``data`` object; vendor cloud
    JSON). ``decode`` takes that payload and returns readings, or raises
    :class:`~homediag.adapters.devices.errors.DecodeError` saying what is wrong and where.
    """

    id: str
    description: str
    input_kind: str
    reads: tuple[str, ...]

    def decode(self, payload: Any) -> list[Reading]: ...


class UnknownAdapter(LookupError):
    """No adapter has this id; ``refused`` says why when a vendor package claimed it and was refused."""

    def __init__(self, adapter_id: str, known: list[str], refused: RefusedAdapter | None = None) -> None:
        self.adapter_id = adapter_id
        self.refused = refused
        if refused is not None:
            message = (
                f"adapter '{adapter_id}' from {refused.distribution or refused.entry_point} was refused: "
                f"{refused.reason}; known adapters: {', '.join(known)}"
            )
        else:
            message = f"no adapter '{adapter_id}'; known adapters: {', '.join(known)}"
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Source:
    """Where an adapter comes from: built in, or a vendor package's entry point."""

    builtin: bool
    distribution: str | None = None  # "homediag-example-vendor 0.1.0"
    entry_point: str | None = None  # "acme-thermo-json = acme_homediag.thermo:AcmeThermoJsonAdapter"

    def __str__(self) -> str:
        return (
            "built-in"
            if self.builtin
            else f"from {self.distribution or 'an unknown package'}, entry point {self.entry_point}"
        )


@dataclass(frozen=True, slots=True)
class RefusedAdapter:
    """A vendor entry point that is not used, and why."""

    name: str  # the entry point's name (the adapter id it claims)
    entry_point: str
    distribution: str | None
    reason: str


# The built-in adapters (keep this one line as it is: adapters are added to its tuple).
_ADAPTERS: dict[str, Adapter] = {
    a.id: a
    for a in (
        BleBloodPressureAdapter(),
        BleThermometerAdapter(),
        BleWeightScaleAdapter(),
        BleGlucoseAdapter(),
        BlePlxSpotCheckAdapter(),
        BlePlxContinuousAdapter(),
        BleHeartRateAdapter(),
        WithingsMeasureAdapter(),
        Hl7v2OruAdapter(),
    )
}


@dataclass(frozen=True, slots=True)
class _Loaded:
    adapters: dict[str, Adapter]
    sources: dict[str, Source]
    refused: tuple[RefusedAdapter, ...]


_loaded: _Loaded | None = None
_lock = threading.Lock()


def _describe(ep: metadata.EntryPoint) -> tuple[str, str | None]:
    dist = getattr(ep, "dist", None)
    distribution = f"{dist.name} {dist.version}" if dist is not None else None
    return f"{ep.name} = {ep.value}", distribution


def problem_with(obj: Any) -> str | None:
    """What makes ``obj`` not an adapter, or None when it has everything an adapter needs."""
    adapter_id = getattr(obj, "id", None)
    if not isinstance(adapter_id, str) or not ID_PATTERN.fullmatch(adapter_id):
        return (
            "its id must be a string of lower-case letters, digits and hyphens (e.g. 'acme-thermo-json'), "
            f"not {adapter_id!r}"
        )
    if not isinstance(getattr(obj, "description", None), str) or not obj.description.strip():
        return "it needs a description (a non-empty string)"
    if getattr(obj, "input_kind", None) not in INPUT_KINDS:
        return f"its input_kind must be one of {', '.join(INPUT_KINDS)}, not {getattr(obj, 'input_kind', None)!r}"
    reads = getattr(obj, "reads", None)
    if not isinstance(reads, (tuple, list)) or not reads or not all(isinstance(r, str) for r in reads):
        return "its reads must be a non-empty tuple of measurement keys (see docs/profiles.md)"
    if not callable(getattr(obj, "decode", None)):
        return "it has no decode(payload) method"
    return None


def _load_entry_point(ep: metadata.EntryPoint) -> Adapter:
    """The adapter an entry point names: an instance as it is, a class made with no arguments."""
    obj = ep.load()
    if isinstance(obj, type):
        obj = obj()
    problem = problem_with(obj)
    if problem is not None:
        raise TypeError(f"{ep.value} is not an adapter: {problem}")
    if obj.id != ep.name:
        raise TypeError(
            f"the entry point is named '{ep.name}' but the adapter's id is '{obj.id}'; "
            "name the entry point after the id"
        )
    return cast(Adapter, obj)  # problem_with() checked it is one


def _discover() -> _Loaded:
    adapters: dict[str, Adapter] = dict(_ADAPTERS)
    sources: dict[str, Source] = {k: Source(builtin=True) for k in _ADAPTERS}
    refused: list[RefusedAdapter] = []

    def refuse(name: str, entry_point: str, distribution: str | None, reason: str) -> None:
        log.warning(
            "vendor adapter '%s' (%s, from %s) refused: %s",
            name,
            entry_point,
            distribution or "an unknown package",
            reason,
        )
        refused.append(RefusedAdapter(name, entry_point, distribution, reason))

    try:
        entry_points = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value))
    except Exception as exc:  # broken package metadata must not break the platform
        log.warning(
            "cannot read the '%s' entry points: %s: %s; no vendor adapters loaded",
            ENTRY_POINT_GROUP,
            type(exc).__name__,
            exc,
        )
        entry_points = []

    candidates: dict[str, list[tuple[Adapter, Source]]] = {}
    for ep in entry_points:
        described, distribution = _describe(ep)
        if ep.name in _ADAPTERS:
            refuse(
                ep.name,
                described,
                distribution,
                f"'{ep.name}' is a built-in adapter's id; a vendor adapter cannot replace a built-in one: "
                "give it an id of its own (e.g. prefixed with the company name)",
            )
            continue
        try:
            adapter = _load_entry_point(ep)
        except TypeError as exc:
            refuse(ep.name, described, distribution, str(exc))
            continue
        except (Exception, SystemExit) as exc:  # an import error, a missing name, a failing constructor
            log.debug("loading entry point %s failed", described, exc_info=True)
            refuse(ep.name, described, distribution, f"cannot load {ep.value}: {type(exc).__name__}: {exc}")
            continue
        candidates.setdefault(adapter.id, []).append((adapter, Source(False, distribution, described)))

    for adapter_id, claims in candidates.items():
        if len(claims) > 1:
            who = " and ".join(str(s.distribution or s.entry_point) for _, s in claims)
            for _, source in claims:
                refuse(
                    adapter_id,
                    str(source.entry_point),
                    source.distribution,
                    f"the id '{adapter_id}' is claimed by {who}; neither is used until one is renamed or uninstalled",
                )
            continue
        adapter, source = claims[0]
        adapters[adapter_id] = adapter
        sources[adapter_id] = source
    return _Loaded(adapters, sources, tuple(refused))


def _registry() -> _Loaded:
    loaded = _loaded
    if loaded is None:
        with _lock:
            loaded = _loaded
            if loaded is None:
                loaded = _set(_discover())
    return loaded


def _set(loaded: _Loaded) -> _Loaded:
    global _loaded
    _loaded = loaded
    return loaded


def reload() -> None:
    """Read the entry points again (after installing or removing a vendor package in this process)."""
    with _lock:
        _set(_discover())


def get(adapter_id: str) -> Adapter:
    loaded = _registry()
    try:
        return loaded.adapters[adapter_id]
    except KeyError:
        raise _unknown(loaded, adapter_id) from None


def _unknown(loaded: _Loaded, adapter_id: str) -> UnknownAdapter:
    refused = next((r for r in loaded.refused if r.name == adapter_id), None)
    return UnknownAdapter(adapter_id, sorted(loaded.adapters), refused)


def all_adapters() -> list[Adapter]:
    adapters = _registry().adapters
    return [adapters[k] for k in sorted(adapters)]


def source(adapter_id: str) -> Source:
    """Where the adapter ``adapter_id`` comes from (raises UnknownAdapter)."""
    loaded = _registry()
    if adapter_id not in loaded.sources:
        raise _unknown(loaded, adapter_id)
    return loaded.sources[adapter_id]


def refused_adapters() -> list[RefusedAdapter]:
    """The vendor entry points that were refused, with the reason for each."""
    return list(_registry().refused)
