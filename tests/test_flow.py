"""The Prefect flow itself, in process on Prefect's ephemeral API: retries and isolation."""

from __future__ import annotations

import pytest

from ser_pipeline.pipeline import process_episode
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
    outcomes = module.analyze_archive(str(demo_archive), warehouse=str(tmp_path / "data"), segmentation="window")
    assert calls == {"demo-panel-ep01": 2, "demo-talk-ep01": 3}  # 2 retries, then given up
    assert {o["episode_id"]: o["status"] for o in outcomes} == {"demo-panel-ep01": "ok", "demo-talk-ep01": "failed"}
    with connect_read_only(tmp_path / "data") as db:
        rows = dict(db.execute("SELECT episode_id, error FROM episodes WHERE status = 'failed'").fetchall())
        assert "device lost" in rows["demo-talk-ep01"]
        assert db.execute("""SELECT count(*) FROM segments WHERE "show" = 'demo-panel'""").fetchone()[0] > 0
    assert (tmp_path / "reports" / "index.html").is_file()
