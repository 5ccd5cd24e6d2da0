"""The command line's own options: `--version`, `models --json`, and a device it does not know refused before
anything starts (exit 2, as a usage mistake)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.scoring_version import PIPELINE_VERSION


def test_version_names_the_pipeline_and_scoring_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ser-pipeline {PIPELINE_VERSION}"


@pytest.mark.parametrize(
    "arguments",
    [
        ["run", "archive-that-is-not-there", "--device", "tpu"],
        ["predict", "x.wav", "-o", "x.csv", "--device", "tpu"],
        ["bench", "--device", "tpu"],
        ["serve", "--archive", "somewhere", "--device", "tpu"],
    ],
)
def test_an_unknown_device_is_a_usage_error_before_anything_starts(arguments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2 and "'tpu': choose auto, cpu or cuda" in result.output
    assert list(tmp_path.iterdir()) == []  # no warehouse, no output, no cache


def test_models_json_lists_the_registry_with_its_defaults():
    import json

    from ser_pipeline.registry import Registry

    result = CliRunner().invoke(app, ["models", "--json"])
    document = json.loads(result.stdout)
    ids = [m["id"] for m in document["models"]]
    assert result.exit_code == 0 and set(document["defaults"].values()) <= set(ids)
    assert document["defaults"] == Registry.load().defaults and len(ids) == len(Registry.load().models)
    laughter = next(m for m in document["models"] if m["id"] == document["defaults"]["laughter"])
    assert laughter["tasks"] == ["laughter"] and laughter["sha256"] and "balanced" in laughter["operating_points"]


def test_quiet_and_verbose_together_are_a_usage_error():
    result = CliRunner().invoke(app, ["-q", "-v", "models"])
    assert result.exit_code == 2 and "not both" in result.output
