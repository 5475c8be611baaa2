"""End-to-end test of the UI stack: `dagster dev` on loopback, driven through its GraphQL API.

The test starts the webserver, daemon and code server exactly as `make ui` does (same workspace.yaml),
but against a private copy of the data directory (reference folders + the 2020 raw files), a private
DuckDB warehouse and a private DAGSTER_HOME. Through GraphQL it checks that the code location loaded
with the expected asset graph, registers the 2020 partition, launches `index_job` for it, waits for
the daemon to dequeue and finish the run, and then checks the warehouse and the reconciliation checks,
and that the daemon's `analysis_after_index_sensor` followed with `analysis_job` for 2020.

`raw_files_sensor` is RUNNING by default, and under `dagster dev` the daemon would launch its own run
for every edition it finds. To keep the launched run the only writer of the warehouse, the server
starts with an empty raw/ folder (so any early sensor tick finds nothing to do), the test stops the
sensor through GraphQL, and only then copies the 2020 raw files in. The test asserts at the end that
its run and the analysis run that followed it were the only runs of the instance.
"""

from __future__ import annotations

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
import pytest

from dei_pipeline.config import REPO_ROOT, prepare_dagster_home

EDITION = "2020"
LOCATION = "dei_pipeline"
REPOSITORY = "__repository__"  # the implicit repository of a Definitions object
JOB = "index_job"
FOLLOW_UP_JOB = "analysis_job"
SENSOR = "raw_files_sensor"
FOLLOW_UP_SENSOR = "analysis_after_index_sensor"
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
    "mart_parquet": "exports",
}

SERVER_TIMEOUT = 120.0
RUN_TIMEOUT = 240.0
FOLLOW_UP_TIMEOUT = 150.0  # the run-status sensor is evaluated every 30 s
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

pytestmark = pytest.mark.skipif(not DAGSTER.exists(), reason=f"dagster CLI not found next to {sys.executable}")


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
            f"{self.base_url}/graphql", data=body, method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            pytest.fail(f"GraphQL HTTP {error.code}: {error.read().decode(errors='replace')}\n{self.log_tail()}")
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
        pytest.fail(f"{what}: expected {typename}, got {json.dumps(result, ensure_ascii=False, indent=1)[:6000]}")
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

REPOSITORIES_QUERY = f"""
query Repositories {{
  repositoriesOrError {{
    __typename
    ... on RepositoryConnection {{ nodes {{ name location {{ name }} }} }}
    {PYTHON_ERROR}
  }}
}}
"""

ASSET_NODES_QUERY = """
query AssetNodes($pipeline: PipelineSelector) {
  assetNodes(pipeline: $pipeline) {
    assetKey { path }
    groupName
    isPartitioned
    partitionKeys
    jobNames
  }
}
"""

SENSOR_QUERY = f"""
query Sensor($selector: SensorSelector!) {{
  sensorOrError(sensorSelector: $selector) {{
    __typename
    ... on Sensor {{
      id
      name
      sensorState {{ status ticks(limit: 5) {{ status runIds }} }}
    }}
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

ADD_PARTITION_MUTATION = f"""
mutation AddPartition($key: String!, $name: String!, $repo: RepositorySelector!) {{
  addDynamicPartition(partitionKey: $key, partitionsDefName: $name, repositorySelector: $repo) {{
    __typename
    ... on AddDynamicPartitionSuccess {{ partitionsDefName partitionKey }}
    ... on DuplicateDynamicPartitionError {{ partitionsDefName partitionName }}
    ... on UnauthorizedError {{ message }}
    {PYTHON_ERROR}
  }}
}}
"""

LAUNCH_RUN_MUTATION = f"""
mutation Launch($params: ExecutionParams!) {{
  launchRun(executionParams: $params) {{
    __typename
    ... on LaunchRunSuccess {{ run {{ runId status tags {{ key value }} }} }}
    ... on Error {{ message }}
    ... on RunConfigValidationInvalid {{ errors {{ message }} }}
    {PYTHON_ERROR}
  }}
}}
"""

RUN_QUERY = f"""
query Run($runId: ID!) {{
  runOrError(runId: $runId) {{
    __typename
    ... on Run {{ runId status jobName tags {{ key value }} }}
    ... on RunNotFoundError {{ message }}
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
          evaluation {{ checkName success partition assetKey {{ path }} targetMaterialization {{ runId }} }}
        }}
      }}
    }}
    {PYTHON_ERROR}
  }}
}}
"""

CHECK_EXECUTIONS_QUERY = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 5) {
    runId
    status
    partition
    evaluation { success checkName }
  }
}
"""

