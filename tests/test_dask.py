"""Scale-out: `--task-runner dask` on a local cluster of two worker processes gives the same
rows as the default runner."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
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
        if name == "segments":  # the encoder's bfloat16 sums depend on the thread count (see below)
            frame, fanned = same_readings(frame, fanned_out[name])
        else:
            fanned = fanned_out[name]
        pd.testing.assert_frame_equal(fanned, frame, check_exact=False, atol=1e-5, obj=name)


def same_readings(default: pd.DataFrame, fanned_out: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Whisper encoder runs in bfloat16 on CPUs with AMX or AVX512-BF16, and its sums are ordered by the
    thread count (a Dask worker has its own): probabilities and dims agree to 5e-3, the emotion
    and sentiment labels wherever the top two probabilities are 0.01 apart. The rest of the
    frames, returned without those columns, must be equal as before."""
    from ser_pipeline.schema import DIMENSIONS, EMOTION_PROB_COLUMNS, SENTIMENT_PROB_COLUMNS

    readings = [*EMOTION_PROB_COLUMNS, *SENTIMENT_PROB_COLUMNS, *DIMENSIONS]
    assert (default[readings] - fanned_out[readings]).abs().to_numpy().max() < 5e-3
    for label, columns in (("emotion", EMOTION_PROB_COLUMNS), ("sentiment", SENTIMENT_PROB_COLUMNS)):
        top_two = np.sort(default[list(columns)].to_numpy(), axis=1)[:, -2:]
        clear = top_two[:, 1] - top_two[:, 0] > 0.01
        assert (default[label][clear] == fanned_out[label][clear]).all()
    drop = [*readings, "emotion", "sentiment"]
    return default.drop(columns=drop), fanned_out.drop(columns=drop)


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
