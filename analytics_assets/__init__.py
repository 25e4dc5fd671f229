"""analytics-assets: OAuth2 REST APIs synced into a warehouse as daily-partitioned Dagster assets.

The package is dg's registry module (`dg list components` shows `analytics_assets.RestApiComponent`).
The component is imported on first use, not with the package: `analytics_assets.settings` and the
rest load without Dagster.
"""

from typing import Any

COMPONENTS = ("RestApiComponent",)


def __getattr__(name: str) -> Any:
    if name in COMPONENTS:
        from . import components

        return getattr(components, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *COMPONENTS})
