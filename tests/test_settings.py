"""RunSettings: one object for a run's options, from the command line or a deployment's JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.segmentation import Segmentation
from ser_pipeline.settings import ModelChoice, RunSettings


def test_settings_survive_a_deployments_json_and_refuse_unknown_names():
    settings = RunSettings(
        warehouse=Path("/srv/wh"), segmentation="window", window_s=2.0, models=ModelChoice(emotion="ser-crnn-v1")
    )
    assert RunSettings.model_validate(settings.model_dump(mode="json")) == settings
    assert settings.segmentation is Segmentation.window and settings.run_config().describe() == "window:2.0/2.0"
    with pytest.raises(ValidationError, match="extra"):
        RunSettings.model_validate({"warehouse": "/srv/wh", "segmentaton": "window"})
    with pytest.raises(ValidationError):
        RunSettings(window_s=0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--window", "-1"], "window_s"),
        (["--segmentation", "words"], "choose sentence, window or vad"),
        (["--task-runner", "spark"], "choose default or dask"),
        (["--emotion-model", "nope"], "unknown model"),
    ],
)
def test_run_and_serve_refuse_bad_settings_before_any_work(arguments, message, tmp_path):
    for command in (["run", str(tmp_path)], ["serve", "--archive", str(tmp_path)]):
        result = CliRunner().invoke(app, [*command, *arguments])
        assert result.exit_code == 2 and message in result.output, result.output


def test_the_episode_reading_reaches_the_settings_and_both_fingerprints(tmp_path, monkeypatch):
    """`--no-episode-reading` lands in the run's settings, and the skip check's fingerprint (from
    the registry alone) is the one the loaded models record."""
    import ser_pipeline.cli as cli

    seen = []
    monkeypatch.setattr(cli, "_unchanged_archive", lambda archive, settings: seen.append(settings) or 1)
    for flag in ([], ["--no-episode-reading"]):
        result = CliRunner().invoke(app, ["run", str(tmp_path), "--warehouse", str(tmp_path / "wh"), *flag])
        assert result.exit_code == 0, result.output
    assert [s.models.episode_reading for s in seen] == [True, False]
    for settings in seen:
        settings = settings.model_copy(update={"device": "cpu"})
        assert settings.models_fingerprint() == settings.analyzer().models.fingerprints
    assert seen[1].models_fingerprint() == {**seen[0].models_fingerprint(), "episode_reading": False}


def test_turning_the_episode_reading_off_changes_nothing_for_a_model_without_one():
    crnn = ModelChoice(emotion="ser-crnn-v3", dims="ser-crnn-v3")
    plain, alone = RunSettings(models=crnn), RunSettings(models=crnn.model_copy(update={"episode_reading": False}))
    assert alone.models_fingerprint() == plain.models_fingerprint()  # nothing to redo, nothing recorded
    assert "emotion_reading" not in alone.model_copy(update={"device": "cpu"}).analyzer().models.ids
