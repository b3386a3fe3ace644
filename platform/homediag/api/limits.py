"""Request body size limits, enforced while the body streams in (pure ASGI middleware).

A body announced larger than its endpoint's limit (``Content-Length``) is answered 413 before a byte
of it is read; a body without a length (chunked) is counted as it arrives and refused as soon as it
passes the limit, so the server never holds more than the limit of one request. The gateway
endpoints take ``HOMEDIAG_MAX_UPLOAD_BYTES`` (lists of envelopes, Bundles), every other endpoint
``HOMEDIAG_MAX_BODY_BYTES``. The answer is an OperationOutcome naming the limit.

The same middleware refuses (400) a path or query parameter holding a NUL character (``%00``):
no id or search value holds one, and PostgreSQL cannot even compare a text with one.

A refusal that closes the connection (``Connection: close``) while part of the body is still unread
lingers before closing, as web servers do: the answer is written at once, then what the client goes
on sending is read and dropped until it pauses (``LINGER_IDLE_S``), ends, or passes ``LINGER_MAX_S``
or ``LINGER_MAX_BYTES``. Closing a socket with unread data in it makes the kernel send a reset, and a
client that reads the answer after it finished writing would see "connection reset" instead of the
413 that says what was wrong.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homediag.errors import BadRequest, PayloadTooLarge, ServiceError
from homediag.fhir_profiles import fhirjson, operation_outcome
from homediag.settings import Settings

GATEWAY_PATHS = ("/ingest", "/fhir", "/fhir/Observation")

LINGER_IDLE_S = 0.25
LINGER_MAX_S = 2.0
LINGER_MAX_BYTES = 8 * 1024 * 1024


def body_limit(settings: Settings, path: str) -> int:
    """The largest body (bytes) a request to ``path`` may carry."""
    return settings.max_upload_bytes if path.rstrip("/") in GATEWAY_PATHS else settings.max_body_bytes


def too_large(limit: int, *, partly: bool = False) -> PayloadTooLarge:
    read = "it was read no further" if partly else "it was not read"
    return PayloadTooLarge(
        f"the request body is larger than the {limit} bytes this endpoint takes; {read}"
        " (send less per request: smaller lists, fewer entries)",
        "body",
    )


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nul = _nul_in_request(scope)
        if nul is not None:
            await _refuse(send, nul)
            return
        limit = body_limit(self.settings, scope["path"])
        length = _content_length(scope)
        body = _Body(receive, send, has_body=bool(length) or _chunked(scope))
        if length is not None and length > limit:
            await _refuse(body.send, too_large(limit))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await body.receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large(limit, partly=True)  # the app's one error handler answers it (413 OperationOutcome)
            return message

        await self.app(scope, counted, body.send)


class _Body:
    """One request's ``receive`` and ``send``, knowing whether the request body was read to its end; an
    answer that closes the connection before then lingers (the module's docstring says why)."""

    def __init__(self, receive: Receive, send: Send, *, has_body: bool) -> None:
        self._receive = receive
        self._send = send
        self.unread = has_body  # part of the body has not been received yet
        self.closing = False  # the answer says ``Connection: close``

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.unread = False
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.closing = any(
                name.lower() == b"connection" and b"close" in value.lower()
                for name, value in message.get("headers", ())
            )
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            if self.closing and self.unread:
                await self._send({**message, "more_body": True})  # the whole answer, written now
                await self._linger()
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
                return
        await self._send(message)

    async def _linger(self) -> None:
        deadline = time.monotonic() + LINGER_MAX_S
        dropped = 0
        while self.unread and dropped <= LINGER_MAX_BYTES:
            left = min(LINGER_IDLE_S, deadline - time.monotonic())
            if left <= 0:
                return
            try:
                message = await asyncio.wait_for(self.receive(), left)
            except TimeoutError:
                return
            dropped += len(message.get("body", b""))


def _nul_in_request(scope: Scope) -> BadRequest | None:
    """A 400 naming the path or the query parameter that holds a NUL character, else None."""
    if "\x00" in scope["path"]:
        return BadRequest("the request path holds a NUL character (%00)", "path", code="value")
    query = scope.get("query_string", b"")
    if b"%00" in query.lower() or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                where = name.replace("\x00", "") or "query"
                return BadRequest(f"the query parameter '{where}' holds a NUL character (%00)", where, code="value")
    return None


def _chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in scope.get("headers", ()))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, error: ServiceError) -> None:
    body = fhirjson.dumps(operation_outcome(error.issues)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/fhir+json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