RUNS_QUERY = """
query Runs {
  runsOrError {
    __typename
    ... on Runs { results { runId jobName status tags { key value } } }
  }
}
"""


# -------------------------------------------------------------------------------------- fixture

@pytest.fixture
def dagster_dev(tmp_path: Path, data_dir_factory: Callable[..., Path]) -> Iterator[tuple[DagsterDev, Path, Path]]:
    """`dagster dev` on a free loopback port over a private data dir (raw/ still empty), warehouse and
    DAGSTER_HOME. Yields (server, data dir, warehouse file); the process group is always terminated."""
    if not (REPO_ROOT / "data" / "raw" / EDITION / "cities.csv").exists():
        pytest.fail(f"sample raw data missing: {REPO_ROOT / 'data' / 'raw' / EDITION} (run `make sample-data`)")
    data_dir = data_dir_factory(editions=())  # reference folders and an empty raw/
    warehouse = tmp_path / "w.duckdb"
    dagster_home = tmp_path / "dagster_home"
    prepare_dagster_home(dagster_home)  # no telemetry: nothing but loopback traffic

    env = {key: value for key, value in os.environ.items() if not key.startswith(("DAGSTER_", "DEI_"))}
    env.update({
        "DEI_DATA_DIR": str(data_dir),
        "DEI_WAREHOUSE": str(warehouse),
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
    })
    server = DagsterDev(_free_loopback_port(), env, tmp_path / "dagster_dev.log")
    try:
        server.wait_until_serving(SERVER_TIMEOUT)
        yield server, data_dir, warehouse
    finally:
        server.stop()


# ----------------------------------------------------------------------------------------- test

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
        workspace = _expect(server.graphql(WORKSPACE_QUERY)["workspaceOrError"], "Workspace", "workspaceOrError")
        entry = next((e for e in workspace["locationEntries"] if e["name"] == LOCATION), None)
        assert entry is not None, f"no code location {LOCATION!r} in {workspace['locationEntries']}"
        last["entry"] = entry
        if entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"] is not None:
            return _expect(entry["locationOrLoadError"], "RepositoryLocation", f"code location {LOCATION}")
        return None

    return _poll(loaded, timeout, 1, lambda: f"code location {LOCATION} not loaded within {timeout:.0f} s: {last.get('entry')}\n{server.log_tail()}")


def _stop_sensor(server: DagsterDev) -> None:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": SENSOR}
    sensor = _expect(server.graphql(SENSOR_QUERY, {"selector": selector})["sensorOrError"], "Sensor", SENSOR)
    stopped = _expect(server.graphql(STOP_SENSOR_MUTATION, {"id": sensor["id"]})["stopSensor"],
                      "StopSensorMutationResult", f"stopSensor {SENSOR}")
    assert stopped["instigationState"]["status"] == "STOPPED"
    # A tick the daemon began just before the stop must finish before raw files appear: wait until
    # two looks a second apart show no tick in progress.
    quiet_looks, deadline = 0, time.monotonic() + 60
    while quiet_looks < 2:
        assert time.monotonic() < deadline, f"a {SENSOR} tick stayed in progress\n{server.log_tail()}"
        state = _expect(server.graphql(SENSOR_QUERY, {"selector": selector})["sensorOrError"], "Sensor", SENSOR)["sensorState"]
        assert state["status"] == "STOPPED"
        assert all(not tick["runIds"] for tick in state["ticks"]), f"{SENSOR} launched runs: {state['ticks']}"
        quiet_looks = quiet_looks + 1 if all(tick["status"] != "STARTED" for tick in state["ticks"]) else 0
        time.sleep(1)


