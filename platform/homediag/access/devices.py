"""Device reads: a clinician reads a device only when it took a reading of a patient it may see now;
an administrator reads any device. Both are audited; what may not be seen answers as unknown."""

from __future__ import annotations

from typing import Any

from homediag import versions
from homediag.errors import Forbidden, NotFound
from homediag.store import models as m
from homediag.users import Principal

from .observations import ObservationReads


def device_resource(device: m.Device) -> dict[str, Any]:
    """The Device as FHIR: the latest one a PHD gateway sent (under our id), else what the envelopes named."""
    if device.resource:
        return {**device.resource, "id": device.id}
    resource: dict[str, Any] = {"resourceType": "Device", "id": device.id}
    if device.manufacturer:
        resource["manufacturer"] = device.manufacturer
    if device.serial:
        resource["serialNumber"] = device.serial
    if device.model:
        resource["modelNumber"] = device.model
    if device.address:
        resource["identifier"] = [{"system": "urn:ietf:rfc:7042", "value": device.address}]
    return resource


class DeviceReads(ObservationReads):
    def read_device(self, principal: Principal, device_id: str, purpose: str | None = None) -> dict[str, Any]:
        if principal.role not in ("clinician", "admin"):
            raise Forbidden(f"the role '{principal.role}' may not read devices")
        view = self.view(principal, purpose) if principal.role == "clinician" else None
        seen: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            device = session.get(m.Device, device_id)
            if device is None:
                permit, detail = False, "no such resource"
            elif view is None:
                permit, detail = True, "administration"
            else:
                permit = self.device_seen(session, view, device_id)
                detail = (
                    "took readings of a patient this clinician may see"
                    if permit
                    else "took no reading of a patient this clinician may see"
                )
            self._audit(
                session,
                principal,
                "read",
                "permit" if permit else "deny",
                purpose=view.purpose if view is not None else None,
                entity=f"Device/{device_id}",
                detail=detail,
            )
            if permit and device is not None:
                seen = versions.stamp(device_resource(device), device.version, device.updated_at or device.first_seen)
        if seen is None:
            raise NotFound.resource("Device", device_id)
        return seen

    def read_device_version(
        self, principal: Principal, device_id: str, version: str, purpose: str | None = None
    ) -> dict[str, Any]:
        """vread: the current version only (earlier versions of a Device are not kept); audited as a read."""
        current = self.read_device(principal, device_id, purpose)
        if version != current["meta"]["versionId"]:
            raise NotFound(
                f"Device/{device_id} version {version[:20]} is not kept (the current version is "
                f"{current['meta']['versionId']}; earlier versions of a Device are not kept)"
            )
        return current
