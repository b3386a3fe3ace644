"""Settings, all from ``HOMEDIAG_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOMEDIAG_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///homediag.sqlite3",
        description="SQLAlchemy URL: the embedded SQLite file by default; postgresql+psycopg://... in production",
    )
    key_file: Path = Field(default=Path("homediag-keys.json"), description="the key file made by `homediag keys init`")
    keys_json: str | None = Field(
        default=None, description="the key file's content, for deployments that pass secrets as environment"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = Field(
        default=None, description="base URL used in Bundle links; default: from the request"
    )
    local_timezone: str = Field(default="Europe/Copenhagen", description="how device times without an offset are read")
    pilot: str = Field(default="nykobing-f-home-diagnostics", description="the pilot that enrolments are made for")
    max_page_size: int = 500
    default_page_size: int = 50
    npu_system: Literal["http://npu-terminology.org", "urn:oid:1.2.208.176.2.1"] = Field(
        default="http://npu-terminology.org",
        description="system URI of NPU codings the platform writes: DK Core's,"
        " or MedCom's and the national telemedicine infrastructure's OID",
    )
    oidc_issuer: str | None = Field(
        default=None, description="the identity provider's issuer; set to let people sign in with OpenID Connect tokens"
    )
    oidc_audience: str | None = Field(default=None, description="the audience (client id) the tokens must be for")
    oidc_jwks_url: str | None = Field(default=None, description="where the provider publishes its signing keys")
    oidc_jwks_file: Path | None = Field(
        default=None, description="the provider's signing keys as a JWKS file, for a closed network"
    )
    oidc_role_claim: str = Field(default="homediag_role", description="the claim that names the person's role")
    oidc_authorization_endpoint: str | None = Field(
        default=None,
        description="the provider's authorization endpoint for SMART discovery; default: from its"
        " /.well-known/openid-configuration",
    )
    oidc_token_endpoint: str | None = Field(
        default=None, description="the provider's token endpoint for SMART discovery; default: as above"
    )
    oidc_client_id: str | None = Field(
        default=None, description="the web app's client id at the provider (default: the audience)"
    )
    oidc_client_secret: str | None = Field(
        default=None, description="the web app's client secret (none: a public client, PKCE only)"
    )
    oidc_discovery_url: str | None = Field(
        default=None,
        description="the provider's discovery document (default: <issuer>/.well-known/openid-configuration)",
    )
    web_idle_minutes: int = Field(default=30, description="a web session ends after this long without a request")
    web_secure_cookies: bool = Field(
        default=True, description="mark the web app's cookies Secure (HTTPS only); the demo on http turns it off"
    )
    future_tolerance_minutes: int = Field(
        default=10, description="how far ahead of the server's clock a reading may be dated"
    )
    export_dir: Path = Field(
        default=Path("homediag-exports"), description="where Bulk Data export jobs write their NDJSON files"
    )
    export_expiry_minutes: int = Field(
        default=24 * 60, ge=1, description="how long a finished export's files stay; then they are removed"
    )
    export_file_resources: int = Field(
        default=50_000, ge=1, description="resources per NDJSON file (a file is the unit a job resumes from)"
    )
    export_retry_after_seconds: int = Field(default=2, ge=0, description="Retry-After of a status answer in progress")
    export_lease_seconds: int = Field(
        default=60, ge=1, description="a running job not heard of for this long is resumed by another worker"
    )
    export_worker: bool = Field(default=True, description="run export jobs in a thread started with the app")
    earliest_days_before_enrolment: int = Field(
        default=1826,  # five years: a vendor cloud's back-fill of a patient's history is plausible, 1970 is not
        description="a reading dated more than this many days before the patient's enrolment (or before 2000) is held",
    )
    chart_processes: int = Field(
        default=2,
        ge=0,
        le=8,
        description="processes drawing the web app's charts beside each server process (each ~60 MB PSS, started on the"
        " first chart); 0 draws them in the server process, under its interpreter lock",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        description="largest request body (bytes) on the admin and validation endpoints; larger ones get 413 unread",
    )
    max_upload_bytes: int = Field(
        default=8_388_608,
        description="largest request body (bytes) a gateway may send to POST /ingest, /fhir and /fhir/Observation",
    )
    max_envelopes_per_list: int = Field(
        default=1000, description="most envelopes one POST /ingest list may carry (413 above, kept in the upload log)"
    )
    ingest_lists_at_once: int | None = Field(
        default=None,
        ge=1,
        description="how many lists GET /ingest tells a gateway to send at once: by default this server's worker"
        " processes (`homediag serve --workers N` sets it); behind a load balancer, the workers of all its servers",
    )
    uploads_page_bytes: int = Field(
        default=1_048_576,
        description="most bytes of envelopes one page of GET /uploads holds (the rest: one at a time)",
    )
    read_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="how much lower the CPU priority (nice value) of the threads serving reads (searches, reads, the"
        " web app's pages) is than ingest's: a gateway's lists get the cores first when the machine is saturated; 0"
        " keeps reads at the server's priority (Linux; elsewhere ignored)",
    )
    read_threads: int = Field(
        default=4,
        ge=0,
        le=64,
        description="threads per server process serving reads at that priority (more reads at once wait for one); 0"
        " runs reads on the default thread pool as every other route",
    )
    reads_beside_ingest: int = Field(
        default=1,
        ge=0,
        le=64,
        description="reads of a server process that run while a gateway's upload runs in it (the others wait for"
        " it to end or for one of them, at most read_wait_max_ms): the process's interpreter lock is shared by its"
        " threads whatever their priority",
    )
    read_wait_max_ms: int = Field(
        default=250,
        ge=0,
        le=10_000,
        description="the longest a read waits for its turn beside a gateway's uploads before it runs anyway (a"
        " back-fill of list after list never holds a clinician's search back longer)",
    )
    max_search_values: int = Field(
        default=100, description="most values one search may give a parameter (comma-separated and repeated)"
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