def _run_events(server: DagsterDev, run_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = _expect(server.graphql(RUN_EVENTS_QUERY, {"runId": run_id, "cursor": cursor})["logsForRun"],
                       "EventConnection", "logsForRun")
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


def _wait_for_run(server: DagsterDev, run_id: str, timeout: float) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def finished() -> dict[str, Any] | None:
        last.update(_expect(server.graphql(RUN_QUERY, {"runId": run_id})["runOrError"], "Run", f"runOrError({run_id})"))
        return last if last["status"] in TERMINAL_RUN_STATUSES else None

    return _poll(finished, timeout, 2, lambda: f"run {run_id} not finished within {timeout:.0f} s (status {last.get('status')})\n{server.log_tail()}")


def _wait_for_follow_up(server: DagsterDev, timeout: float) -> dict[str, Any]:
    """The first run of FOLLOW_UP_JOB in the instance, once it has appeared."""
    def follow_up() -> dict[str, Any] | None:
        runs = _expect(server.graphql(RUNS_QUERY)["runsOrError"], "Runs", "runsOrError")["results"]
        return next((run for run in reversed(runs) if run["jobName"] == FOLLOW_UP_JOB), None)

    return _poll(follow_up, timeout, 2, lambda: f"no {FOLLOW_UP_JOB} run within {timeout:.0f} s of the index run\n{server.log_tail()}")


def test_ui_stack_materializes_an_edition_through_graphql(dagster_dev: tuple[DagsterDev, Path, Path]) -> None:
    server, data_dir, warehouse = dagster_dev
    repository_selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}

    # 1. The code location of workspace.yaml loaded, with its one repository and index_job.
    location = _wait_for_location(server, SERVER_TIMEOUT)
    repositories = {repo["name"]: {job["name"] for job in repo["jobs"]} for repo in location["repositories"]}
    assert JOB in repositories.get(REPOSITORY, set()), f"repositories of {LOCATION}: {repositories}"
    connection = _expect(server.graphql(REPOSITORIES_QUERY)["repositoriesOrError"], "RepositoryConnection", "repositoriesOrError")
    assert {(n["location"]["name"], n["name"]) for n in connection["nodes"]} == {(LOCATION, REPOSITORY)}

    # 2. No sensor run may compete with ours; then the 2020 raw files arrive.
    _stop_sensor(server)
    shutil.copytree(REPO_ROOT / "data" / "raw" / EDITION, data_dir / "raw" / EDITION)

    # 3. Register the edition through the UI's own mutation.
    added = server.graphql(ADD_PARTITION_MUTATION, {"key": EDITION, "name": "survey_year", "repo": repository_selector})
    _expect(added["addDynamicPartition"], "AddDynamicPartitionSuccess", "addDynamicPartition")

    # 4. The asset graph: expected assets and groups, all partitioned by survey_year, 2020 visible.
    nodes = server.graphql(ASSET_NODES_QUERY, {"pipeline": {**repository_selector, "pipelineName": JOB}})["assetNodes"]
    by_name = {"/".join(node["assetKey"]["path"]): node for node in nodes}
    missing = sorted(set(EXPECTED_GROUPS) - set(by_name))
    assert not missing, f"assets missing from the graph: {missing}; present: {sorted(by_name)}"
    assert {name: by_name[name]["groupName"] for name in EXPECTED_GROUPS} == EXPECTED_GROUPS
    for name, node in by_name.items():
        assert node["isPartitioned"], f"{name} is not partitioned"
        assert EDITION in node["partitionKeys"], f"{name} partitions: {node['partitionKeys']}"
        assert JOB in node["jobNames"], f"{name} jobs: {node['jobNames']}"

    # 5. Launch index_job for 2020; the daemon dequeues it and the run worker executes it.
    params = {
        "selector": {**repository_selector, "jobName": JOB},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": EDITION}]},
    }
    launched = _expect(server.graphql(LAUNCH_RUN_MUTATION, {"params": params})["launchRun"], "LaunchRunSuccess", "launchRun")
    run_id = launched["run"]["runId"]
    started = time.monotonic()
    run = _wait_for_run(server, run_id, RUN_TIMEOUT)
    if run["status"] != "SUCCESS":
        pytest.fail(f"run {run_id} ended {run['status']}:\n{_failure_report(server, run_id)}")
    print(f"run {run_id} succeeded in {time.monotonic() - started:.1f} s")
    assert {"key": "dagster/partition", "value": EDITION} in run["tags"]

    # 6. The warehouse the run wrote (read-only: nothing holds a write lock after the run).
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        count = con.execute("SELECT count(*) FROM marts.city_index WHERE survey_year = 2020").fetchall()[0][0]
        first = con.execute(
            "SELECT name_zh FROM marts.city_index WHERE survey_year = 2020 AND rank = 1 ORDER BY name_zh"
        ).fetchall()
        shanghai = con.execute(
            "SELECT rank FROM marts.city_index WHERE survey_year = 2020 AND name_zh = '上海'"
        ).fetchall()
        editions = con.execute("SELECT DISTINCT survey_year FROM marts.city_index ORDER BY 1").fetchall()
    finally:
        con.close()
    assert count == 148
    assert shanghai == [(1,)], f"上海 rank rows: {shanghai}"
    assert first == [("上海",)], f"rank 1: {first}"
    assert editions == [(2020,)]

    # 7. The run's events: every expected asset materialized for 2020, and the reconciliation checks.
    events = _run_events(server, run_id)
    materialized = {
        "/".join(e["assetKey"]["path"]) for e in events
        if e["__typename"] == "MaterializationEvent" and e["partition"] == EDITION
    }
    assert set(EXPECTED_GROUPS) <= materialized, f"not materialized: {sorted(set(EXPECTED_GROUPS) - materialized)}"
    evaluations = {
        e["evaluation"]["checkName"]: e["evaluation"] for e in events if e["__typename"] == "AssetCheckEvaluationEvent"
    }
    print("check evaluations:", {name: ev["success"] for name, ev in sorted(evaluations.items())})
    assert "city_scores_match_published" in evaluations, f"check evaluations in the run: {sorted(evaluations)}"
    city_check = evaluations["city_scores_match_published"]
    assert city_check["assetKey"]["path"] == ["reconciliation"]
    # The checks are unpartitioned (no partitions_def on the AssetCheckSpec), so the evaluation
    # carries no partition key; it targets the 2020 materialization of `reconciliation` of this run.
    assert city_check["targetMaterialization"] is not None and city_check["targetMaterialization"]["runId"] == run_id
    assert city_check["success"], f"city_scores_match_published failed: {city_check}"

    # The same evaluation as the asset's check history shows it.
    executions = server.graphql(CHECK_EXECUTIONS_QUERY, {
        "assetKey": {"path": ["reconciliation"]}, "checkName": "city_scores_match_published",
    })["assetCheckExecutions"]
    assert [(x["runId"], x["status"]) for x in executions] == [(run_id, "SUCCEEDED")], executions

    # 8. The daemon's run-status sensor followed with analysis_job for the same edition.
    follow_up = _wait_for_follow_up(server, FOLLOW_UP_TIMEOUT)
    tags = {tag["key"]: tag["value"] for tag in follow_up["tags"]}
    assert tags.get("dagster/partition") == EDITION and tags.get("dagster/sensor_name") == FOLLOW_UP_SENSOR, tags
    analysis_run = _wait_for_run(server, follow_up["runId"], RUN_TIMEOUT)
    if analysis_run["status"] != "SUCCESS":
        pytest.fail(f"run {follow_up['runId']} ended {analysis_run['status']}:\n{_failure_report(server, follow_up['runId'])}")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        uncertain = dict(con.execute("SELECT unit_type, count(*) FROM marts.rank_uncertainty WHERE survey_year = 2020 GROUP BY 1").fetchall())
    finally:
        con.close()
    assert uncertain == {"city": 148, "county": 100}

    # 9. Nothing else ran: the raw-files sensor stayed out of the way.
    runs = _expect(server.graphql(RUNS_QUERY)["runsOrError"], "Runs", "runsOrError")["results"]
    assert [r["runId"] for r in runs] == [follow_up["runId"], run_id], f"runs in the instance: {runs}"
