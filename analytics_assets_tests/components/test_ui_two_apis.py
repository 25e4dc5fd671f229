"""The UI's lineage with two APIs in one code location: `dagster dev` on a project of the test's
own (the built-in API's defs.yaml and a second API, `acme`), each API's endpoints and tables in
groups of its own. Needs Debian's Chromium, as test_ui.py does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from analytics_assets_tests.components.test_rest_api import BUILT_IN_YAML, acme_attributes, api_project, component_yaml
from analytics_assets_tests.conftest import make_dagster_home
from analytics_assets_tests.test_ui import NODES_BY_GROUP_JS, expand_all_groups, screenshot_graph
from analytics_assets_tests.ui_harness import ARTIFACTS, CHROMIUM, DagsterDev, chromium_context, dismiss_community_prompt

pytestmark = [pytest.mark.browser, pytest.mark.slow]
GROUPS = ["analytics", "analytics_api", "acme", "acme_api"]


def served_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The two APIs' project, with a code location module and a workspace naming it."""
    root = api_project(tmp_path, {"analytics": BUILT_IN_YAML.read_text(), "acme": component_yaml(acme_attributes())},
                       monkeypatch)
    package = next(path.parent.name for path in root.glob("*/defs"))
    (root / package / "definitions.py").write_text(textwrap.dedent("""\
        from pathlib import Path

        from dagster import definitions

        from analytics_assets.definitions import build_defs


        @definitions
        def defs():
            return build_defs(Path(__file__).resolve().parents[1])
        """))
    workspace = root / "workspace.yaml"
    workspace.write_text(textwrap.dedent(f"""\
        load_from:
          - python_module:
              module_name: {package}.definitions
              location_name: two_apis
              working_directory: {root}
        """))
    return workspace


def test_the_lineage_shows_each_apis_groups(tmp_path, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import expect

    workspace = served_project(tmp_path, monkeypatch)
    env = {"DAGSTER_HOME": str(make_dagster_home(tmp_path / "dagster_home")),
           "ANALYTICS_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with DagsterDev(env, cwd=tmp_path, log_path=tmp_path / "dagster-dev.log", workspace=workspace) as dev, \
            chromium_context(tmp_path / "chromium-profile", timezone_id="UTC", locale="en-US",
                             device_scale_factor=2) as context:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(dev.url + "/overview")
        dismiss_community_prompt(page)
        page.goto(dev.url + "/asset-groups")
        expect(page.get_by_text("Global asset lineage")).to_be_visible()
        expand_all_groups(page)
        layout = page.wait_for_function(NODES_BY_GROUP_JS, arg=GROUPS).json_value()
        page.mouse.move(0, 0)
        assert layout == {
            "analytics_api": ["resource_name"],
            "analytics": ["resource_name", "resource_name_daily_summary"],
            "acme_api": ["accounts", "events"],
            "acme": ["accounts", "events"],
        }
        screenshot_graph(page, ARTIFACTS / "asset-graph-two-apis.png", groups=tuple(GROUPS))
