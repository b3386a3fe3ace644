"""Security headers of every web page (``/app``): a strict Content-Security-Policy and its companions.

No inline script and no inline style may run: every script and style comes from ``/app/static`` (files
of this package), charts are SVG drawn on the server with presentation attributes (no ``style``), and
the app makes no request to another host. Pages are never cached (they carry patient data); static
assets are. A pure ASGI middleware, like ``api.headers.NoStoreForCallers``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/app"
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),  # a sign-in link or a patient id never leaves in a Referer
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
_REPLACED = {name for name, _ in HEADERS} | {b"cache-control"}


class WebSecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        cache = b"public, max-age=3600" if path.startswith(PREFIX + "/static/") else b"no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", []) if h[0].lower() not in _REPLACED]
                message = {**message, "headers": [*kept, *HEADERS, (b"cache-control", cache)]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
