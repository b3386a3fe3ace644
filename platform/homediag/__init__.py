"""homediag: the data platform of the Nykøbing F. home-diagnostics pilot.

This package is the service; the pure components are mapped into its namespace:
``homediag.adapters.devices``, ``homediag.fhir_profiles`` and ``homediag.consent``.
"""

__version__ = "0.1.0"
