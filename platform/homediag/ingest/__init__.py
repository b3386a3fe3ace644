"""The write path: two fronts, one pipeline.

- ``envelopes``: the ``/ingest`` front (envelope -> adapter -> readings -> built Observations);
- ``homediag.phd``: the PHD gateway front (FHIR Bundles and Observations from gateways);
- ``pipeline``: what both share (unit of work, admitting patient and device, time checks, rows,
  storing, finishing the upload, audit);
- ``uploadlog``: sealing, opening and creating the upload log's entries;
- ``admission``: admission answers remembered per process while ``admission_version`` stands;
- ``grouped``: group commit of single envelopes arriving together in a process.
"""

from __future__ import annotations

from .envelopes import EnvelopeResult, IngestAnswer, IngestService, ObservationResult, device_id, observation_row
from .uploadlog import open_upload, seal_upload

__all__ = [
    "EnvelopeResult",
    "IngestAnswer",
    "IngestService",
    "ObservationResult",
    "device_id",
    "observation_row",
    "open_upload",
    "seal_upload",
]
