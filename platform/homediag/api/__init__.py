"""The HTTP API: ingest, the FHIR API and the web pages. Routers translate; services decide."""
