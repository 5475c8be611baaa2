"""End-to-end test of the UI stack: `dagster dev` on loopback, driven through its GraphQL API, as a
data engineer uses it: the daemon's raw-files sensor and automation react to changed, reverted and new
raw files, a "Materialize selected" run of one edition leaves the other editions' check results alone,
and a publication whose editions disagree is refused while BI keeps the last consistent snapshot.

The test starts the webserver, daemon and code server exactly as `make ui` does (same workspace.yaml,
the same DEI_DAGSTER_WEBSERVER), over a private copy of the 2019 and 2020 raw files that
`dei materialize` has already published with the same DAGSTER_HOME, a private DuckDB warehouse and a
private serving snapshot. After each change it waits until the daemon is done (no run in progress and
the snapshot says what it must), then reads the warehouse and the snapshot, edition by edition.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl
import pytest

from dei_pipeline.config import REPO_ROOT, prepare_dagster_home
from dei_pipeline_tests.conftest import dei_in
from dei_pipeline_tests.edition_checks import assert_editions_agree, lower_every_indicator, score, table

LOCATION = "dei_pipeline"
REPOSITORY = "__repository__"  # the implicit repository of a Definitions object
JOBS = {"index_job", "analysis_job", "publish_job"}
ASSET_JOB = "__ASSET_JOB"  # what the UI's "Materialize selected" runs
HANGZHOU = "330100"
HOST = "127.0.0.1"  # loopback only
T = TypeVar("T")
DAGSTER = Path(sys.executable).with_name("dagster")

EXPECTED_GROUPS = {
    "raw_scores": "ingestion",
    "indicator_scores": "validation",
    "subindex_scores": "aggregation",
    "city_index": "index",
    "county_index": "index",
    "region_rollup": "rollups",
    "city_yoy": "comparisons",
    "reconciliation": "reconciliation",
    "rank_uncertainty": "analysis",
    "edition_report": "report",
}
UNPARTITIONED = {"edition_consistency", "mart_parquet", "serving_snapshot"}

SERVER_TIMEOUT = 120.0
SETTLE_TIMEOUT = 420.0  # a sensor tick (30 s), the index run, the automation's backfill, the publication
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}
# Settled: nothing in progress at this many looks 5 s apart, longer than one automation tick (15 s),
# so that a tick still to come cannot start work after the test moved on.
CALM_LOOKS = 5

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not DAGSTER.exists(), reason=f"dagster CLI not found next to {sys.executable}"),
]


# ------------------------------------------------------------------------------------- helpers


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 6000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "<no log>"
    return text[-chars:]


class DagsterDev:
    """A `dagster dev` process group on loopback, with a minimal GraphQL client (urllib only)."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path):
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(DAGSTER), "dev", "-h", HOST, "-p", str(port), "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: webserver, daemon and code server die with it
        )

    def log_tail(self) -> str:
        self._log.flush()
        return f"--- dagster dev output (tail of {self.log_path}) ---\n{_tail(self.log_path)}"

    def _assert_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"dagster dev exited early with code {self.proc.returncode}\n{self.log_tail()}")

    def wait_until_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._assert_alive()
            try:
                with urllib.request.urlopen(f"{self.base_url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        json.loads(response.read())
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            time.sleep(1)
        pytest.fail(f"{self.base_url}/server_info did not answer within {timeout:.0f} s\n{self.log_tail()}")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/graphql",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            pytest.fail(
                f"GraphQL HTTP {error.code}: {error.read().decode(errors='replace')}\n{self.log_tail()}"
            )
        assert not payload.get("errors"), f"GraphQL errors: {payload['errors']}\nquery: {query}"
        return payload["data"]

    def stop(self) -> None:
        """Terminate the whole process group (SIGTERM, then SIGKILL) and reap dagster dev."""
        try:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            # Children left behind (or dagster dev itself if SIGTERM was not enough).
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        finally:
            self._log.close()


