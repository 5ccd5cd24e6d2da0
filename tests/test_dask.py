"""Scale-out: `--task-runner dask` on a local cluster of two worker processes gives the same
rows as the default runner."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import warehouse_tables

pytestmark = pytest.mark.slow


def test_a_dask_cluster_of_two_workers_gives_the_rows_of_the_default_runner(demo_archive, tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_LOGGING_LEVEL": "WARNING"}

    def run(name: str, *extra: str) -> tuple[dict, str]:
        command = [sys.executable, "-m", "ser_pipeline", "run", str(demo_archive), "--warehouse",
                   str(tmp_path / name), "--segmentation", "window", *extra]  # fmt: skip
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return warehouse_tables(tmp_path / name), result.stdout + result.stderr

    default, _ = run("default")
    env["PREFECT_LOGGING_LEVEL"] = "INFO"
    fanned_out, log = run("dask", "--task-runner", "dask")
    assert "fanned out over the Dask cluster at tcp://127.0.0.1" in log
    assert len(default["segments"]) > 10 and len(default["episodes"]) == 2
    for name, frame in default.items():
        pd.testing.assert_frame_equal(fanned_out[name], frame, check_exact=False, atol=1e-5, obj=name)


def test_runs_on_a_long_lived_cluster_each_send_their_events_to_their_own_server(demo_archive, tmp_path):
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_LOGGING_LEVEL": "WARNING"}
    address = f"tcp://127.0.0.1:{port}"
    worker_log = (tmp_path / "worker.log").open("w")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", ":0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
         "--no-dashboard"], env=env, stdout=worker_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        time.sleep(3)
        for name in ("first", "second"):
            command = [sys.executable, "-m", "ser_pipeline", "run", str(demo_archive), "--warehouse",
                       str(tmp_path / name), "--segmentation", "window", "--task-runner", "dask",
                       "--dask-address", address]  # fmt: skip
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, result.stderr[-3000:]
            assert len(warehouse_tables(tmp_path / name)["episodes"]) == 2
        time.sleep(5)  # what the worker would still try to send
    finally:
        worker.terminate()
        scheduler.terminate()
        worker.wait(timeout=30)
        scheduler.wait(timeout=30)
        worker_log.close()
    log = (tmp_path / "worker.log").read_text()
    assert "may be lost" not in log and "ConnectError" not in log and "Connection refused" not in log, log[-3000:]
