"""Pilot evaluation for FIERS: the tabular export, its codebook and manifest, the metrics (DuckDB), small-cell
suppression, the report and the metrics as FHIR MeasureReport resources."""