def _expect(result: dict[str, Any], typename: str, what: str) -> dict[str, Any]:
    """A GraphQL union member of the expected type, or a failure showing the error it is instead."""
    if result.get("__typename") != typename:
        pytest.fail(
            f"{what}: expected {typename}, got {json.dumps(result, ensure_ascii=False, indent=1)[:6000]}"
        )
    return result


# ---------------------------------------------------------------------------------- GraphQL text

PYTHON_ERROR = "... on PythonError { message stack }"

WORKSPACE_QUERY = f"""
query Workspace {{
  workspaceOrError {{
    __typename
    ... on Workspace {{
      locationEntries {{
        name
        loadStatus
        locationOrLoadError {{
          __typename
          ... on RepositoryLocation {{ name repositories {{ name jobs {{ name }} }} }}
          {PYTHON_ERROR}
        }}
      }}
    }}
    {PYTHON_ERROR}
  }}
}}
"""

ASSET_NODES_QUERY = """
query AssetNodes {
  assetNodes {
    assetKey { path }
    groupName
    isPartitioned
    partitionKeys
    dependencyKeys { path }
  }
}
"""

STALENESS_QUERY = """
query Staleness($assetKey: AssetKeyInput!, $partitions: [String!]!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      staleStatusByPartition(partitions: $partitions)
      staleCausesByPartition(partitions: $partitions) { reason category key { path } partitionKey dependency { path } dependencyPartitionKey }
    }
    ... on AssetNotFoundError { message }
  }
}
"""

SENSOR_QUERY = f"""
query Sensor($selector: SensorSelector!) {{
  sensorOrError(sensorSelector: $selector) {{
    __typename
    ... on Sensor {{ id name sensorState {{ id selectorId status }} }}
    {PYTHON_ERROR}
  }}
}}
"""

STOP_SENSOR_MUTATION = f"""
mutation StopSensor($id: String!) {{
  stopSensor(id: $id) {{
    __typename
    ... on StopSensorMutationResult {{ instigationState {{ status }} }}
    {PYTHON_ERROR}
  }}
}}
"""

START_SENSOR_MUTATION = f"""
mutation StartSensor($selector: SensorSelector!) {{
  startSensor(sensorSelector: $selector) {{
    __typename
    ... on Sensor {{ sensorState {{ status }} }}
    {PYTHON_ERROR}
  }}
}}
"""

LAUNCH_RUN_MUTATION = f"""
mutation Launch($params: ExecutionParams!) {{
  launchRun(executionParams: $params) {{
    __typename
    ... on LaunchRunSuccess {{ run {{ runId status }} }}
    ... on Error {{ message }}
    ... on RunConfigValidationInvalid {{ errors {{ message }} }}
    {PYTHON_ERROR}
  }}
}}
"""

RUN_EVENTS_QUERY = f"""
query Events($runId: ID!, $cursor: String) {{
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 500) {{
    __typename
    ... on EventConnection {{
      cursor
      hasMore
      events {{
        __typename
        ... on MessageEvent {{ message }}
        ... on StepEvent {{ stepKey }}
        ... on ErrorEvent {{ error {{ message stack }} }}
        ... on MaterializationEvent {{ assetKey {{ path }} partition }}
        ... on AssetCheckEvaluationEvent {{
          evaluation {{ checkName success partition description assetKey {{ path }} }}
        }}
      }}
    }}
    {PYTHON_ERROR}
  }}
}}
"""

