"""Bundled demo analytics API: OAuth2 client credentials, paging, injectable faults and API shapes."""

from .server import DemoApi, DemoApiConfig, Faults

__all__ = ["DemoApi", "DemoApiConfig", "Faults"]
