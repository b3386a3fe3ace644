"""Tables. Times are stored as naive UTC so that SQLite and PostgreSQL compare them alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class Patient(Base):
    """An enrolled patient: public FHIR id and internal pseudonym (patient key); no identity here."""

    __tablename__ = "patient"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(64), unique=True)
    pilot: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime)
    enrolled_by: Mapped[str] = mapped_column(String(64))


class Identity(Base):
    """The vault: CPR and name encrypted with AES-256-GCM; ``kid`` names the key."""

    __tablename__ = "identity"

    patient_key: Mapped[str] = mapped_column(String(64), ForeignKey("patient.patient_key"), primary_key=True)
    kid: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Device(Base):
    __tablename__ = "device"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    serial: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    # a Device a PHD gateway sent (FHIR Device, PHD or PHG profile), upserted by its identifier
    # ``system|value`` (the IEEE EUI-64 system id where there is one); ``resource`` is the latest one sent
    identifier: Mapped[str | None] = mapped_column(String(300), index=True, unique=True)
    kind: Mapped[str | None] = mapped_column(String(8))  # phd | phg
    resource: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    # the version of the Device resource served (meta.versionId) and when it became that (meta.lastUpdated;
    # None: as first seen)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Consent(Base):
    """The current version of a consent; every version is also in ``consent_version``."""

    __tablename__ = "consent"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(64), ForeignKey("patient.patient_key"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(64))
    # the current version's decision-relevant facts (``homediag.consent.facts_of``) as JSON text, written with it:
    # a decision reads these instead of validating the whole resource (None: parse the resource)
    facts: Mapped[str | None] = mapped_column(Text, nullable=True)


class ConsentVersion(Base):
    __tablename__ = "consent_version"

    consent_id: Mapped[str] = mapped_column(String(64), ForeignKey("consent.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(32))
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(64))


class Upload(Base):
    """Every envelope a gateway sent, with its outcome, even when refused.

    The envelope as sent is kept sealed (AES-256-GCM under the vault key: it holds a CPR);
    ``redacted`` is the same envelope with the CPR replaced, for vendors and operators.
    """

    __tablename__ = "upload"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    sender: Mapped[str] = mapped_column(String(64))
    adapter: Mapped[str | None] = mapped_column(String(100))
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    patient_key: Mapped[str | None] = mapped_column(String(64))
    kid: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    redacted: Mapped[Any] = mapped_column(JsonDoc, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    created: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    issues: Mapped[Any] = mapped_column(JsonDoc, nullable=True)
    # the vendor its registered device names (gateway_device.vendor), else the manufacturer it states
    vendor: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Observation(Base):
    __tablename__ = "observation"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))  # primary (MDC) code
    category: Mapped[str] = mapped_column(String(200))  # space-separated category codes
    codes: Mapped[str] = mapped_column(Text)  # space-separated system|code tokens of every coding
    effective_start: Mapped[datetime] = mapped_column(DateTime)
    effective_end: Mapped[datetime] = mapped_column(DateTime)
    device_id: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    dedup: Mapped[str] = mapped_column(String(128))  # unique through ``observation_dedup``
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    adapter: Mapped[str | None] = mapped_column(String(100))
    upload_id: Mapped[str | None] = mapped_column(String(36))
    # the gateway's receive time (PHD coincident time stamp, the gateway's extension, the Bundle's timestamp,
    # or the request time); ``received_at`` is the platform's, the effective time the device's
    gateway_received_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the id of the transaction that wrote the row, filled by PostgreSQL (its default; NULL on SQLite, where
    # the rowid is in commit order): a search walk's high-water mark (access/paging.py)
    txn: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue(), nullable=True)
    # the text fhirjson writes for ``resource`` and where a read splices into it (homediag/served.py): a search in
    # care serves it without parsing; NULL (a row not yet back-filled) is served from ``resource``
    served_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    served_marks: Mapped[str | None] = mapped_column(String(200), nullable=True)

    # a page's (sort key, id) order, newest first or (walked backwards) oldest first: no sort (migration 0016)
    __table_args__ = (Index("ix_observation_series", "patient_key", "code", effective_start.desc(), id.desc()),)


class ObservationCount(Base):
    """Per patient key, how many Observations it has and the latest effective time among those stored since the
    row was made (a deletion leaves it: an upper bound), kept by database triggers on ``observation`` whatever
    wrote the rows (API, COPY, gateway, back-fill, SQL by hand; migration 0015): the worklist's change detector
    reads it instead of counting each patient's Observations (``worklist_marks.marks``). A key's row goes when its
    count reaches 0 (erasure)."""

    __tablename__ = "observation_count"

    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    observations: Mapped[int] = mapped_column(Integer)
    latest: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ObservationDedup(Base):
    """The claim on a reading's dedup key, one row per stored Observation: the uniqueness ``observation`` cannot
    hold itself once it is partitioned by time on PostgreSQL (a partitioned table's unique keys must include the
    time, and a PHD identifier's dedup key does not determine the time). Keyed by patient first, like every
    patient-scoped table (docs/scaling.md)."""

    __tablename__ = "observation_dedup"

    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    dedup: Mapped[str] = mapped_column(String(128), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64))
    effective_start: Mapped[datetime] = mapped_column(DateTime)


class User(Base):
    """A person or machine with an API token (stored hashed) and a role."""

    __tablename__ = "app_user"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    organisation: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class AuditEvent(Base):
    """One audited event; ``hash`` = HMAC(audit key, previous hash in its stream + this record): several chains
    (streams), each record at ``stream_seq`` in its ``stream``; ``seq`` numbers all records (their id)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ux_audit_event_stream", "stream", "stream_seq", unique=True),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    stream_seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str | None] = mapped_column(String(32))
    patient_key: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    kid: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row per stream (``id``): its last record's ``stream_seq`` and hash, locked while appending to it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the stream
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)  # HMAC of (seq, hash) under the audit key


