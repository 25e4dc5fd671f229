"""Bundled demo analytics API: OAuth2 client credentials, paging, injectable faults, API shapes and profiles."""

from .server import FAULT_DOCS, PROFILES, DemoApi, DemoApiConfig, Faults

__all__ = ["FAULT_DOCS", "PROFILES", "DemoApi", "DemoApiConfig", "Faults"]
