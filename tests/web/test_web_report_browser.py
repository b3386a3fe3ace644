"""The period report's PDF link in a real headless Chromium (Playwright driving Debian's chromium): the
clinician clicks "Hent rapporten som PDF" and the browser saves a PDF of the shown period."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import close_shared_chromium, shared_chromium
from pypdf import PdfReader
from web_support import WebPilot, web, web_pilot  # noqa: F401 - fixtures

from homediag.runtime import Runtime
from homediag.web.sessions import issue_signin_link

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    yield shared_chromium()  # shared with the other browser test modules
    close_shared_chromium()


def test_the_report_page_downloads_its_period_as_pdf(
    chromium: Any, live_server: str, runtime: Runtime, tokens, web_pilot: WebPilot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(live_server + issue_signin_link(runtime, tokens.ids["clinician"]))
        page.wait_for_url(f"{live_server}/app/worklist")
        pid = web_pilot.refused_for
        page.goto(f"{live_server}/app/patients/{pid}/report?from=2026-11-01&to=2026-11-30")
        with page.expect_download() as found:
            page.get_by_role("link", name="Hent rapporten som PDF").click()
        download = found.value
        assert download.suggested_filename == "perioderapport-2026-11-01-2026-11-30.pdf"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        reader = PdfReader(saved)
        text = " ".join(reader.pages[0].extract_text().split())
        assert len(reader.pages) == 1
        assert "Periode: 01.11.2026 – 30.11.2026" in text
        assert web_pilot.shown[pid] in text
    finally:
        context.close()