CHECK_EXECUTIONS_QUERY = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!, $partition: String) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 20, partition: $partition) {
    runId
    status
    partition
    evaluation { success checkName partition }
  }
}
"""

BACKFILLS_QUERY = """
query Backfills {
  partitionBackfillsOrError(status: REQUESTED) {
    __typename
    ... on PartitionBackfills { results { id status } }
  }
}
"""

RUNS_QUERY = """
query Runs {
  runsOrError {
    __typename
    ... on Runs { results { runId jobName status tags { key value } assetSelection { path } } }
  }
}
"""


# -------------------------------------------------------------------------------------- fixture


@pytest.fixture
def dagster_dev(
    tmp_path: Path, data_dir_factory: Callable[..., Path]
) -> Iterator[tuple[DagsterDev, Path, Path, dict[str, str]]]:
    """`dagster dev` on a free loopback port over a private data dir with the 2019 and 2020 raw files,
    after `dei materialize` published them into a private warehouse with the same DAGSTER_HOME.
    Yields (server, data dir, warehouse file, environment); the process group is always terminated."""
    data_dir = data_dir_factory((2019, 2020))
    warehouse = tmp_path / "w.duckdb"
    dagster_home = tmp_path / "dagster_home"
    prepare_dagster_home(dagster_home)  # no telemetry: nothing but loopback traffic
    port = _free_loopback_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DAGSTER_", "DEI_"))}
    env.update(
        {
            "DEI_DATA_DIR": str(data_dir),
            "DEI_WAREHOUSE": str(warehouse),
            "DAGSTER_HOME": str(dagster_home),
            "DEI_DAGSTER_WEBSERVER": f"{HOST}:{port}",  # as `make ui` sets it
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    published = dei_in(env, ["materialize"])
    assert published.returncode == 0, published.stderr
    server = DagsterDev(port, env, tmp_path / "dagster_dev.log")
    try:
        server.wait_until_serving(SERVER_TIMEOUT)
        yield server, data_dir, warehouse, env
    finally:
        server.stop()


# ----------------------------------------------------------------------------------------- steps


def _poll(probe: Callable[[], T | None], timeout: float, interval: float, failure: Callable[[], str]) -> T:
    """``probe()`` every ``interval`` seconds until it returns something; fail with ``failure()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(interval)
    pytest.fail(failure())


def _wait_for_location(server: DagsterDev, timeout: float) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def loaded() -> dict[str, Any] | None:
        workspace = _expect(
            server.graphql(WORKSPACE_QUERY)["workspaceOrError"], "Workspace", "workspaceOrError"
        )
        entry = next((e for e in workspace["locationEntries"] if e["name"] == LOCATION), None)
        assert entry is not None, f"no code location {LOCATION!r} in {workspace['locationEntries']}"
        last["entry"] = entry
        if entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"] is not None:
            return _expect(entry["locationOrLoadError"], "RepositoryLocation", f"code location {LOCATION}")
        return None

    return _poll(
        loaded,
        timeout,
        1,
        lambda: (
            f"code location {LOCATION} not loaded within {timeout:.0f} s: {last.get('entry')}\n{server.log_tail()}"
        ),
    )


def _runs(server: DagsterDev) -> list[dict[str, Any]]:
    """Every run of the instance, oldest first, with its tags as a dict."""
    runs = _expect(server.graphql(RUNS_QUERY)["runsOrError"], "Runs", "runsOrError")["results"]
    return [{**run, "tags": {tag["key"]: tag["value"] for tag in run["tags"]}} for run in reversed(runs)]


