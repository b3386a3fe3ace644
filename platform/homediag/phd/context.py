"""One PHD gateway request as the steps see it: the unit's session, the sender, the upload, the body
and its entries, and the entries by fullUrl (how references inside the Bundle find them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from homediag.clock import from_store
from homediag.ingest.pipeline import Pipeline
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.users import Principal

from .entries import TYPES, Entry
from .redaction import patient_identifier_values


@dataclass
class Context:
    rt: Runtime
    pipeline: Pipeline
    session: Session
    sender: Principal
    upload: m.Upload
    raw: dict[str, Any]
    entries: list[Entry]
    mode: str  # transaction | batch | single
    known: set[str] = field(init=False)  # the patient identifier values the request carries
    request_time: datetime = field(init=False)
    by_url: dict[str, Entry] = field(init=False)

    def __post_init__(self) -> None:
        self.known = patient_identifier_values(self.raw)
        self.request_time = from_store(self.upload.received_at)
        self.by_url = {}
        for e in self.entries:
            url = e.result.full_url
            if url:
                self.by_url.setdefault(url, e)
                # an absolute fullUrl .../Type/id is also what a relative reference Type/id means inside the Bundle
                parts = url.rstrip("/").split("/")
                if len(parts) >= 2 and "://" in url and parts[-2] in TYPES:
                    self.by_url.setdefault(f"{parts[-2]}/{parts[-1]}", e)

    def prefix(self, e: Entry) -> str:
        return "" if self.mode == "single" else f"Bundle.entry[{e.result.index}]"

    def note_patient_key(self, pkey: str | None) -> None:
        """The upload names the first patient a request identified."""
        if pkey is not None and self.upload.patient_key is None:
            self.upload.patient_key = pkey
