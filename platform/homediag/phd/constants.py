"""Names the PHD gateway front uses: HL7 PHD IG systems and URLs, MDC codes, limits."""

from __future__ import annotations

ADAPTER = "fhir-phd"  # what the upload log and the observation rows name as the source
PHD_SD = "http://hl7.org/fhir/uv/phd/StructureDefinition"
PHD_IDENTIFIER_SYSTEM = f"{PHD_SD}/PhdBaseObservation"  # the PHD IG's dedup identifier
CTS_REFERENCE = f"{PHD_SD}/CoincidentTimeStampReference"
GATEWAY_DEVICE = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
EUI64_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"  # IEEE 11073 system id (EUI-64)
BLUETOOTH_SYSTEM = "http://hl7.org/fhir/sid/eui-48/bluetooth"
MDC_AHD = "531981"  # MDC_MOC_VMS_MDS_AHD: an application hosting device, i.e. a PHG
MDC_TIME_ABS = "67975"  # MDC_ATTR_TIME_ABS: the PHD coincident time stamp
MAX_ENTRIES = 2000
WHAT = "upload"  # how the pipeline's messages name what a PHD gateway sent
