"""Content negotiation of the FHIR API (``/fhir``), per FHIR R4 http.html#mime-type, in one pure ASGI
middleware, so that every route answers alike:

- JSON only: a request for XML (``_format=xml``, ``Accept: application/fhir+xml``) or for any type that is
  not JSON is answered 406 with an OperationOutcome (in JSON, the one format served);
- ``Accept: application/json`` (or ``_format=json`` / ``application/json``) is answered with that
  content type, otherwise ``application/fhir+json``;
- ``_pretty=true`` indents the answer;
- ``HEAD`` is answered as ``GET`` with the same status and headers and no body.

``_format`` and ``_pretty`` are taken off the query before a route sees it (they say how to answer, not
what to find).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homediag.fhir_profiles import Issue, fhirjson, operation_outcome

PREFIX = "/fhir"
# Bulk Data output files are NDJSON downloads (the Bulk Data IG's own negotiation), not FHIR JSON answers.
NOT_NEGOTIATED = ("/fhir/bulk-files/",)
FHIR_JSON = "application/fhir+json"
PLAIN_JSON = "application/json"
_JSON_FORMATS = {"json", FHIR_JSON, PLAIN_JSON, "application/json+fhir", "text/json"}
_ANY = {"*/*", "application/*"}


def _media_types(accept: str) -> list[str]:
    """The media types an Accept header names (parameters other than ``fhirVersion`` ignored, q=0 left out)."""
    found = []
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if kind:
            found.append(kind.lower())
    return found


def choose(format_param: str | None, accept: str | None) -> str | None:
    """The content type to answer with, or None when the client wants only what is not served (406)."""
    if format_param is not None:
        wanted = format_param.strip().lower().split(";")[0].strip()
        if wanted not in _JSON_FORMATS:
            return None
        return PLAIN_JSON if wanted in (PLAIN_JSON, "text/json") else FHIR_JSON
    if not accept:
        return FHIR_JSON
    types = _media_types(accept)
    if FHIR_JSON in types or "application/json+fhir" in types:
        return FHIR_JSON
    if PLAIN_JSON in types or "text/json" in types:
        return PLAIN_JSON
    if any(t in _ANY for t in types) or not types:
        return FHIR_JSON
    return None


class FhirNegotiation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] != "http"
            or not (path == PREFIX or path.startswith(PREFIX + "/"))
            or path.startswith(NOT_NEGOTIATED)
        ):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        formats = [v for k, v in query if k == "_format"]
        pretty = any(k == "_pretty" and v.strip().lower() == "true" for k, v in query)
        accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
        content_type = choose(formats[-1] if formats else None, accept)
        head = scope["method"] == "HEAD"
        if content_type is None:
            wanted = formats[-1] if formats else accept
            issue = Issue(
                "error",
                "not-supported",
                f"only JSON is served (application/fhir+json or application/json), not {str(wanted)[:80]!r}",
                "_format" if formats else "Accept",
            )
            await _answer(send, 406, operation_outcome([issue]), FHIR_JSON, pretty, head)
            return
        kept = [(k, v) for k, v in query if k not in ("_format", "_pretty")]
        inner: dict[str, Any] = {**scope, "query_string": urlencode(kept).encode("latin-1")}
        if head:
            inner["method"] = "GET"
        state: dict[str, Any] = {}

        async def negotiated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                is_json = any(k.lower() == b"content-type" and b"json" in v for k, v in headers)
                is_fhir = any(k.lower() == b"content-type" and b"fhir+json" in v for k, v in headers)
                state["buffer"] = is_json and pretty
                if is_fhir:  # a plain JSON answer (SMART discovery) stays plain JSON
                    headers = [
                        (k, f"{content_type}; charset=utf-8".encode()) if k.lower() == b"content-type" else (k, v)
                        for k, v in headers
                    ]
                state["start"] = {**message, "headers": headers}
                state["body"] = b""
                if not state["buffer"]:
                    await send(state["start"])
                return
            if message["type"] == "http.response.body":
                if state.get("buffer"):
                    state["body"] += message.get("body", b"")
                    if message.get("more_body"):
                        return
                    body = _indent(state["body"])
                    start = state["start"]
                    start["headers"] = [
                        (k, str(len(body)).encode()) if k.lower() == b"content-length" else (k, v)
                        for k, v in start["headers"]
                    ]
                    await send(start)
                    await send({"type": "http.response.body", "body": b"" if head else body})
                    return
                if head:
                    if not message.get("more_body"):
                        await send({"type": "http.response.body", "body": b""})
                    return
            await send(message)

        await self.app(inner, receive, negotiated)


def _indent(body: bytes) -> bytes:
    try:
        return fhirjson.dumps_pretty(fhirjson.loads(body)).encode("utf-8")
    except (ValueError, TypeError):
        return body


async def _answer(send: Send, status: int, body: dict[str, Any], content_type: str, pretty: bool, head: bool) -> None:
    data = (fhirjson.dumps_pretty(body) if pretty else fhirjson.dumps(body)).encode("utf-8")
    headers = [
        (b"content-type", f"{content_type}; charset=utf-8".encode()),
        (b"content-length", str(len(data)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else data})
