"""A FHIR Bulk Data client written from the Bulk Data Access IG 2.0's text, for the export tests.

Kick-off: ``GET [base]/$export`` (or ``Patient/$export``, ``Group/[id]/$export``) with ``Accept:
application/fhir+json`` and ``Prefer: respond-async``; the server answers 202 with the status URL in
``Content-Location``. A kick-off may also be a ``POST`` of a FHIR ``Parameters`` resource (the same
parameters, each in its value[x]: ``_type`` and ``_typeFilter`` as valueString, ``_since`` as valueInstant,
``patient`` as valueReference, which only a POST can carry), with the same headers.
Status: ``GET`` the status URL; 202 (with ``X-Progress`` and optionally
``Retry-After``) while in progress, 200 with a JSON manifest (``transactionTime``, ``request``,
``requiresAccessToken``, ``output[{type, url, count}]``, ``error[]``) when complete, 4xx/5xx with an
OperationOutcome on error. Files: ``GET`` each ``output.url``, with the access token when
``requiresAccessToken`` is true; each line is one FHIR resource. Delete: ``DELETE`` the status URL (202).
It works on anything with httpx's request interface: Starlette's TestClient or an ``httpx.Client``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


class BulkError(AssertionError):
    pass


@dataclass
class BulkClient:
    http: Any  # TestClient or httpx.Client
    token: str
    timeout: float = 60.0

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def kick_off(self, path: str, params: dict[str, str] | None = None) -> str:
        response = self.http.get(
            path,
            params=params or {},
            headers={**self._auth(), "Accept": "application/fhir+json", "Prefer": "respond-async"},
        )
        if response.status_code != 202:
            raise BulkError(f"kick-off answered {response.status_code}: {response.text}")
        return str(response.headers["Content-Location"])

    def kick_off_post(self, path: str, parameters: list[dict[str, Any]]) -> str:
        body = {"resourceType": "Parameters", "parameter": parameters}
        response = self.http.post(
            path,
            json=body,
            headers={
                **self._auth(),
                "Accept": "application/fhir+json",
                "Content-Type": "application/fhir+json",
                "Prefer": "respond-async",
            },
        )
        if response.status_code != 202:
            raise BulkError(f"kick-off answered {response.status_code}: {response.text}")
        return str(response.headers["Content-Location"])

    def poll(self, status_url: str) -> tuple[int, dict[str, str], Any]:
        response = self.http.get(status_url, headers=self._auth())
        body = response.json() if response.content else None
        return response.status_code, dict(response.headers), body

    def wait(self, status_url: str) -> dict[str, Any]:
        """Poll until complete; every in-progress answer must carry X-Progress."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            status, headers, body = self.poll(status_url)
            if status == 200:
                return dict(body)
            if status != 202:
                raise BulkError(f"status answered {status}: {body}")
            if "x-progress" not in headers:
                raise BulkError("an in-progress status answer without X-Progress")
            retry = headers.get("retry-after")
            time.sleep(min(float(retry), 0.2) if retry and retry.isdigit() else 0.05)
        raise BulkError(f"the export did not complete within {self.timeout} s")

    def download(self, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Every output file, parsed line by line, per resource type."""
        out: dict[str, list[dict[str, Any]]] = {}
        headers = {"Accept": "application/fhir+ndjson", **(self._auth() if manifest["requiresAccessToken"] else {})}
        for entry in manifest["output"]:
            response = self.http.get(entry["url"], headers=headers)
            if response.status_code != 200:
                raise BulkError(f"{entry['url']} answered {response.status_code}")
            lines = response.text.splitlines()
            if entry.get("count") is not None and len(lines) != entry["count"]:
                raise BulkError(f"{entry['url']}: {len(lines)} lines, the manifest says {entry['count']}")
            for line in lines:
                resource = json.loads(line)
                if resource.get("resourceType") != entry["type"]:
                    raise BulkError(f"a {resource.get('resourceType')} in a {entry['type']} file")
                out.setdefault(entry["type"], []).append(resource)
        return out

    def delete(self, status_url: str) -> int:
        return int(self.http.delete(status_url, headers=self._auth()).status_code)

    def export(self, path: str, params: dict[str, str] | None = None) -> tuple[str, dict[str, Any], dict[str, list]]:
        status_url = self.kick_off(path, params)
        manifest = self.wait(status_url)
        return status_url, manifest, self.download(manifest)

    def export_post(self, path: str, parameters: list[dict[str, Any]]) -> tuple[str, dict[str, Any], dict[str, list]]:
        status_url = self.kick_off_post(path, parameters)
        manifest = self.wait(status_url)
        return status_url, manifest, self.download(manifest)
