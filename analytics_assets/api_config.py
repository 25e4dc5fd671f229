"""The single declarative definition of the analytics API: the seed's config dict.

Built by a function, not at import: the seed reads `dlt.secrets["client_id"]`, which fails in a
code location that has no secrets.
"""

from __future__ import annotations

from typing import Any, Optional

import dlt

from .settings import ApiSettings


def api_config(settings: ApiSettings) -> dict[str, Any]:
    """The seed's config with the base URL, token URL and credentials of `settings`.

    Credentials left unset in `settings` come from dlt secrets exactly as in the seed
    (`client_id`, `client_secret` in `.dlt/secrets.toml` or the environment).
    """
    return {
        "client": {
            "base_url": settings.base_url,
            "auth": {
                "type": "oauth2",
                "client_id": settings.client_id or _dlt_secret("client_id"),
                "client_secret": settings.client_secret or _dlt_secret("client_secret"),
                "token_url": settings.token_url,
            },
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
        },
        "resources": [
            {
                "name": "resource_name",
                "endpoint": {
                    "path": "/v1/resource",
                    "data_selector": "data",
                    "paginator": {
                        "type": "offset",
                        "limit": 100,
                    },
                },
            }
        ],
    }


def _dlt_secret(key: str) -> Optional[str]:
    """`dlt.secrets[key]`, or None so the caller can name the variable that is missing."""
    return dlt.secrets.get(key)


def resource_names(settings: ApiSettings) -> list[str]:
    return [r["name"] if isinstance(r, dict) else str(r) for r in api_config(settings)["resources"]]