class AdmissionVersion(Base):
    """One row (``id`` 0): a counter that triggers (migration 0009) move in the same transaction as any change to
    ``patient``, ``gateway_patient`` or ``gateway_device``: what admits a gateway's upload. A process keeps its
    admission answers while the counter stands (``homediag.ingest.admission``)."""

    __tablename__ = "admission_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)


class PatientAlias(Base):
    """Another identifier of an enrolled patient (e.g. a hospital MRN a PHD gateway sends): looked up by
    HMAC-SHA256 of ``system|value`` under the pseudonym key, and kept sealed under the vault key (so that
    a pseudonym-key rotation can recompute the HMAC); no identifier is stored in clear."""

    __tablename__ = "patient_alias"

    system: Mapped[str] = mapped_column(String(200), primary_key=True)
    value_hmac: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(64), ForeignKey("patient.patient_key"), index=True)
    kid: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class CareTeam(Base):
    """A pilot's care team: the clinicians on it read the patients on it (with consent)."""

    __tablename__ = "care_team"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    pilot: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class CareTeamMember(Base):
    """A clinician (an API user id, or ``oidc:<sub>`` for a person signed in with OpenID Connect) on a team."""

    __tablename__ = "care_team_member"

    care_team_id: Mapped[str] = mapped_column(String(64), ForeignKey("care_team.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class CareTeamPatient(Base):
    __tablename__ = "care_team_patient"

    care_team_id: Mapped[str] = mapped_column(String(64), ForeignKey("care_team.id"), primary_key=True)
    patient_key: Mapped[str] = mapped_column(
        String(64), ForeignKey("patient.patient_key"), primary_key=True, index=True
    )


class GatewayPatient(Base):
    """A patient enrolled on a gateway: the gateway may upload that patient's readings, and only those."""

    __tablename__ = "gateway_patient"

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_key: Mapped[str] = mapped_column(
        String(64), ForeignKey("patient.patient_key"), primary_key=True, index=True
    )
    assigned_at: Mapped[datetime] = mapped_column(DateTime)


class GatewayDevice(Base):
    """A device a gateway may upload from, by its serial (or Bluetooth address, or PHD identifier);
    ``*`` lets the gateway use any device (a hospital-managed hub). ``patient_key``: the patient the
    device is enrolled for (its readings for anyone else are refused); ``vendor``: the organisation it
    belongs to (whose upload log shows its uploads, whatever manufacturer a gateway writes)."""

    __tablename__ = "gateway_device"

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[str] = mapped_column(String(300), primary_key=True)
    assigned_at: Mapped[datetime] = mapped_column(DateTime)
    patient_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vendor: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ExportJob(Base):
    """A Bulk Data export job (``homediag.bulk``): who asked for what, and how far it got.

    ``progress`` holds per resource type the cursor (the last id written), the files written and their
    counts, so that a job resumes after a restart from its last whole file. ``lease_until`` is how long the
    worker that runs it holds it; another worker takes it over after that."""

    __tablename__ = "export_job"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(32))
    organisation: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))  # system | patient | group
    group_id: Mapped[str | None] = mapped_column(String(100))
    types: Mapped[str] = mapped_column(String(200))  # comma-separated resource types
    since: Mapped[datetime | None] = mapped_column(DateTime)
    request: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued | running | completed | failed | cancelled
    transaction_time: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    progress: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    error: Mapped[str | None] = mapped_column(Text)


