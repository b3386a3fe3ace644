"""The period report: a one-page summary of a patient's period, printable, downloadable as PDF, with a
paste-ready text for the electronic record. Built from the patient page's read (decided and audited there):
counts, averages and ranges per measurement, readings per triage colour, adherence, and whether there was
enough data to judge.

The PDF is the same page rendered by WeasyPrint (a dependency: HTML and CSS to PDF, with the SVG charts as
vectors; it needs the Pango library, no service) with the print stylesheet and ``PDF_CSS`` (A4, one page).
WeasyPrint fetches nothing from any host: ``_Fetcher`` serves the app's stylesheet and the font shipped
with matplotlib (DejaVu Sans, which has every Danish letter and the subscript of SpO₂) and refuses the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from statistics import fmean
from typing import Any

from homediag.access.patient_page import PatientPage
from homediag.access.readings import Reading
from homediag.errors import Unavailable

from .i18n import N_, UNIT_NAMES, Formats

# Enough data to judge a measurement: the ESH home blood pressure protocol asks for at least 12 readings over
# several days; the same minimum (12 readings on at least 6 days) is used for every measurement here.
MIN_READINGS = 12
MIN_DAYS = 6
COLOURS = ("red", "yellow", "green")


@dataclass
class Summary:
    key: str
    text: str
    unit: str
    count: int
    days: int
    values: list[tuple[str, float, float, float]]  # (component, mean, min, max)
    colours: dict[str, int]
    enough: bool


def summarise(page: PatientPage, gettext: Any) -> list[Summary]:
    by: dict[str, list[Reading]] = {}
    for r in page.readings:
        by.setdefault(r.measurement, []).append(r)
    out: list[Summary] = []
    for key, readings in by.items():
        components = list(dict.fromkeys(c for r in readings for c in r.values))
        values = []
        for c in components:
            numbers = [r.values[c] for r in readings if c in r.values]
            values.append((c, fmean(numbers), min(numbers), max(numbers)))
        days = len({r.effective.date() for r in readings})
        unit = readings[0].unit
        out.append(
            Summary(
                key,
                gettext(readings[0].text),
                gettext(unit) if unit in UNIT_NAMES else unit,
                len(readings),
                days,
                values,
                {c: sum(1 for r in readings if r.triage == c) for c in COLOURS},
                len(readings) >= MIN_READINGS and days >= MIN_DAYS,
            )
        )
    from .patient_view import ORDER

    return sorted(out, key=lambda s: (ORDER.index(s.key) if s.key in ORDER else len(ORDER), s.key))


COMPONENT_TEXT = {"systolic": N_("systolic"), "diastolic": N_("diastolic"), "mean-arterial-pressure": N_("mean")}


def paste_text(
    page: PatientPage, summaries: list[Summary], first: date, last: date, fmt: Formats, gettext: Any, days_measured: int
) -> str:
    """The report as plain text for the electronic record."""
    _ = gettext
    lines = [
        _("Home monitoring %(start)s to %(end)s") % {"start": fmt.date(first), "end": fmt.date(last)},
        _("Measured on %(measured)d of %(days)d days.") % {"measured": days_measured, "days": (last - first).days + 1},
    ]
    if page.assessment is not None:
        lines.append(_("Triage of the period") + ": " + _(page.assessment.colour.capitalize()))
    for s in summaries:
        parts = [
            _("%(component)s mean %(mean)s (%(low)s-%(high)s)")
            % {
                "component": _(COMPONENT_TEXT.get(c, s.text)),
                "mean": fmt.number(mean, 0 if mean >= 20 else 1),
                "low": fmt.number(low),
                "high": fmt.number(high),
            }
            for c, mean, low, high in s.values
        ]
        colours = ", ".join(f"{s.colours[c]} {_(c.capitalize()).lower()}" for c in COLOURS if s.colours[c])
        judged = "" if s.enough else " " + _("(too few readings to judge)")
        head = _("%(measurement)s: %(count)d readings") % {"measurement": s.text, "count": s.count}
        lines.append(f"{head}, " + "; ".join(parts) + f" {s.unit}" + (f"; {colours}" if colours else "") + judged)
    return "\n".join(lines)


# -- the report as PDF -----------------------------------------------------------------------------------
_ORIGIN = "https://homediag.invalid"  # the base URL the page is rendered under; nothing is fetched from it
_FONT = "/fonts/DejaVuSans.ttf"
_FONT_BOLD = "/fonts/DejaVuSans-Bold.ttf"
PDF_CSS = f"""
@font-face {{ font-family: "Report Sans"; src: url({_ORIGIN}{_FONT}); }}
@font-face {{ font-family: "Report Sans"; font-weight: bold; src: url({_ORIGIN}{_FONT_BOLD}); }}
@page {{ size: A4; margin: 12mm 12mm 14mm; @bottom-right {{ content: counter(page) " / " counter(pages);
  font: 7pt "Report Sans"; }} }}
html {{ font-size: 8pt; }}
body {{ font-family: "Report Sans", sans-serif; background: #fff; }}
main {{ padding: 0; max-width: none; }}
h1 {{ font-size: 13pt; margin: 0 0 2mm; }}
p {{ margin: 0 0 2mm; }}
table.summary th, table.summary td {{ padding: 1mm 1.5mm; }}
.report-charts {{ display: flex; flex-wrap: wrap; justify-content: space-between; }}
.report-chart {{ width: 49%; margin: 2mm 0 0; }}
.report-chart svg.trend {{ width: 100%; height: auto; max-height: 48mm; }}
.reasons {{ margin: 0 0 2mm; }}
.printonly {{ display: none !important; }}  /* the paste-ready text repeats the table; one page */
"""


def _fetcher() -> Any:
    import matplotlib  # on the first PDF, not by every worker at start
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    served: dict[str, tuple[Any, str]] = {
        f"{_ORIGIN}/app/static/app.css": (resources.files("homediag.web").joinpath("static", "app.css"), "text/css"),
        f"{_ORIGIN}{_FONT}": (fonts / "DejaVuSans.ttf", "font/ttf"),
        f"{_ORIGIN}{_FONT_BOLD}": (fonts / "DejaVuSans-Bold.ttf", "font/ttf"),
    }

    class _Fetcher(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            if url not in served:
                raise ValueError(f"the report fetches nothing but its own stylesheet and font, not {url}")
            source, media_type = served[url]
            return URLFetcherResponse(url, source.read_bytes(), {"Content-Type": media_type})

    return _Fetcher()


def pdf(html: str) -> bytes:
    """The report page (as rendered for the browser) as a PDF document."""
    try:
        from weasyprint import CSS, HTML
    except (ImportError, OSError) as exc:  # OSError: the Pango library is missing
        raise Unavailable(f"the PDF cannot be made on this server: {exc}") from None
    # WeasyPrint warns (as logging) of every screen-only CSS property of the app's stylesheet it skips
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    fetcher = _fetcher()
    document = HTML(string=html, base_url=f"{_ORIGIN}/app/", url_fetcher=fetcher, media_type="print")
    # (importing WeasyPrint takes ElementTree's empty prefix: charts.py claims it back for every chart it writes)
    return bytes(document.write_pdf(stylesheets=[CSS(string=PDF_CSS, url_fetcher=fetcher)]))
