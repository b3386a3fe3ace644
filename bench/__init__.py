"""Baseline benchmark of homediag: ingest throughput and clinician search latency, per engine.

Run from the repository root: ``python -m bench`` (or ``python3 run.py bench``); ``--help`` for
options. Every run makes its own database (SQLite in a temporary directory; a fresh PostgreSQL
database, dropped at the end), migrates it and drives the real ASGI app in-process. See
docs/performance.md.
"""
