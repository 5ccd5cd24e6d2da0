"""Scheduled archive runs the way users set them up, on a real `prefect server start`:
`ser-pipeline serve` whose schedule fires by itself (the server's scheduler creates the run), and
`prefect deploy` of prefect.yaml run by a worker on a process work pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx
import pytest

from ser_pipeline.prefect_api import TemporaryServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))


@contextmanager
def prefect_server(tmp_path, monkeypatch, services: bool):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if services:  # the scheduler looks for deployments to schedule every 5 s instead of 60 s
        monkeypatch.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", "5")
    server = TemporaryServer(services=services)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextmanager
def background(command: list[str], env: dict, log: Path, cwd: Path | None = None):
    """A long-running command (serve, a worker) in its own process group, interrupted after."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def flow_runs(api: str, deployment: str) -> list[dict]:
    """The flow runs of deployment `analyze-archive/<deployment>`, newest first."""
    found = httpx.get(f"{api}/deployments/name/analyze-archive/{deployment}", timeout=10)
    if found.status_code == 404:
        return []
    body = {"deployments": {"id": {"any_": [found.json()["id"]]}}, "sort": "EXPECTED_START_TIME_DESC"}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10).json()


def warehouse_rows(warehouse: Path) -> tuple[list, int]:
    with duckdb.connect(str(warehouse / "podcasts.duckdb"), read_only=True) as db:
        statuses = db.sql("SELECT status, count(*) FROM episodes GROUP BY ALL").fetchall()
        windows = db.sql("SELECT count(*) FROM segments WHERE kind = 'window'").fetchall()[0][0]
    return statuses, windows


def test_a_served_schedule_fires_by_itself_and_its_run_completes(tmp_path, monkeypatch, demo_archive):
    """No `prefect deployment run`: the server's scheduler (which SQLAlchemy 2.1 broke) creates
    the run from the every-minute cron, and `serve` runs it."""
    with prefect_server(tmp_path, monkeypatch, services=True) as server:
        env = {**os.environ, "PREFECT_API_URL": server.url, "PREFECT_LOGGING_LEVEL": "INFO"}
        warehouse = tmp_path / "wh" / "data"
        serve = [sys.executable, "-m", "ser_pipeline", "serve", "--archive", str(demo_archive),
                 "--warehouse", str(warehouse), "--segmentation", "window", "--cron", "* * * * *"]  # fmt: skip
        with background(serve, env, tmp_path / "serve.log") as served:
            deadline, states = time.monotonic() + 420, []
            while time.monotonic() < deadline and "COMPLETED" not in states:
                assert served.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                states = [run["state_type"] for run in flow_runs(server.url, "nightly")]
                assert "FAILED" not in states and "CRASHED" not in states, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(3)
            assert "COMPLETED" in states, f"runs: {states}; server: {server.output()}"
        assert "bulk DML" not in server.output()
    assert warehouse_rows(warehouse)[0] == [("ok", 2)]


def test_prefect_deploy_and_a_process_worker_run_the_pool_deployment(tmp_path, monkeypatch, demo_archive):
    warehouse = tmp_path / "pool-wh" / "data"
    with prefect_server(tmp_path, monkeypatch, services=False) as server:
        env = {
            **os.environ,
            "PREFECT_API_URL": server.url,
            "SER_PIPELINE_DIR": str(ROOT),
            "SER_ARCHIVE": str(demo_archive),
            "SER_WAREHOUSE": str(warehouse),
        }

        def prefect(*args: str) -> subprocess.CompletedProcess:
            done = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            return done

        prefect("work-pool", "create", "local-process", "--type", "process")
        prefect("--no-prompt", "deploy", "--all")
        deployment = httpx.get(f"{server.url}/deployments/name/analyze-archive/nightly-pool", timeout=10).json()
        assert deployment["parameters"]["archive"] == str(demo_archive)  # templated from the environment
        assert deployment["parameters"]["settings"]["warehouse"] == str(warehouse)
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 3 * * *"]
        worker = [PREFECT, "worker", "start", "--pool", "local-process"]
        with background(worker, env, tmp_path / "worker.log", cwd=tmp_path):
            settings = json.dumps({"settings": {"warehouse": str(warehouse), "segmentation": "window"}})
            run = prefect("deployment", "run", "analyze-archive/nightly-pool", "--params", settings,
                          "--watch", "--watch-timeout", "400")  # fmt: skip
        assert "Completed" in run.stdout, (tmp_path / "worker.log").read_text()[-3000:]
    statuses, windows = warehouse_rows(warehouse)
    assert statuses == [("ok", 2)] and windows > 10
