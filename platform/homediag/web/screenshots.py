"""Screenshots of every screen of the web app, for the README: ``python -m homediag.web.screenshots``.

Builds a fresh demo pilot (synthetic) in a temporary folder, serves it on a free local port, signs in with
the demo's one-time links and photographs each screen at 1280x800 with headless Chromium (Playwright, a
test dependency: ``pip install -e .[test]``; Debian's ``/usr/bin/chromium``, or ``--chromium PATH``).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def _serve(app: object) -> tuple[str, object, threading.Thread]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the demo server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def take(out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from homediag.api.app import create_app
    from homediag.demo import build_demo
    from homediag.web.sessions import issue_signin_link

    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        pilot = build_demo(Path(tmp) / "demo", patients=12, days=30)
        assert pilot.runtime is not None
        rt = pilot.runtime
        base, server, thread = _serve(create_app(rt))
        shown = next(p for p in pilot.patients if p["consent"] == "active")  # the patient with a refused upload
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 800})

                def shot(name: str, *, full: bool = False, selector: str | None = None) -> None:
                    path = out / f"{name}.png"
                    if selector:
                        page.locator(selector).screenshot(path=str(path))
                    else:
                        page.screenshot(path=str(path), full_page=full)
                    made.append(path)

                page.goto(f"{base}/app/signin")
                shot("01-sign-in")
                page.goto(base + pilot.web["clinician"])
                page.wait_for_url(f"{base}/app/worklist")
                shot("02-worklist")
                page.goto(f"{base}/app/patients/{shown['id']}?days=30")
                shot("03-patient")
                shot("04-patient-full", full=True)
                shot("05-why-no-data", selector="#why-no-data")
                page.goto(f"{base}/app/patients/{shown['id']}/thresholds")
                shot("08-thresholds", full=True)
                page.goto(f"{base}/app/patients/{shown['id']}/report")
                shot("09-period-report", full=True)
                page.emulate_media(media="print")
                shot("10-period-report-print", full=True)
                page.emulate_media(media="screen")
                page.get_by_role("button", name="English").click()
                page.wait_for_load_state()
                page.goto(f"{base}/app/worklist")
                shot("06-worklist-english")
                page.context.clear_cookies()
                page.goto(base + issue_signin_link(rt, _admin_id(rt)))
                shot("07-admin")
                page.goto(f"{base}/app/admin/patients/{shown['id']}")
                shot("11-admin-consents", full=True)
                page.goto(f"{base}/app/admin/care-teams")
                shot("12-admin-care-teams", full=True)
                page.goto(f"{base}/app/admin/gateways")
                shot("13-admin-gateways", full=True)
                browser.close()
        finally:
            server.should_exit = True  # type: ignore[attr-defined]
            thread.join(timeout=10)
            rt.close()
    return made


def _admin_id(rt: object) -> str:
    from sqlalchemy import select

    from homediag.store import models as m

    with rt.sessions() as session:  # type: ignore[attr-defined]
        return str(session.execute(select(m.User.id).where(m.User.role == "admin")).scalars().first())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="where the PNG files go")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium to drive")
    args = parser.parse_args()
    for path in take(args.out, args.chromium):
        print(path)


if __name__ == "__main__":
    main()
