"""Fixtures of the web app's tests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from web_support import WebPilot, build_pilot

from homediag.runtime import Runtime


@pytest.fixture
def web(client: TestClient, runtime: Runtime) -> TestClient:
    """The app's client over plain http: cookies without the Secure flag (a test checks the flag is set by
    default)."""
    runtime.settings.web_secure_cookies = False
    return client


@pytest.fixture
def web_pilot(web: TestClient, pilot, runtime: Runtime) -> WebPilot:  # type: ignore[no-untyped-def]
    return build_pilot(pilot, runtime)
