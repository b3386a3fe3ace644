"""Driving Debian's Chromium with Playwright, and axe-core (the npm package, installed on first use into
``.test-tools/`` at the repository root) for the accessibility checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("HOMEDIAG_CHROMIUM", "/usr/bin/chromium"))
TOOLS = ROOT / ".test-tools"
AXE_VERSION = "4.14.1"
AXE = TOOLS / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]


def _missing(what: str) -> None:
    if os.environ.get("CI") or os.environ.get("HOMEDIAG_REQUIRE_BROWSER"):
        pytest.fail(what)
    pytest.skip(what)


def chromium_path() -> str:
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)")
    return str(CHROMIUM)


def axe_source() -> str:
    """axe-core's script, installed with npm into .test-tools/ when it is not there yet."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            _missing("npm is needed once to install axe-core into .test-tools/")
        TOOLS.mkdir(exist_ok=True)
        subprocess.run(
            [str(npm), "install", "--prefix", str(TOOLS), "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return AXE.read_text(encoding="utf-8")


def serious_violations(page: Any, source: str) -> list[str]:
    """axe-core's serious and critical violations on the page (WCAG 2.1 A and AA rules). The script goes in
    through the DevTools protocol (page.evaluate), which the page's CSP does not govern: the app itself
    still allows no inline script."""
    page.evaluate(source + "\n;undefined")
    result = page.evaluate(
        "async () => (await axe.run(document, {runOnly: {type: 'tag', values:"
        " ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(', '))"
    )
    return list(result)


_SHARED: dict[str, Any] = {}


def shared_chromium() -> Any:
    """One headless Chromium for every browser test module of the run (Playwright's sync API allows one
    instance at a time in a thread, and each module's session fixture would start its own)."""
    if "browser" not in _SHARED:
        from playwright.sync_api import sync_playwright

        path = chromium_path()
        playwright = sync_playwright().start()
        _SHARED["playwright"] = playwright
        _SHARED["browser"] = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
    return _SHARED["browser"]


def close_shared_chromium() -> None:
    if "browser" in _SHARED:
        _SHARED.pop("browser").close()
        _SHARED.pop("playwright").stop()