def _run_events(server: DagsterDev, run_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = _expect(
            server.graphql(RUN_EVENTS_QUERY, {"runId": run_id, "cursor": cursor})["logsForRun"],
            "EventConnection",
            "logsForRun",
        )
        events += page["events"]
        cursor = page["cursor"]
        if not page["hasMore"] or not page["events"]:
            return events


def _failure_report(server: DagsterDev, run_id: str) -> str:
    lines = []
    for event in _run_events(server, run_id):
        if event.get("error") or event["__typename"] in {"ExecutionStepFailureEvent", "RunFailureEvent"}:
            lines.append(f"[{event['__typename']}] step={event.get('stepKey')} {event.get('message')}")
            if event.get("error"):
                lines.append(event["error"]["message"] + "".join(event["error"]["stack"]))
    return "\n".join(lines) + "\n" + server.log_tail()


def _settle(
    server: DagsterDev, done: Callable[[], bool], since: int, what: str, allowed_failures: int = 0
) -> list[dict[str, Any]]:
    """Wait until ``done()`` holds and no run or backfill is in progress for CALM_LOOKS looks; return the runs
    started since the ``since``-th. Runs that fail (beyond ``allowed_failures``) fail the test with their reasons."""
    calm = {"looks": 0}

    def settled() -> list[dict[str, Any]] | None:
        runs = _runs(server)
        failed = [run for run in runs[since:] if run["status"] == "FAILURE"]
        if len(failed) > allowed_failures:
            pytest.fail(
                f"{what}: run {failed[-1]['runId']} ({failed[-1]['jobName']}) failed:\n{_failure_report(server, failed[-1]['runId'])}"
            )
        backfills = _expect(
            server.graphql(BACKFILLS_QUERY)["partitionBackfillsOrError"], "PartitionBackfills", "backfills"
        )["results"]
        busy = bool(backfills) or any(run["status"] not in TERMINAL_RUN_STATUSES for run in runs)
        calm["looks"] = calm["looks"] + 1 if not busy and done() else 0
        return runs[since:] if calm["looks"] >= CALM_LOOKS else None

    return _poll(
        settled,
        SETTLE_TIMEOUT,
        5,
        lambda: (
            f"{what}: not settled within {SETTLE_TIMEOUT:.0f} s; runs: "
            f"{[(r['jobName'], r['status'], r['tags'].get('dagster/partition')) for r in _runs(server)[since:]]}\n{server.log_tail()}"
        ),
    )


def _published_score(serving: Path, year: int) -> float | None:
    """Hangzhou's score of an edition in the serving snapshot (None while it is being replaced)."""
    try:
        return score(serving, year, HANGZHOU)[0]
    except (duckdb.Error, ValueError):
        return None


def _sensor_selector(name: str) -> dict[str, str]:
    return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": name}


def _set_sensor(server: DagsterDev, name: str, running: bool) -> None:
    if running:
        started = _expect(
            server.graphql(START_SENSOR_MUTATION, {"selector": _sensor_selector(name)})["startSensor"],
            "Sensor",
            f"startSensor {name}",
        )
        assert started["sensorState"]["status"] == "RUNNING"
        return
    sensor = _expect(
        server.graphql(SENSOR_QUERY, {"selector": _sensor_selector(name)})["sensorOrError"], "Sensor", name
    )
    stopped = _expect(
        server.graphql(STOP_SENSOR_MUTATION, {"id": sensor["id"]})["stopSensor"],
        "StopSensorMutationResult",
        f"stopSensor {name}",
    )
    assert stopped["instigationState"]["status"] == "STOPPED"


def _launch(server: DagsterDev, job_name: str, partition: str | None, assets: list[str] | None = None) -> str:
    selector: dict[str, Any] = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "jobName": job_name,
    }
    if assets is not None:
        selector["assetSelection"] = [{"path": [name]} for name in assets]
    tags = [{"key": "dagster/partition", "value": partition}] if partition else []
    launched = server.graphql(
        LAUNCH_RUN_MUTATION, {"params": {"selector": selector, "executionMetadata": {"tags": tags}}}
    )
    return _expect(launched["launchRun"], "LaunchRunSuccess", f"launchRun {job_name}")["run"]["runId"]


def _check_runs(server: DagsterDev, check_name: str, partition: str) -> list[tuple[str, bool]]:
    executions = server.graphql(
        CHECK_EXECUTIONS_QUERY,
        {"assetKey": {"path": ["reconciliation"]}, "checkName": check_name, "partition": partition},
    )["assetCheckExecutions"]
    return [
        (x["runId"], x["evaluation"]["success"])
        for x in executions
        if x["evaluation"] and x["evaluation"]["partition"] == partition
    ]


def _published_by(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        run
        for run in runs
        if ["serving_snapshot"] in [a["path"] for a in run["assetSelection"] or []]
        or run["jobName"] == "publish_job"
    ]


