"""ACME Medical's adapters for homediag (an example vendor package)."""
