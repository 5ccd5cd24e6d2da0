"""Crash safety and concurrency: a run killed mid-archive leaves a readable warehouse and the
next run finishes the rest with the same tables; two runs at once neither corrupt the
warehouse nor duplicate rows."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import warehouse_tables as tables

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(tmp_path_factory, demo_archive):
    """Six episodes: the demo's two, copied into three pairs of shows."""
    root = tmp_path_factory.mktemp("resilience") / "archive"
    for copy in range(3):
        for show in demo_archive.iterdir():
            shutil.copytree(show, root / f"{show.name}-{copy}")
    return root


def run(archive: Path, warehouse: Path, home: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "ser_pipeline", "run", str(archive), "--warehouse", str(warehouse)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finished(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.fixture(scope="module")
def uninterrupted(archive, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    finished(run(archive, tmp / "data", tmp / "home"))
    return tables(tmp / "data")


def test_a_run_killed_mid_archive_is_finished_by_the_next_with_the_same_tables(archive, uninterrupted, tmp_path):
    warehouse = tmp_path / "data"
    victim = run(archive, warehouse, tmp_path / "home", start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(warehouse.glob("episodes/*/*.parquet")) and time.monotonic() < deadline:
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)  # the run and its Prefect server, mid-archive
    victim.wait()
    written = list(warehouse.glob("*/*/*.parquet"))
    assert 0 < len(list(warehouse.glob("episodes/*/*.parquet"))) < 6, "the kill should land mid-archive"
    for path in written:  # readable: every file there is whole (atomic renames), no temporaries left
        pq.read_table(path)
    assert not list(warehouse.rglob("*.tmp*"))

    output = finished(run(archive, warehouse, tmp_path / "home"))
    assert "skipped" in output  # the episodes the killed run completed
    resumed = tables(warehouse)
    for name, frame in uninterrupted.items():
        pd.testing.assert_frame_equal(resumed[name], frame, check_exact=False, atol=1e-5, obj=name)


def test_two_runs_at_once_neither_corrupt_nor_duplicate(archive, uninterrupted, tmp_path):
    warehouse = tmp_path / "data"
    first = run(archive, warehouse, tmp_path / "home-1")
    second = run(archive, warehouse, tmp_path / "home-1")
    finished(first), finished(second)
    together = tables(warehouse)
    for name, frame in uninterrupted.items():
        pd.testing.assert_frame_equal(together[name], frame, check_exact=False, atol=1e-5, obj=name)
