"""Response headers every answer to an authenticated request carries."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_STORE = (b"cache-control", b"no-store")


class NoStoreForCallers:
    """``Cache-Control: no-store`` on every response to a request with credentials: such a response may
    carry patient data (a re-identified Patient, readings, the upload log), which no cache, proxy or
    browser may keep. A pure ASGI middleware: it costs the ingest path nothing measurable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(k == b"authorization" for k, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"]
                message = {**message, "headers": [*headers, NO_STORE]}
            await send(message)

        await self.app(scope, receive, send_no_store)