class MonitoringSettings(Base):
    """One version of a patient's monitoring settings (patient group, thresholds, plan; ``homediag.monitoring``).
    The version in force at a time is the highest whose ``valid_from`` is not after it; versions are never
    changed, only added, each with who and when."""

    __tablename__ = "monitoring_settings"

    patient_key: Mapped[str] = mapped_column(String(64), ForeignKey("patient.patient_key"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    group: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    valid_from: Mapped[datetime] = mapped_column(DateTime)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)


class Review(Base):
    """A clinician's acknowledgement of readings (one or all green of a period), kept as a FHIR Task and its
    Provenance; the readings it covers are in ``review_item``."""

    __tablename__ = "review"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_key: Mapped[str] = mapped_column(String(64), ForeignKey("patient.patient_key"), index=True)
    reviewed_at: Mapped[datetime] = mapped_column(DateTime)
    reviewed_by: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(16))  # readings | all-green
    note: Mapped[str | None] = mapped_column(Text)
    task: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    provenance: Mapped[dict[str, Any]] = mapped_column(JsonDoc)


class ReviewItem(Base):
    """One reading a review acknowledged, with its three times and the acknowledgement's, for the evaluation
    (time from reading and from arrival to acknowledgement)."""

    __tablename__ = "review_item"

    review_id: Mapped[str] = mapped_column(String(64), ForeignKey("review.id"), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    patient_key: Mapped[str] = mapped_column(String(64), index=True)
    colour: Mapped[str] = mapped_column(String(8))
    effective_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime | None] = mapped_column(DateTime)
    gateway_received_at: Mapped[datetime | None] = mapped_column(DateTime)
    reviewed_at: Mapped[datetime] = mapped_column(DateTime)


class WebSession(Base):
    """A signed-in person of the web app (``homediag.web``): the cookie holds a random token, the store its
    SHA-256. Ends at sign-out or after the idle timeout (``last_seen``)."""

    __tablename__ = "web_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200))  # an API user id, or oidc:<sub>
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    organisation: Mapped[str | None] = mapped_column(String(200))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class WebSigninLink(Base):
    """A one-time sign-in link (the demo's): valid a few minutes, used once; the store keeps its SHA-256."""

    __tablename__ = "web_signin_link"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class ReadingValues(Base):
    """A stored Observation's measured values as monitoring's triage reads them (``homediag.monitoring``: measure,
    value, unit, component; JSON text), kept so that no process parses the resource again: an Observation never
    changes. Filled when a read first meets the reading (``homediag.monitoring.persisted``)."""

    __tablename__ = "reading_values"

    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    measured: Mapped[str] = mapped_column(Text)


class ReadingShape(Base):
    """What the web app's pages take from a stored Observation's resource (``homediag.access.readings.Shape``:
    measurement, values, unit, flags; JSON text), kept so that no process parses the resource again for a page.
    Written at ingest (``homediag.access.ingested``) or by the read that first meets the reading."""

    __tablename__ = "reading_shape"

    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shape: Mapped[str] = mapped_column(Text)


class DrawnChart(Base):
    """A web page's chart as drawn (SVG text), by the SHA-256 of everything it shows (``homediag.web.charts``), or a
    patient page table's rows as rendered (a JSON list of HTML rows, by the SHA-256 of every row's key and the
    templates: ``homediag.web.patient_view``), so that a freshly started process does not draw or render them
    again; rows drawn more than a few days ago are pruned."""

    __tablename__ = "drawn_chart"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    svg: Mapped[str] = mapped_column(Text)
    drawn_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ReadingTriage(Base):
    """A reading's triage under one settings content (``settings``: the SHA-256 of the content, so equal settings
    of any patient or version share it): the verdicts per value (measure, colour, v3 direction, reason, component;
    JSON text). A threshold change is new content, so it is a new key and re-triages. Readings whose triage
    depends on earlier readings (the weight-change rule) are never kept. Filled when a read first triages a reading
    under that content (``homediag.monitoring.persisted``)."""

    __tablename__ = "reading_triage"

    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    settings: Mapped[str] = mapped_column(String(64), primary_key=True)
    verdicts: Mapped[str] = mapped_column(Text)


class WorklistSummary(Base):
    """A patient's part of the web worklist (latest values, days measured, monitoring's assessment; JSON text, no
    identity), with the SHA-256 of what it was computed from (``mark``: consent window, acknowledgements, reviews,
    settings versions, first reading dated ahead; the Observation count apart, ``observations``) and the instant from
    which time alone may change it (``until``): a freshly started process uses it while all still hold
    (``homediag.access.worklist_kept``); its running parts (``parts``) let ingest or a view grow it by new readings."""

    __tablename__ = "worklist_summary"

    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    mark: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(DateTime)
    body: Mapped[str] = mapped_column(Text)
    observations: Mapped[int | None] = mapped_column(Integer)  # the Observation count it was computed from
    parts: Mapped[str | None] = mapped_column(Text)  # its status's running parts, to grow it by new readings
