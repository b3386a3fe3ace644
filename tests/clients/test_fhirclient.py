"""fhirclient (the SMART on FHIR Python client), unmodified, against a live server: the capability
statement, read, search with paging, vread, and its R4 models parsing what is served."""

from __future__ import annotations

import pytest
from client_world import BP, seed


@pytest.fixture
def world(pilot, tokens):
    return seed(pilot, tokens)


def test_fhirclient_reads_searches_and_pages(live_server, tokens, world):
    from fhirclient import client
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient

    smart = client.FHIRClient(settings={"app_id": "homediag-tests", "api_base": f"{live_server}/fhir"})
    smart.server.session.headers["Authorization"] = f"Bearer {tokens.clinician}"  # a token the admin issued

    capability = smart.server.capabilityStatement
    assert capability.fhirVersion == "4.0.1"
    assert "Observation" in {r.type for r in capability.rest[0].resource}

    search = Observation.where(struct={"patient": world.consented, "code": BP, "_count": "3"})
    found = list(search.perform_resources_iter(smart.server))  # follows next links
    assert sorted(o.id for o in found) == sorted(world.bp)
    assert all(o.meta.versionId == "1" for o in found)
    bundle = next(Observation.where(struct={"patient": world.consented, "_count": "3"}).perform_iter(smart.server))
    assert bundle.total == 14 and len(bundle.entry) == 3

    one = Observation.read(world.bp[0], smart.server)
    assert one.subject.reference == f"Patient/{world.consented}"
    vread = Observation.read_from(f"Observation/{world.bp[0]}/_history/1", smart.server)
    assert vread.id == one.id and vread.meta.versionId == "1"

    patient = Patient.read(world.consented, smart.server)
    assert patient.id == world.consented
    from fhirclient.server import FHIRNotFoundException

    with pytest.raises(FHIRNotFoundException):
        Patient.read(world.other, smart.server)
