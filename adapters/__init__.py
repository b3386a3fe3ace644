"""Adapters: what turns a device's or a vendor's data into typed readings."""
