"""The period report as a PDF (WeasyPrint): downloaded for a patient in my care, with the period and the
numbers in its text, on one A4 page; a patient I may not see is a 404 and audited. Monitoring's reasons on
the report and the patient page in Danish by default and in English by the switch."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select
from web_support import COPENHAGEN, WebPilot, sign_in, web, web_pilot  # noqa: F401 - fixtures

from homediag.runtime import Runtime
from homediag.store import models as m


def _text(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), " ".join((page.extract_text() or "") for page in reader.pages)


def test_the_period_report_downloads_as_a_one_page_danish_pdf_with_the_period_and_the_numbers(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    pid = web_pilot.refused_for
    today = datetime.now(COPENHAGEN).date()
    first, last = today - timedelta(days=29), today
    page = web.get(f"/app/patients/{pid}/report")
    link = re.search(r'<a id="report-pdf" href="([^"]+)" download>', page.text)
    assert link is not None
    href = link.group(1).replace("&amp;", "&")
    assert href == f"/app/patients/{pid}/report.pdf?from={first.isoformat()}&to={last.isoformat()}"
    response = web.get(href)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="perioderapport-{first.isoformat()}-{last.isoformat()}.pdf"'
    )
    pages, text = _text(response.content)
    assert pages == 1
    flat = " ".join(text.split())
    assert f"{first.strftime('%d.%m.%Y')} – {last.strftime('%d.%m.%Y')}" in flat  # the period, the Danish way
    assert "Periode" in flat and "Perioderapport" in flat and web_pilot.shown[pid] in flat
    assert "Målt på 10 af 30 dage" in flat
    assert f"{web_pilot.readings[pid]} (10 dage)" in flat  # readings in the period, on how many days
    # the averages the page shows are in the PDF too
    row = re.search(r'<tr data-measurement="blood-pressure">(.*?)</tr>', page.text, re.S)
    assert row is not None
    means = re.findall(r"(Systolisk|Diastolisk) (\d+) \((\d+)–(\d+)\)", row.group(1))
    assert [name for name, *_ in means] == ["Systolisk", "Diastolisk"]
    for name, mean, low, high in means:
        assert f"{name} {mean} ({low}–{high})" in flat
    assert "Nok data til at vurdere?" in flat
    again = web.get(href)  # a second PDF (the first one imported WeasyPrint) is drawn the same way
    assert _text(again.content)[0] == 1
    assert "<svg " in web.get(f"/app/patients/{pid}/report").text  # and the charts of the pages stay SVG
    # why the period is yellow, in Danish, from the catalogue
    assert re.search(r"Diastolisk blodtryk \d+ mmHg, på eller over grænsen 85 \(gul\)", flat)


def test_the_pdf_of_a_patient_i_may_not_see_is_404_and_audited(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    for pid, name in web_pilot.hidden.items():
        response = web.get(f"/app/patients/{pid}/report.pdf")
        assert response.status_code == 404
        assert not response.content.startswith(b"%PDF") and name not in response.text
    with runtime.sessions() as session:
        keys = dict(session.execute(select(m.Patient.id, m.Patient.patient_key)).all())
        denied = set(
            session.execute(
                select(m.AuditEvent.patient_key).where(
                    m.AuditEvent.entity == "patient-page", m.AuditEvent.outcome == "deny"
                )
            ).scalars()
        )
    assert {keys[pid] for pid in web_pilot.hidden} <= denied
    web.cookies.clear()
    signed_out = web.get(f"/app/patients/{web_pilot.refused_for}/report.pdf", follow_redirects=False)
    assert signed_out.status_code == 303  # to sign-in; no PDF without a session


def test_a_pdf_in_english_by_the_language_switch(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    web.cookies.set("hd_lang", "en")
    response = web.get(f"/app/patients/{web_pilot.refused_for}/report.pdf?days=7")
    assert response.status_code == 200
    assert 'filename="period-report-' in response.headers["content-disposition"]
    _pages, text = _text(response.content)
    assert "Period report" in text and "Perioderapport" not in text


def test_six_measurements_still_fit_on_one_page(web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot) -> None:  # type: ignore[no-untyped-def]
    """Every measurement type a patient can have (six charts, six rows): still one A4 page."""
    from homediag.web.report_view import pdf

    sign_in(web, runtime, tokens.ids["clinician"])
    html = web.get(f"/app/patients/{web_pilot.refused_for}/report").text
    figures = re.findall(r'<figure class="chart report-chart">.*?</figure>', html, re.S)
    rows = re.findall(r"<tr data-measurement=.*?</tr>", html, re.S)
    assert len(figures) == 2 and len(rows) == 2  # blood pressure and pulse
    html = html.replace(figures[1], figures[1] + "".join(figures) * 2).replace(rows[1], rows[1] + "".join(rows) * 2)
    pages, text = _text(pdf(html))
    assert pages == 1 and text.count("Blodtryk (mmHg)") == 3


def test_a_chart_stays_drawable_svg_after_a_library_takes_the_empty_xml_prefix() -> None:
    """WeasyPrint's PDF metadata (imported by the period report and the evaluation report) registers the empty
    prefix for itself in ElementTree's process-wide map; a chart drawn after that must still be <svg xmlns=...>,
    not <ns0:svg>, which no browser draws (found as a chart missing in a full-suite run)."""
    import xml.etree.ElementTree as ET
    from zoneinfo import ZoneInfo

    from homediag.web import chart_draw, charts

    start = datetime(2026, 11, 1, 8, 0, tzinfo=COPENHAGEN)
    points = [charts.Point(start + timedelta(days=d), 120.0 + d, "green", f"reading {d}", f"r{d}") for d in range(3)]
    arguments = (
        "chart-prefix-test",
        "Blodtryk",
        "mmHg",
        [charts.Series("systolic", "Systolisk", points)],
        [],
        [charts.Line(135.0, "yellow", "grænse")],
        start,
        start + timedelta(days=3),
        ZoneInfo("Europe/Copenhagen"),
        True,
    )
    ET.register_namespace("", "")  # what weasyprint.pdf.metadata does on import
    try:  # drawn in a drawing process, and in this process (as when no drawing process draws it)
        drawn = [charts.trend_svg(*arguments), chart_draw.draw(*arguments)]  # type: ignore[arg-type]
    finally:
        ET.register_namespace("", chart_draw.SVG_NS)
    for svg in drawn:
        assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg[:200]
        assert "ns0:" not in svg and svg.count('class="point') == 3
