"""The Dagster UI in a real browser: `dagster dev` on the project's workspace.yaml, wired to the
bundled demo API, driven in headless Chromium as a user clicks.

The tests share one `dagster dev` and run in file order: the graph and the asset page are checked
before anything is materialized, then one partition is launched from the asset page, then a
three-day backfill. Screenshots land in artifacts/ui/ (with the `dagster dev` log).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import pytest

from analytics_assets.demo_api import DemoApi, DemoApiConfig
from analytics_assets.api.definition import built_in_definition
from analytics_assets.window import Window
from analytics_assets_tests.conftest import make_dagster_home
from analytics_assets_tests.ui_harness import (
    ARTIFACTS,
    CHROMIUM,
    DagsterDev,
    chromium_context,
    dismiss_community_prompt,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ASSET = "/assets/analytics/resource_name"
ONE_DAY = "2026-11-18"
BACKFILL_FIRST, BACKFILL_LAST = "2026-11-15", "2026-11-17"
RUN_TIMEOUT_MS = 120_000
# The backfill daemon ticks every 30 s (fixed in dagster): one tick submits the run, a later one
# marks the backfill done, so a backfill of a few seconds of work takes about a minute to finish.
BACKFILL_TIMEOUT_MS = 150_000
# The automation sensor ticks every 30 s; then the summary's run.
SUMMARY_TIMEOUT_S = 150


@dataclass
class Ui:
    api: DemoApi
    dev: DagsterDev
    dagster_home: Path
    warehouse: Path
    context: "BrowserContext"  # noqa: F821

    @property
    def url(self) -> str:
        return self.dev.url


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    if datetime.now(timezone.utc).date() <= date(2026, 11, 19):
        pytest.skip("the daily partitions 2026-11-15..19 do not exist yet on this clock")
    tmp = tmp_path_factory.mktemp("ui")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with DemoApi(DemoApiConfig(records=2000, days=5, end_date=date(2026, 11, 20))) as api:
        home = make_dagster_home(tmp / "dagster_home")
        warehouse = tmp / "warehouse.duckdb"
        env = {
            "ANALYTICS_API_BASE_URL": api.base_url,
            "ANALYTICS_CLIENT_ID": api.config.client_id,
            "ANALYTICS_CLIENT_SECRET": api.config.client_secret,
            "ANALYTICS_DUCKDB_PATH": str(warehouse),
            "DAGSTER_HOME": str(home),
        }
        dev = DagsterDev(env, cwd=tmp, log_path=tmp / "dagster-dev.log")
        try:
            dev.start()
            with chromium_context(
                tmp / "chromium-profile", timezone_id="UTC", locale="en-US", device_scale_factor=2
            ) as context:
                first = context.new_page()
                first.goto(dev.url + "/overview")
                dismiss_community_prompt(first)
                first.close()
                yield Ui(api, dev, home, warehouse, context)
        finally:
            dev.stop()
            if dev.log_path.exists():
                shutil.copyfile(dev.log_path, ARTIFACTS / "dagster-dev.log")


@pytest.fixture
def page(ui: Ui, request: pytest.FixtureRequest) -> Iterator["Page"]:  # noqa: F821
    page = ui.context.new_page()
    page.set_default_timeout(30_000)
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed > failed_before:
        try:
            page.screenshot(path=ARTIFACTS / f"failed-{request.node.name}.png", full_page=True)
        except Exception:  # noqa: BLE001 - a crashed page must not hide the test's own failure
            pass
    page.close()


# --- helpers --------------------------------------------------------------------------------


def expand_all_groups(page) -> None:  # noqa: ANN001
    """The global graph shows groups collapsed; expand them with the graph's own settings menu."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="settings", exact=True).click()
    toggle = page.get_by_role("menuitem", name=re.compile(r"(Expand|Collapse) all groups"))
    if "Expand all groups" in toggle.inner_text():
        toggle.click()
        expect(toggle).to_contain_text("Collapse all groups")
    page.keyboard.press("Escape")  # the menu stays open after a toggle
    expect(toggle).to_be_hidden()


