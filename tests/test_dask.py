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
