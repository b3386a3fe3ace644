"""fhirpy (sync and async), unmodified, against a live server: read, search, paging, refresh(), count(),
vread; only what the reader may see."""

from __future__ import annotations

import asyncio

import pytest
from client_world import BP, ingest_one, seed


@pytest.fixture
def world(pilot, tokens):
    return seed(pilot, tokens)


def test_fhirpy_sync(live_server, tokens, pilot, world):
    from fhirpy import SyncFHIRClient
    from fhirpy.base.exceptions import ResourceNotFound

    fhir = SyncFHIRClient(f"{live_server}/fhir", authorization=f"Bearer {tokens.clinician}")
    observations = fhir.resources("Observation").search(patient=world.consented, code=BP)

    assert observations.count() == 7
    found = observations.limit(3).fetch_all()  # three pages of next links
    assert sorted(o["id"] for o in found) == sorted(world.bp)
    assert fhir.resources("Observation").search(patient=world.other).count() == 0

    first = found[0]
    read = fhir.reference("Observation", first["id"]).to_resource()
    assert read["id"] == first["id"] and read["meta"]["versionId"] == "1"
    before = dict(read)
    read.refresh()  # If-None-Match: 304 keeps the resource as it was
    assert dict(read) == before
    vread = read.execute("_history/1", method="get")
    assert vread["id"] == first["id"] and vread["meta"]["versionId"] == "1"

    patient = fhir.reference("Patient", world.consented).to_resource()
    assert patient["id"] == world.consented and patient["meta"]["versionId"] == "1"
    with pytest.raises(ResourceNotFound):
        fhir.reference("Patient", world.other).to_resource()

    # a reading that arrived since: a new count and a new walk see it
    ingest_one(pilot, tokens, world, day=20)
    assert observations.count() == 8
    assert len(observations.limit(5).fetch_all()) == 8


def test_fhirpy_async(live_server, tokens, world):
    from fhirpy import AsyncFHIRClient

    async def walk() -> None:
        fhir = AsyncFHIRClient(f"{live_server}/fhir", authorization=f"Bearer {tokens.clinician}")
        observations = fhir.resources("Observation").search(patient=world.consented, code=BP)
        assert await observations.count() == 7
        found = await observations.limit(2).fetch_all()
        assert sorted(o["id"] for o in found) == sorted(world.bp)
        one = await fhir.reference("Observation", world.bp[0]).to_resource()
        await one.refresh()
        assert one["meta"]["versionId"] == "1"
        vread = await one.execute("_history/1", method="get")
        assert vread["id"] == world.bp[0]
        first = await observations.sort("-date").first()
        assert first["id"] in world.bp

    asyncio.run(walk())