# ------------------------------------------------------------------------------------------ test


def test_the_ui_stack_keeps_every_edition_consistent(
    dagster_dev: tuple[DagsterDev, Path, Path, dict[str, str]],
) -> None:
    server, data_dir, warehouse, _ = dagster_dev
    serving = warehouse.with_name("dei_serving.duckdb")

    # 1. The code location: the three jobs, the asset graph in year order, city_yoy reading city_index.
    location = _wait_for_location(server, SERVER_TIMEOUT)
    jobs = {job["name"] for repo in location["repositories"] for job in repo["jobs"]}
    assert JOBS <= jobs, jobs
    nodes = {
        "/".join(node["assetKey"]["path"]): node for node in server.graphql(ASSET_NODES_QUERY)["assetNodes"]
    }
    assert {name: nodes[name]["groupName"] for name in EXPECTED_GROUPS} == EXPECTED_GROUPS
    for name in EXPECTED_GROUPS:
        assert nodes[name]["partitionKeys"] == ["2019", "2020"], (name, nodes[name]["partitionKeys"])
    assert all(not nodes[name]["isPartitioned"] for name in UNPARTITIONED)
    assert {"city_index"} <= {"/".join(dep["path"]) for dep in nodes["city_yoy"]["dependencyKeys"]}
    assert {"city_gdp"} <= {"/".join(dep["path"]) for dep in nodes["region_rollup"]["dependencyKeys"]}
    old_2019 = score(serving, 2019, HANGZHOU)[0]

    # 2. A changed 2019 file: the sensor runs index_job for 2019, the automation refreshes what reads it
    #    in 2020, the analysis and the report, and publishes once.
    since = len(_runs(server))
    original = (data_dir / "raw" / "2019" / "cities.csv").read_bytes()
    lower_every_indicator(data_dir, 2019, HANGZHOU, 20.0)
    runs = _settle(
        server,
        lambda: _published_score(serving, 2019) == pytest.approx(old_2019 - 20.0, abs=1e-9),
        since,
        "a changed 2019 file",
    )
    assert [
        (r["jobName"], r["tags"].get("dagster/partition"))
        for r in runs
        if r["tags"].get("dagster/sensor_name") == "raw_files_sensor"
    ] == [("index_job", "2019")]
    assert len(_published_by(runs)) == 1, [(r["jobName"], r["assetSelection"]) for r in runs]
    for database in (warehouse, serving):
        assert score(database, 2019, HANGZHOU)[0] == pytest.approx(old_2019 - 20.0, abs=1e-9)
        assert_editions_agree(database, 2020, 2019)
    assert table(serving, "marts.rank_uncertainty", 2019).filter(pl.col("unit_code") == HANGZHOU)[
        "nominal_score"
    ][0] == pytest.approx(old_2019 - 20.0, abs=1e-9)

    # 3. "Materialize selected" for the 2019 reconciliation only: 2020's check results stay as they were.
    region_2020_before = _check_runs(server, "region_scores_match_published", "2020")
    assert (
        region_2020_before and region_2020_before[0][1] is False
    )  # the white paper's GDP vintage gap: a finding
    since = len(_runs(server))
    run_id = _launch(server, ASSET_JOB, "2019", ["reconciliation"])
    _settle(
        server,
        lambda: bool(_check_runs(server, "region_scores_match_published", "2019")),
        since,
        "a 2019 reconciliation run",
    )
    assert _check_runs(server, "region_scores_match_published", "2019")[0] == (
        run_id,
        True,
    )  # nothing published for 2019
    assert _check_runs(server, "region_scores_match_published", "2020")[0] == region_2020_before[0]

    # 4. The file goes back to its earlier content: a change like any other.
    since = len(_runs(server))
    (data_dir / "raw" / "2019" / "cities.csv").write_bytes(original)
    _settle(
        server,
        lambda: _published_score(serving, 2019) == pytest.approx(old_2019, abs=1e-9),
        since,
        "a reverted 2019 file",
    )
    for database in (warehouse, serving):
        assert_editions_agree(database, 2020, 2019)

    # 5. Without the automation, the 2019 rerun leaves 2020 stale, and the publication is refused with
    #    what disagrees; BI keeps the last consistent snapshot. The automation then catches up.
    _set_sensor(server, "automation_sensor", running=False)
    # A tick that began before the stop may still start runs: let them end before the change.
    _settle(server, lambda: True, len(_runs(server)), "the automation stopping")
    since = len(_runs(server))
    lower_every_indicator(data_dir, 2019, HANGZHOU, 20.0)
    _settle(
        server,
        lambda: any(
            r["tags"].get("dagster/sensor_name") == "raw_files_sensor" for r in _runs(server)[since:]
        ),
        since,
        "the index run",
    )
    stale = _expect(
        server.graphql(STALENESS_QUERY, {"assetKey": {"path": ["city_yoy"]}, "partitions": ["2020"]})[
            "assetNodeOrError"
        ],
        "AssetNode",
        "city_yoy",
    )
    runs_since = [
        (r["jobName"], r["status"], r["tags"].get("dagster/partition"), r["tags"].get("dagster/sensor_name"))
        for r in _runs(server)[since:]
    ]
    assert stale["staleStatusByPartition"] == ["STALE"], (stale, runs_since)
    # The UI names the root cause: city_index of 2019 has a new data version.
    assert any(
        cause["key"]["path"] == ["city_index"] and cause["partitionKey"] == "2019"
        for cause in stale["staleCausesByPartition"][0]
    ), stale
    published = hashlib.sha256(serving.read_bytes()).hexdigest()
    since = len(_runs(server))
    refused = _launch(server, "publish_job", None)
    _settle(server, lambda: True, since, "a publication of disagreeing editions", allowed_failures=1)
    evaluations = [
        e["evaluation"]
        for e in _run_events(server, refused)
        if e["__typename"] == "AssetCheckEvaluationEvent"
    ]
    failed = {e["checkName"]: e["description"] for e in evaluations if not e["success"]}
    assert set(failed) == {"comparisons_match_index", "tier_counts_match_index", "analysis_matches_index"}, (
        evaluations
    )
    assert f"marts.city_yoy 2020 unit {HANGZHOU} prev_score" in failed["comparisons_match_index"]
    assert hashlib.sha256(serving.read_bytes()).hexdigest() == published
    since = len(_runs(server))
    _set_sensor(server, "automation_sensor", running=True)
    _settle(
        server,
        lambda: _published_score(serving, 2019) == pytest.approx(old_2019 - 20.0, abs=1e-9),
        since,
        "the automation catching up",
    )
    for database in (warehouse, serving):
        assert_editions_agree(database, 2020, 2019)

    # 6. A folder for 2016 appears after 2020: the sensor reloads the definitions, 2016 takes its place
    #    before 2019, and 2019 is compared with it.
    since = len(_runs(server))
    shutil.copytree(data_dir / "raw" / "2019", data_dir / "raw" / "2016")
    _settle(
        server, lambda: _published_editions(serving) == [2016, 2019, 2020], since, "a 2016 folder added later"
    )
    keys = {
        "/".join(node["assetKey"]["path"]): node["partitionKeys"]
        for node in server.graphql(ASSET_NODES_QUERY)["assetNodes"]
    }
    assert keys["city_yoy"] == ["2016", "2019", "2020"]
    for database in (warehouse, serving):
        assert set(table(database, "marts.city_yoy", 2016)["status"].to_list()) == {"first_edition"}
        assert_editions_agree(database, 2019, 2016)
        assert_editions_agree(database, 2020, 2019)


def _published_editions(serving: Path) -> list[int] | None:
    try:
        with duckdb.connect(str(serving), read_only=True) as con:
            [(editions,)] = con.execute("SELECT editions FROM marts.snapshot_info").fetchall()
    except duckdb.Error:
        return None
    return list(editions)
