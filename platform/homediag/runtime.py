"""What every entry point needs: settings, keys, the engine and a session factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .bounded import Bounded
from .keys import KeyRing, load_keys
from .oidc import OidcVerifier
from .settings import Settings, get_settings
from .store.database import make_engine, session_factory


@dataclass
class Runtime:
    settings: Settings
    keys: KeyRing
    engine: Engine
    sessions: sessionmaker[Session]
    # parsed consents by (consent id, version): a version never changes (see access.AccessService._records)
    consent_cache: Bounded[tuple[str, int], Any] = field(default_factory=lambda: Bounded(50_000))
    oidc: OidcVerifier | None = None
    # the clock access decisions are taken at ("may this be seen now?"); a test may pin it
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        s = self.settings
        if self.oidc is None and s.oidc_issuer:
            if not s.oidc_audience or not (s.oidc_jwks_url or s.oidc_jwks_file):
                raise ValueError(
                    "OpenID Connect needs HOMEDIAG_OIDC_AUDIENCE and HOMEDIAG_OIDC_JWKS_URL or HOMEDIAG_OIDC_JWKS_FILE"
                    " besides the issuer"
                )
            self.oidc = OidcVerifier(
                s.oidc_issuer, s.oidc_audience, s.oidc_jwks_url, s.oidc_jwks_file, s.oidc_role_claim
            )

    @property
    def local_zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.local_timezone)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or get_settings()
        engine = make_engine(settings.database_url)
        return cls(settings, load_keys(settings), engine, session_factory(engine))

    def close(self) -> None:
        self.engine.dispose()