# Each group and asset node of the graph is a <foreignObject>; a node belongs to the group whose
# box contains it. Resolves once the three asset nodes are laid out.
NODES_BY_GROUP_JS = """groups => {
  const boxes = [...document.querySelectorAll('svg foreignObject')].map(fo => {
    const labels = [...fo.querySelectorAll('[data-tooltip]')].map(e => e.getAttribute('data-tooltip'));
    return {label: labels[0], box: fo.getBoundingClientRect()};
  }).filter(b => b.label);
  const groupBoxes = boxes.filter(b => groups.includes(b.label));
  const nodes = boxes.filter(b => !groups.includes(b.label));
  if (groupBoxes.length < groups.length || nodes.length < 3) return null;
  const inside = (n, g) => n.box.left >= g.box.left && n.box.right <= g.box.right
    && n.box.top >= g.box.top && n.box.bottom <= g.box.bottom;
  const out = {};
  for (const g of groupBoxes) out[g.label] = nodes.filter(n => inside(n, g)).map(n => n.label).sort();
  return out;
}"""


def open_asset_graph(page, url: str) -> dict:  # noqa: ANN001
    from playwright.sync_api import expect

    page.goto(url + "/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    expand_all_groups(page)
    layout = page.wait_for_function(NODES_BY_GROUP_JS, arg=["analytics", "analytics_api"]).json_value()
    page.mouse.move(0, 0)  # no hover highlight in the screenshot
    return layout


GROUPS_BOX_JS = """groups => {
  const rects = [...document.querySelectorAll('svg foreignObject')]
    .filter(fo => { const t = fo.querySelector('[data-tooltip]'); return t && groups.includes(t.getAttribute('data-tooltip')); })
    .map(fo => fo.getBoundingClientRect());
  const left = Math.min(...rects.map(r => r.left)), top = Math.min(...rects.map(r => r.top));
  return {x: left, y: top, width: Math.max(...rects.map(r => r.right)) - left, height: Math.max(...rects.map(r => r.bottom)) - top};
}"""


def screenshot_graph(page, path: Path, margin: int = 24,  # noqa: ANN001
                     groups: tuple[str, ...] = ("analytics", "analytics_api")) -> None:
    """The lineage itself: the expanded groups and their assets, cropped from the canvas."""
    box = page.evaluate(GROUPS_BOX_JS, list(groups))
    x, y = max(0, box["x"] - margin), max(0, box["y"] - margin)
    page.screenshot(path=path, clip={"x": x, "y": y, "width": box["width"] + 2 * margin,
                                     "height": box["height"] + 2 * margin})


def open_materialize_dialog(page, url: str, selection: str, count: int):  # noqa: ANN001
    """The asset page's Materialize… button, then a custom partition selection typed as a user would."""
    from playwright.sync_api import expect

    page.goto(url + ASSET)
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Launch runs to materialize analytics / resource_name")
    box = dialog.get_by_role("textbox")
    box.fill(selection)
    box.press("Enter")
    expect(dialog).to_contain_text(f"{count} partition{'s' if count > 1 else ''}")
    return dialog


def launched_link(page) -> str:  # noqa: ANN001
    """The href of the toast's View link after a launch (a run or a backfill)."""
    from playwright.sync_api import expect

    view = page.get_by_role("link", name="View", exact=True)
    expect(view).to_be_visible()
    return view.get_attribute("href")


def query_until_free(path: Path, sql: str, params: list = (), timeout: float = 30.0) -> list[tuple]:
    """Rows of a read-only query; a run's process may hold the file a moment after it ended."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with duckdb.connect(str(path), read_only=True) as connection:
                return connection.execute(sql, list(params)).fetchall()
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def ids_in_table(path: Path, window: Window) -> list[int]:
    return [row[0] for row in query_until_free(
        path, "SELECT id FROM analytics.resource_name WHERE updated_at >= ? AND updated_at < ? ORDER BY id",
        [window.start, window.end])]


def ids_served(api: DemoApi, window: Window) -> list[int]:
    return sorted(record["id"] for record in api.records_in_window(window.start, window.end))


# --- tests ----------------------------------------------------------------------------------


def test_asset_graph_shows_endpoint_table_and_model(ui: Ui, page) -> None:  # noqa: ANN001
    layout = open_asset_graph(page, ui.url)
    assert layout == {
        "analytics_api": ["resource_name"],
        "analytics": ["resource_name", "resource_name_daily_summary"],
    }
    screenshot_graph(page, ARTIFACTS / "asset-graph.png")


def test_asset_page_lists_columns_and_lineage_before_any_run(ui: Ui, page) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    page.goto(ui.url + ASSET)
    expect(page.get_by_text("Never materialized")).to_be_visible()
    columns = built_in_definition().resource("resource_name").declared
    assert {"metric_value", "event_count", "updated_at"} <= {c.name for c in columns}
    for column in columns:
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=column.name, exact=True))
        expect(row).to_have_count(1)
        expect(row).to_contain_text(column.data_type)
        if not column.nullable:
            expect(row).to_contain_text("non-nullable")
    expect(page.locator('a[href="/assets/analytics_api/resource_name"]')).to_be_visible()
    expect(page.locator('a[href="/assets/analytics/resource_name_daily_summary"]')).to_be_visible()
    expect(page.get_by_text("analytics.resource_name").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "asset-page.png", full_page=True)


# For each automation's name on the Automation page, its on/off switch: the smallest element around
# the name holding two checkboxes is its row (a select box and the switch) once the row's status has
# loaded; until then it holds no switch (a placeholder stands there), or it spans two rows: null.
SWITCHES_JS = """names => Object.fromEntries(names.map(name => {
  const label = [...document.querySelectorAll('*')].find(e => e.children.length === 0 && e.textContent.trim() === name);
  let row = label;
  while (row && row.querySelectorAll('input[type=checkbox]').length < 2) row = row.parentElement;
  const switches = row ? row.querySelectorAll('label[class*=formatSwitch] input[type=checkbox]') : [];
  const loaded = switches.length === 1 && row.querySelectorAll('input[type=checkbox]').length === 2;
  return [name, loaded && !switches[0].disabled ? switches[0].checked : null];
}))"""
AUTOMATIONS = ["analytics_daily", "analytics_reconcile", "analytics_freshness", "analytics_automation"]


def test_schedule_and_sensors_are_running_from_the_start(ui: Ui, page) -> None:  # noqa: ANN001
    from playwright.sync_api import TimeoutError as PlaywrightTimeout, expect

    page.goto(ui.url + "/automation")
    for name in AUTOMATIONS:
        expect(page.get_by_text(name, exact=True)).to_be_visible()
    # The page may draw a row's switch before its status has loaded (off, then a placeholder):
    # wait for all four to show on, and if they never do, report what they show.
    try:
        page.wait_for_function(f"() => Object.values(({SWITCHES_JS})({AUTOMATIONS!r})).every(v => v === true)")
    except PlaywrightTimeout:
        pass
    switches = page.evaluate(SWITCHES_JS, AUTOMATIONS)
    assert switches == {name: True for name in AUTOMATIONS}
    page.screenshot(path=ARTIFACTS / "automation.png")


LAUNCHPAD = "/locations/analytics_assets/jobs/analytics_job/playground"


@pytest.mark.parametrize("resource, field, value", [
    ("analytics_api", "base_url", "{evil}"),
    ("analytics_api", "token_url", "{evil}/oauth/token"),
    ("analytics_api", "client_secret", "typed-in-the-launchpad"),
    ("warehouse", "duckdb_path", "/tmp/elsewhere.duckdb"),
])
def test_launchpad_refuses_config_that_would_send_the_run_elsewhere(ui: Ui, page, resource: str, field: str,
                                                                    value: str) -> None:  # noqa: ANN001
    """Anyone who can open the UI can open the launchpad: URLs, credentials and paths are not
    among the fields it accepts, so the run cannot be launched and nothing reaches the server."""
    from dagster import DagsterInstance
    from playwright.sync_api import expect

    with DemoApi(DemoApiConfig(records=1)) as evil, DagsterInstance.from_config(str(ui.dagster_home)) as instance:
        runs_before = len(instance.get_runs())
        page.goto(ui.url + LAUNCHPAD)
        partition = page.get_by_placeholder("Partition")
        partition.fill(ONE_DAY)
        partition.press("Enter")
        expect(page.get_by_text(f"partition: {ONE_DAY}")).to_be_visible()
        config = {"resources": {resource: {"config": {field: value.format(evil=evil.base_url)}}}}
        page.locator(".CodeMirror").click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(json.dumps(config))  # as pasted
        expect(page.get_by_text(f'Received unexpected config entry "{field}" at path '
                                f"root:resources:{resource}:config")).to_be_visible()
        expect(page.get_by_role("button", name="Launch Run")).to_be_disabled()
        page.screenshot(path=ARTIFACTS / f"launchpad-refuses-{field}.png")
        assert evil.requests == [] and len(instance.get_runs()) == runs_before


def test_materialize_one_partition_from_the_asset_page(ui: Ui, page) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    dialog = open_materialize_dialog(page, ui.url, ONE_DAY, 1)
    dialog.get_by_role("button", name="Launch 1 run").click()
    href = launched_link(page)
    assert href.startswith("/runs/")
    run_id = href.rsplit("/", 1)[-1]

    page.goto(ui.url + href)
    expect(page.get_by_text(f"partition: {ONE_DAY}")).to_be_visible()
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(status).to_be_visible(timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=ARTIFACTS / "run.png")
    expect(status).to_have_text("Success")

    window = Window.of_days(ONE_DAY)
    served = ids_served(ui.api, window)
    assert served, "the demo API holds records on that day"
    page.goto(ui.url + ASSET + "?view=events")
    expect(page.get_by_text(f"Partition {ONE_DAY} materialized in run {run_id[:8]}")).to_be_visible()
    fetched = page.get_by_role("row").filter(has=page.get_by_role("cell", name="records_fetched", exact=True))
    expect(fetched).to_contain_text(str(len(served)))
    page.screenshot(path=ARTIFACTS / "asset-page-materialized.png")

    assert ids_in_table(ui.warehouse, window) == served


def test_summary_follows_a_materialize_of_the_table(ui: Ui, page) -> None:  # noqa: ANN001
    """The table alone was materialized from its page (above): the daemon's automation sensor
    materializes the summary after it, and the summary counts what the table holds."""
    from dagster import AssetKey, DagsterInstance
    from playwright.sync_api import expect

    table_key, summary_key = AssetKey(["analytics", "resource_name"]), AssetKey(["analytics", "resource_name_daily_summary"])

    def summary_after_table():
        with DagsterInstance.from_config(str(ui.dagster_home)) as instance:
            table = instance.get_latest_materialization_event(table_key)
            summary = instance.get_latest_materialization_event(summary_key)
            if table and summary and summary.timestamp > table.timestamp:
                return instance.get_run_by_id(summary.run_id)
        return None

    deadline = time.monotonic() + SUMMARY_TIMEOUT_S
    while (run := summary_after_table()) is None:
        assert time.monotonic() < deadline, "the summary was not materialized after the table"
        time.sleep(1)
    assert run.tags.get("dagster/sensor_name") == "analytics_automation", run.tags
    page.goto(ui.url + "/assets/analytics/resource_name_daily_summary?view=events")
    expect(page.get_by_text(f"Materialized in run {run.run_id[:8]}")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "summary-after-automation.png")

    counts = query_until_free(ui.warehouse, "SELECT CAST(updated_at AT TIME ZONE 'UTC' AS DATE), count(*) "
                              "FROM analytics.resource_name GROUP BY 1 ORDER BY 1")
    summarized = query_until_free(ui.warehouse, "SELECT day, sum(record_count) FROM "
                                  "analytics.resource_name_daily_summary GROUP BY 1 ORDER BY 1")
    assert summarized == counts and counts


def test_backfill_of_three_days_runs_as_one_run(ui: Ui, page) -> None:  # noqa: ANN001
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
    from playwright.sync_api import expect

    dialog = open_materialize_dialog(page, ui.url, f"[{BACKFILL_FIRST}...{BACKFILL_LAST}]", 3)
    expect(dialog).to_contain_text("Backfills all partitions in a single run.")
    dialog.get_by_role("button", name="Launch backfill").click()
    href = launched_link(page)
    assert href.startswith("/runs/b/")
    backfill_id = href.rsplit("/", 1)[-1]

    page.goto(ui.url + href)
    expect(page.get_by_text(f"{BACKFILL_FIRST}...{BACKFILL_LAST}")).to_be_visible()
    status = page.locator("xpath=//*[normalize-space(text())='Status']/following-sibling::*[1]").first
    expect(status).to_have_text(re.compile(r"^(Succeeded|Failed|Canceled|Completed with failures)$"),
                                timeout=BACKFILL_TIMEOUT_MS)
    expect(status).to_have_text("Succeeded")
    expect(page.get_by_text("100% completed")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "backfill.png")
    page.get_by_role("tab", name="Runs", exact=True).click()
    expect(page.get_by_text("Success", exact=True)).to_have_count(1)

    with DagsterInstance.from_config(str(ui.dagster_home)) as instance:
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert len(runs) == 1
    assert runs[0].status == DagsterRunStatus.SUCCESS
    assert runs[0].tags["dagster/asset_partition_range_start"] == BACKFILL_FIRST
    assert runs[0].tags["dagster/asset_partition_range_end"] == BACKFILL_LAST

    window = Window.of_days(BACKFILL_FIRST, BACKFILL_LAST)
    served = ids_served(ui.api, window)
    assert served
    assert ids_in_table(ui.warehouse, window) == served

    # The graph after both launches: four of the demo's five days filled.
    open_asset_graph(page, ui.url)
    screenshot_graph(page, ARTIFACTS / "asset-graph-after-runs.png")
