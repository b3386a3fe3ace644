"""The one builder of the Bundles the service answers with: searchsets (with their paging links),
histories, collections, and transaction and batch responses. Routes, the access layer and exports
build Bundles here only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from homediag.fhir_profiles.fhirjson import Raw


def entry(base: str, resource: Mapping[str, Any], mode: str = "match") -> dict[str, Any]:
    """An entry of ``resource`` (a dict, or a ``fhirjson.Raw``: written as its text)."""
    known = resource.known_id if type(resource) is Raw else None
    if known is not None:  # a stored text: its type and id known, not parsed
        rtype, rid = known
        return {"fullUrl": f"{base}/{rtype}/{rid}", "resource": resource, "search": {"mode": mode}}
    if "id" not in resource:  # an OperationOutcome about the search itself
        return {"resource": resource, "search": {"mode": mode}}
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }


_COUNTED = object()


def searchset(
    base: str,
    resources: Iterable[Mapping[str, Any]],
    *,
    total: int | None | object = _COUNTED,
    links: dict[str, str] | None = None,
    included: Iterable[dict[str, Any]] | None = None,
    outcome: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A searchset of ``resources`` (the matches; ``total`` default: their number, None: left out).
    ``links``: relation -> URL (self, next, previous); ``included``: resources an ``_include`` brought
    (search.mode include); ``outcome``: an OperationOutcome about the search (search.mode outcome)."""
    entries = [entry(base, r) for r in resources]
    matches = len(entries)
    entries += [entry(base, r, "include") for r in included or ()]
    if outcome is not None:
        entries.append(entry(base, outcome, "outcome"))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is _COUNTED:
        bundle["total"] = matches
    elif total is not None:
        bundle["total"] = total
    if links:
        bundle["link"] = [{"relation": relation, "url": url} for relation, url in links.items()]
    bundle["entry"] = entries
    return bundle


def history_of_searchset(base: str, searchset_bundle: dict[str, Any]) -> dict[str, Any]:
    """A page of a type history made from a searchset page of the same resources (newest first): the
    same total and paging links, each entry as the version it is."""
    matches = [e["resource"] for e in searchset_bundle.get("entry", []) if e["search"]["mode"] == "match"]
    out = history(base, matches)
    if "total" in searchset_bundle:
        out["total"] = searchset_bundle["total"]
    else:
        out.pop("total")
    if searchset_bundle.get("link"):
        out = {
            **{k: v for k, v in out.items() if k != "entry"},
            "link": searchset_bundle["link"],
            "entry": out["entry"],
        }
    return out


def history(base: str, versions: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A history Bundle of resource versions, newest first; each version carries ``meta.versionId``
    and ``meta.lastUpdated``. Version 1 was a create (POST), later ones updates (PUT)."""
    entries = []
    for v in versions:
        rtype, rid, version = v["resourceType"], v["id"], v["meta"]["versionId"]
        created = version == "1"
        entries.append(
            {
                "fullUrl": f"{base}/{rtype}/{rid}",
                "resource": v,
                "request": {"method": "POST", "url": rtype} if created else {"method": "PUT", "url": f"{rtype}/{rid}"},
                "response": {
                    "status": "201 Created" if created else "200 OK",
                    "etag": f'W/"{version}"',
                    "lastModified": v["meta"]["lastUpdated"],
                },
            }
        )
    return {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}


def collection(resources: Iterable[dict[str, Any]], *, full_url: Any = None) -> dict[str, Any]:
    """A collection Bundle; ``full_url(resource)`` names each entry (default: none)."""
    entries = []
    for r in resources:
        e: dict[str, Any] = {"resource": r}
        if full_url is not None:
            e = {"fullUrl": full_url(r), **e}
        entries.append(e)
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _response(kind: str, responses: Iterable[tuple[str | None, dict[str, Any]]]) -> dict[str, Any]:
    entries = [{**({"fullUrl": url} if url else {}), "response": response} for url, response in responses]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def transaction_response(responses: Iterable[tuple[str | None, dict[str, Any]]]) -> dict[str, Any]:
    """The answer to a transaction: per entry of the request, in order, (its fullUrl or None, its
    ``response``: status, location, outcome)."""
    return _response("transaction-response", responses)


def batch_response(responses: Iterable[tuple[str | None, dict[str, Any]]]) -> dict[str, Any]:
    """The answer to a batch, as ``transaction_response``."""
    return _response("batch-response", responses)
