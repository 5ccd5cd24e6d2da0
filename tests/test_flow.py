"""The Prefect flow itself, in process on Prefect's ephemeral API: retries and isolation."""

from __future__ import annotations

import pytest

from ser_pipeline.pipeline import process_episode
from ser_pipeline.settings import RunSettings
from ser_pipeline.warehouse import connect_read_only

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def prefect_api():
    """A temporary Prefect API for this module, stopped before pytest closes its output."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_transient_errors_are_retried_and_a_persistent_one_fails_only_its_episode(tmp_path, demo_archive, monkeypatch):
    import flows.analyze_archive as module

    calls: dict[str, int] = {}

    def flaky(episode, *args):
        calls[episode.episode_id] = calls.get(episode.episode_id, 0) + 1
        if episode.show == "demo-talk":
            raise RuntimeError("device lost")  # every attempt
        if calls[episode.episode_id] == 1:
            raise OSError("network share hiccup")  # first attempt only
        return process_episode(episode, *args)

    monkeypatch.setattr(module, "process_episode", flaky)
    with pytest.raises(module.EpisodesFailed, match="1 of 2 episode") as failed:
        module.analyze_archive(str(demo_archive), RunSettings(warehouse=tmp_path / "data", segmentation="window"))
    outcomes = failed.value.outcomes
    assert calls == {"demo-panel-ep01": 2, "demo-talk-ep01": 3}  # 2 retries, then given up
    assert {o["episode_id"]: o["status"] for o in outcomes} == {"demo-panel-ep01": "ok", "demo-talk-ep01": "failed"}
    with connect_read_only(tmp_path / "data") as db:
        rows = dict(db.execute("SELECT episode_id, error FROM episodes WHERE status = 'failed'").fetchall())
        assert "device lost" in rows["demo-talk-ep01"]
        assert db.execute("""SELECT count(*) FROM segments WHERE "show" = 'demo-panel'""").fetchone()[0] > 0
    assert (tmp_path / "reports" / "index.html").is_file()


def test_a_failed_episode_is_a_failed_task_run_not_retried_for_bad_audio_and_fails_the_flow(tmp_path, demo_archive):
    import shutil

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    from flows.analyze_archive import EpisodesFailed, analyze_archive

    archive = tmp_path / "archive"
    shutil.copytree(demo_archive, archive)
    (archive / "demo-talk" / "corrupt.mp3").write_bytes(b"ID3" + bytes(range(256)) * 20)
    state = analyze_archive(
        str(archive), RunSettings(warehouse=tmp_path / "data", segmentation="window"), return_state=True
    )
    assert state.is_failed() and state.message.startswith(
        "1 of 3 episode(s) failed: demo-talk/corrupt: not decodable audio"
    )
    error = state.result(raise_on_failure=False)
    assert isinstance(error, EpisodesFailed)
    assert {o["episode_id"]: o["status"] for o in error.outcomes} == {
        "corrupt": "failed",
        "demo-talk-ep01": "ok",
        "demo-panel-ep01": "ok",
    }
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [state.state_details.flow_run_id]}))
    by_name = {run.name: run for run in runs}
    assert by_name["demo-talk/corrupt"].state.type.value == "FAILED"
    assert by_name["demo-talk/corrupt"].run_count == 1  # undecodable audio: no retry can mend it
    assert by_name["demo-talk/demo-talk-ep01"].state.type.value == "COMPLETED"
    assert (tmp_path / "reports" / "index.html").is_file()  # views and reports done before the flow failed


def test_a_database_held_by_a_reader_leaves_the_rows_written_and_the_next_run_builds_the_views(
    tmp_path, demo_archive, monkeypatch, capfd, caplog
):
    import flows.analyze_archive as module
    from ser_pipeline.warehouse import WarehouseBusy, outputs_exist

    def busy(warehouse):
        raise WarehouseBusy(f"{warehouse}/podcasts.duckdb is held by another process (waited 30 s)")

    warehouse, reports = tmp_path / "data", tmp_path / "reports"
    with monkeypatch.context() as patched:
        patched.setattr(module, "refresh_views", busy)
        outcomes = module.analyze_archive(str(demo_archive), RunSettings(warehouse=warehouse, segmentation="window"))
    assert {o["status"] for o in outcomes} == {"ok"}
    logged = caplog.text + capfd.readouterr().err  # Prefect logs to the console, or to pytest once it is set up
    assert "refreshed by the next run" in logged
    assert len(list((warehouse / "segments").glob("*/*.parquet"))) == 2 and not outputs_exist(warehouse, reports)
    outcomes = module.analyze_archive(str(demo_archive), RunSettings(warehouse=warehouse, segmentation="window"))
    assert {o["status"] for o in outcomes} == {"skipped"}  # nothing scored again, only the views built
    assert outputs_exist(warehouse, reports)
    with connect_read_only(warehouse) as db:
        assert db.execute("SELECT count(*) FROM episodes").fetchone()[0] == 2
