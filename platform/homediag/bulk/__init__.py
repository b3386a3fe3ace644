"""FHIR Bulk Data export (Bulk Data Access IG 2.0): jobs, their worker, NDJSON files and the manifest.

``request`` parses a kick-off; ``jobs`` keeps jobs in the ``export_job`` table (progress per resource
type, so that a job resumes after a restart from its last whole file) and answers status, manifest,
cancel and expiry; ``ndjson`` writes files atomically (a file appears under its name only when whole);
``worker`` runs jobs in a background thread started with the app. What a job may contain is decided
by the access layer (``homediag.access.export``): every resource is read, decided, audited and shown
through it, never here.
"""
