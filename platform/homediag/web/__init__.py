"""The clinician web app, served under ``/app`` by the same ASGI app as the API.

Server-rendered pages (Jinja2), Danish by default and English by choice (Babel catalogues), a strict
Content-Security-Policy (``security.py``), sign-in with the hospital's OpenID Connect provider or a
one-time demo link (``sessions.py``, ``oidc_flow.py``). Every route declares its policy in
``homediag.api.policy`` and reads patient data only through ``homediag.access``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # not imported at run time: the chart drawing processes import this package (``chart_process``)
    from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the web app's routes and security headers to ``app``."""
    from .admin_routes import router as admin_router
    from .chart_process import POOL
    from .routes import router
    from .security import WebSecurityHeaders

    POOL.processes = app.state.runtime.settings.chart_processes  # one pool per server process

    app.add_middleware(WebSecurityHeaders)
    app.include_router(router)
    app.include_router(admin_router)
