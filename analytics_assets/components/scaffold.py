"""`dg scaffold defs analytics_assets.RestApiComponent <name>`: a working `defs.yaml`, commented,
pointing at the bundled demo API (`analytics-assets demo-api --port 8765`), with the seed's endpoint.

The text is written here rather than dumped from a dict, so that the file explains itself."""

from typing import Optional

import dagster as dg

from ..api.instance import name_problem

DEMO_PORT = 8765


class RestApiScaffoldParams(dg.Model):
    """`dg scaffold defs ... --json-params '{"port": 9000}'`: the demo API's port the file points at."""

    port: Optional[int] = None


def defs_yaml(type_name: str, name: str, port: int = DEMO_PORT) -> str:
    env = name.upper()
    return f'''\
# The API `{name}`, synced into the warehouse with dlt (docs/api-config.md has every key).
# It builds the schema `{name}`, assets `{name}/<resource>` downstream of `{name}_api/<resource>`, their
# checks, the job `{name}_job`, the schedule `{name}_daily`, the sensors `{name}_reconcile` and
# `{name}_freshness`, and the resource `{name}_api` (its run tunables).
# `dg check defs` loads it; `dg list defs` shows what it builds. As written, it reads the bundled
# demo API: `analytics-assets demo-api --port {port}`, then
#   {env}_CLIENT_ID=demo-client {env}_CLIENT_SECRET=demo-secret \\
#     dg launch --assets '{name}/resource_name' --partition <a day of the last week>
type: {type_name}

attributes:
  name: {name}

  # Where the credentials come from: variables, read when a run starts (the code location loads
  # without them). A value written here is refused. Unset, dlt's secrets `{name}.client_id` and
  # `{name}.client_secret` apply ([{name}] in .dlt/secrets.toml).
  client_id: "{{{{ env.{env}_CLIENT_ID }}}}"
  client_secret: "{{{{ env.{env}_CLIENT_SECRET }}}}"
  # When set at run time, this variable wins over client.base_url below (e.g. another environment's host).
  base_url: "{{{{ env.{env}_API_BASE_URL }}}}"

  # partitions_start: "2026-11-01"  # the first daily partition (default: ANALYTICS_PARTITIONS_START)
  schedule: "15 0 * * *"            # `{name}_daily` syncs the day that just ended (cron, UTC)
  schedule_running: true            # on from the moment the code location loads
  reconcile_days: 7                 # days back `{name}_reconcile` compares with the API's totals
  run_defaults:                     # this API's run tunables (a run's launch config still wins)
    max_concurrency: 8              # requests in flight at once, to this API only
    # max_requests_per_second: 10   # a ceiling of this API's own; no other API counts against it

  # The dlt rest_api config, kept as written (dlt's {{placeholders}} are not templates here), checked
  # by this project's rules: a mistake fails the load naming this file, the line and the key.
  client:
    base_url: "http://127.0.0.1:{port}"  # https://, or http:// to 127.0.0.1/localhost only
    auth:
      type: oauth2                  # OAuth2 client credentials; token_url defaults to <base_url>/oauth/token
  resource_defaults:
    primary_key: id
    write_disposition: merge
  resources:
    - name: resource_name           # the table `{name}.resource_name`
      endpoint:
        path: /v1/resource
        data_selector: data
        paginator:
          type: offset
          limit: 100
        incremental:                # the daily partition's window, as the API filters it
          start_param: updated_since
          end_param: updated_until
          cursor_path: updated_at
      columns:
        id: {{data_type: bigint, nullable: false, description: "Primary key of the record in the API."}}
        name: {{data_type: text, nullable: false}}
        updated_at: {{data_type: timestamp, nullable: false, description: "When the record last changed (UTC)."}}
'''


class RestApiScaffolder(dg.Scaffolder[RestApiScaffoldParams]):
    """Writes `<target>/defs.yaml`, the API named after its folder."""

    @classmethod
    def get_scaffold_params(cls) -> type[RestApiScaffoldParams]:
        return RestApiScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[RestApiScaffoldParams]) -> None:
        name = request.target_path.name
        problem = name_problem(name)
        if problem:
            raise ValueError(f"The folder names the API: {name!r} {problem.split(';')[0]}.")
        request.target_path.mkdir(parents=True, exist_ok=True)
        port = request.params.port if request.params and request.params.port else DEMO_PORT
        (request.target_path / "defs.yaml").write_text(defs_yaml(request.type_name, name, port), encoding="utf-8")
