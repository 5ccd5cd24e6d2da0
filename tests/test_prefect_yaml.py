"""prefect.yaml: every deployment points at the flow and passes only parameters it takes."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml

from flows.analyze_archive import analyze_archive
from ser_pipeline.settings import RunSettings

ROOT = Path(__file__).parents[1]


def test_work_pool_deployments_name_the_flow_and_its_parameters():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    accepted = set(inspect.signature(analyze_archive.fn).parameters)
    names = []
    for deployment in config["deployments"]:
        names.append(deployment["name"])
        path, function = deployment["entrypoint"].split(":")
        assert (ROOT / path).is_file() and function == "analyze_archive"
        assert set(deployment["parameters"]) <= accepted, set(deployment["parameters"]) - accepted
        assert "archive" in deployment["parameters"] and "warehouse" in deployment["parameters"]["settings"]
        RunSettings.model_validate(deployment["parameters"]["settings"])  # names only fields it has
        assert deployment["work_pool"]["name"] and deployment["schedules"][0]["cron"].count(" ") == 4
    # `serve` owns analyze-archive/nightly; a deployment of the same name would replace it
    assert "nightly-pool" in names and "nightly" not in names
