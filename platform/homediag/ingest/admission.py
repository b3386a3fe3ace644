"""What admits a gateway's upload, remembered per process while nothing of it changes.

Two answers admit an ``/ingest`` envelope: the patient with its enrolment on the sending gateway, and the gateway's
registrations of the device (its own, and ``*``). They change only when an administrator enrols, withdraws, assigns
or allows; every such change moves ``admission_version`` in its own transaction (triggers on ``patient``,
``gateway_patient`` and ``gateway_device``, migration 0010). The patients' monitoring settings histories, which the
readings ingest keeps are triaged under (``monitoring.ingested``), are remembered the same way: a settings version
moves the same counter (a trigger on ``monitoring_settings``, migration 0011). A process keeps the answers it read,
labelled with the counter read before them; a request that used remembered answers reads the counter again in the
statement that writes its uploads (``uploads.insert_many`` returns it) and is written only when the counter still
stands where its answers were read. Otherwise the process forgets all it remembered and the request is rolled back
and run again reading everything afresh (``Pipeline.batch``). So a withdrawn enrolment refuses the next upload in
every worker, as when each request read admission itself: a remembered answer is never newer than the counter says
and never used once the counter moved.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, or_, select, text
from sqlalchemy.orm import Session

from homediag import care
from homediag.bounded import Bounded
from homediag.monitoring.store import settings_histories
from homediag.store import models as m
from homediag.store.per_engine import PerEngine
from homediag.store.repositories import uploads

# the statements of admission, built once (compiled once): a patient with its enrolment on the sending gateway,
# and the gateway's registrations of a device by its serial or address, or of any device (``*``)
_PATIENT = select(
    m.Patient.id,
    m.Patient.active,
    m.Patient.enrolled_at,
    select(m.GatewayPatient.patient_key)
    .where(m.GatewayPatient.gateway_id == bindparam("gateway"), m.GatewayPatient.patient_key == bindparam("pkey"))
    .exists(),
).where(m.Patient.patient_key == bindparam("pkey"))
_REGISTRATIONS = select(m.GatewayDevice.serial, m.GatewayDevice.vendor, m.GatewayDevice.patient_key).where(
    m.GatewayDevice.gateway_id == bindparam("gateway"),
    or_(
        m.GatewayDevice.serial == bindparam("any"),
        m.GatewayDevice.serial == bindparam("first"),
        m.GatewayDevice.serial == bindparam("second"),
    ),
)
# the counter (-1 while its row is missing: any change makes it again), as ``uploads.insert_many`` returns it
_VERSION = text(f"select {uploads.ADMISSION_VERSION}")

REMEMBERED = 10_000  # answers per process (each a few hundred bytes); all forgotten when full, then read again


@dataclass
class _Memory:
    """A process's remembered answers for one database (engine), and the counter they were read at."""

    version: int | None = None
    answers: Bounded[tuple[Any, ...], Any] = field(default_factory=lambda: Bounded(REMEMBERED))
    lock: threading.Lock = field(default_factory=threading.Lock)


_MEMORY: PerEngine[_Memory] = PerEngine(_Memory)
_memory = _MEMORY.of
_MISSING = object()


def forget(engine: Any) -> None:
    """Forget every remembered answer for ``engine``'s database (the counter moved under a request)."""
    memory = _memory(engine)
    with memory.lock:
        memory.version = None
        memory.answers.clear()


class Admission:
    """One request's admission answers: remembered ones (``remembered``), or read in its transaction.

    ``used`` holds the counters its answers stand on; ``current`` says whether they all equal the counter read
    when its uploads were written. Read without remembering (``remembered=False``), every answer is this
    transaction's own and the request is always current."""

    def __init__(self, session: Session, *, remembered: bool = True) -> None:
        self.session, self.remembered = session, remembered
        self.used: set[int] = set()
        self._memory = _memory(session.get_bind())
        self._version: int | None = None  # the counter this transaction read, before its first answer read

    def patient(self, gateway: str, pkey: str) -> Any:
        """The patient ``pkey`` (id, active, enrolled_at, enrolled on ``gateway``), or None."""
        return self._answer(("patient", gateway, pkey), lambda: self.session.execute(
            _PATIENT, {"gateway": gateway, "pkey": pkey}
        ).first())  # fmt: skip

    def registrations(self, gateway: str, names: list[str]) -> list[Any]:
        """The gateway's registrations (serial, vendor, patient_key) of ``*`` and of a device known by ``names``."""
        given = [n for n in names if n]
        if len(given) > 2:  # not from an envelope (serial and address): the general form, not remembered
            return list(
                self.session.execute(
                    select(m.GatewayDevice.serial, m.GatewayDevice.vendor, m.GatewayDevice.patient_key).where(
                        m.GatewayDevice.gateway_id == gateway, m.GatewayDevice.serial.in_([care.ANY_DEVICE, *given])
                    )
                ).all()
            )
        # the names as parameters of a statement built once (an expanding IN is compiled again for each call)
        first, second = (given + [None, None])[:2]
        params = {"gateway": gateway, "any": care.ANY_DEVICE, "first": first, "second": second}
        return self._answer(  # type: ignore[no-any-return]
            ("devices", gateway, first, second), lambda: list(self.session.execute(_REGISTRATIONS, params).all())
        )

    def current(self, version: int | None) -> bool:
        """Whether every remembered answer used stands on ``version``, the counter read as the uploads were
        written; when not, the process forgets them all."""
        if self.used <= ({version} if version is not None else set()):
            return True
        forget(self.session.get_bind())
        return False

    def settings_histories(self, patient_keys: Sequence[str]) -> dict[str, list[Any]]:
        """The patients' monitoring settings histories (``monitoring.store.settings_histories``), which ingest
        triages the readings it keeps under (``monitoring.ingested``): remembered as the admission answers are (a
        settings change moves ``admission_version`` too: migration 0011), those not remembered read in one
        statement."""
        keys = list(dict.fromkeys(patient_keys))
        found = self._remembered([("settings", k) for k in keys])
        missing = [k for k in keys if ("settings", k) not in found]
        if missing:
            self._label()
            read = settings_histories(self.session, missing)
            self._remember({("settings", k): v for k, v in read.items()})
            found.update({("settings", k): v for k, v in read.items()})
        return {k: found[("settings", k)] for k in keys}

    def _answer(self, key: tuple[Any, ...], read: Any) -> Any:
        found = self._remembered([key])
        if key in found:
            return found[key]
        self._label()
        answer = read()
        self._remember({key: answer})
        return answer

    def _remembered(self, keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], Any]:
        """Those of ``keys`` remembered (none when this request does not use remembered answers)."""
        if not self.remembered:
            return {}
        memory = self._memory
        with memory.lock:
            version = memory.version
            found = {k: v for k in keys if (v := memory.answers.get(k, _MISSING)) is not _MISSING}
        if found and version is not None:
            self.used.add(version)
            return found
        return {}

    def _label(self) -> None:
        """Before this transaction's first answer read: the counter (no answer is older than its label)."""
        if self.remembered and self._version is None:
            self._version = int(self.session.execute(_VERSION).scalar_one())

    def _remember(self, answers: dict[tuple[Any, ...], Any]) -> None:
        if not self.remembered:
            return
        assert self._version is not None
        memory = self._memory
        with memory.lock:
            if memory.version != self._version:
                memory.version = self._version
                memory.answers.clear()
            for key, answer in answers.items():
                memory.answers.remember(key, answer)
        self.used.add(self._version)
