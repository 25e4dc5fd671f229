"""Bundled demo analytics API: OAuth2 client credentials, offset paging, injectable faults."""

from .server import DemoApi, DemoApiConfig, Faults

__all__ = ["DemoApi", "DemoApiConfig", "Faults"]
