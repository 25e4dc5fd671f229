"""This project's component types: `RestApiComponent`, an API of the defs folder.

dg finds them as `analytics_assets.RestApiComponent` (the package's registry module, pyproject's
`dagster_dg_cli.registry_modules` entry point)."""

from .rest_api import RestApiComponent as RestApiComponent
