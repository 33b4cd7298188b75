"""Integrations that depend on optional packages."""
