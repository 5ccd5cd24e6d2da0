"""Scheduled archive runs the way users trigger them: a real `prefect server start`,
`ser-pipeline serve`, then `prefect deployment run analyze-archive/nightly --watch`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from ser_pipeline.prefect_api import TemporaryServer

pytestmark = pytest.mark.slow
PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture
def prefect_server(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    server = TemporaryServer()  # `prefect server start` on a free loopback port
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.stop()


def test_prefect_deployment_run_analyzes_the_archive(prefect_server, demo_archive, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_LOGGING_LEVEL": "INFO"}
    warehouse = tmp_path / "wh" / "data"
    serve_log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "ser_pipeline", "serve", "--archive", str(demo_archive), "--warehouse", str(warehouse),
         "--segmentation", "window", "--cron", "0 3 * * *"],
        env=env, stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline, run = time.monotonic() + 240, None
        while time.monotonic() < deadline:  # until `serve` has registered the deployment
            run = subprocess.run(
                [PREFECT, "deployment", "run", "analyze-archive/nightly", "--watch", "--watch-timeout", "400"],
                env=env, capture_output=True, text=True, timeout=450,
            )  # fmt: skip
            if "not found" not in (run.stdout + run.stderr).lower():
                break
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(2)
        assert run is not None and run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "Completed" in run.stdout
        schedules = subprocess.run(
            [PREFECT, "deployment", "inspect", "analyze-archive/nightly"], env=env, capture_output=True, text=True
        ).stdout
        assert "0 3 * * *" in schedules
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
    with duckdb.connect(str(warehouse / "podcasts.duckdb"), read_only=True) as db:
        statuses = db.sql("SELECT status, count(*) FROM episodes GROUP BY ALL").fetchall()
        windows = db.sql("SELECT count(*) FROM segments WHERE kind = 'window'").fetchall()[0][0]
    assert statuses == [("ok", 2)] and windows > 10
