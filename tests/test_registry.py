from __future__ import annotations

import json

import pytest
import torch

from ser_pipeline.architectures import LaughterEnsemble, LaughterEnsembleConfig, LaughterNet, LaughterNetConfig
from ser_pipeline.files import file_sha256
from ser_pipeline.registry import (
    EMBEDDED_MODELS_DIR,
    REGISTRY_FILE,
    ModelNotFoundError,
    ModelSpec,
    Registry,
    load_network,
    resolve_weights,
    save_network,
)
from ser_pipeline.training.publish import publish


def spec(weights: str, sha256: str | None = None, url: str | None = None) -> ModelSpec:
    return ModelSpec(
        id="m", tasks=("laughter",), architecture="laughter-tcn", weights=weights, sha256=sha256, licence="MIT", url=url
    )


def test_save_and_load_round_trip_rebuilds_the_architecture(tmp_path):
    network = LaughterNet(LaughterNetConfig(channels=8, dilations=(1, 2))).eval()
    path = tmp_path / "m.safetensors"
    save_network(network, "laughter-tcn", path)
    loaded = load_network(path)
    assert loaded.config == network.config
    x = torch.randn(1, 50, 64)
    assert torch.equal(loaded(x), network(x))


@pytest.mark.parametrize("pcen_half_window", [0, 20])
def test_an_ensemble_round_trips_and_averages_its_members_logits(tmp_path, pcen_half_window):
    config = LaughterEnsembleConfig(
        channels=8, dilations=(1, 2), stride=2, members=3, pcen_half_window=pcen_half_window
    )
    ensemble = LaughterEnsemble(config).eval()
    path = tmp_path / "e.safetensors"
    save_network(ensemble, "laughter-tcn-ensemble", path)
    loaded = load_network(path)
    assert loaded.config == ensemble.config and len(loaded.members) == 3
    x = torch.randn(2, 51, 64)
    alone = [member(x) for member in ensemble.members]
    assert not torch.allclose(alone[0], alone[1])  # members differ, so the mean is not any one of them
    assert torch.allclose(loaded(x), torch.stack(alone).mean(dim=0), atol=1e-6)
    assert loaded(x).shape == (2, 51)


def test_search_path_then_sha256_check(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    sha = save_network(LaughterNet(LaughterNetConfig(channels=4, dilations=(1,))), "laughter-tcn", path)
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    assert resolve_weights(spec("m.safetensors", sha)) == path
    with pytest.raises(ModelNotFoundError, match="sha256"):
        resolve_weights(spec("m.safetensors", "0" * 64))


def test_missing_weights_say_where_they_looked_and_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SER_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match=r"looked in .*\n?.*download it from https://example.org/w"):
        resolve_weights(spec("absent.safetensors", url="https://example.org/w"))
    with pytest.raises(ModelNotFoundError, match="ser-pipeline train"):
        resolve_weights(spec("absent.safetensors"))


def test_a_file_without_architecture_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="architecture"):
        load_network(path)


def test_registry_defaults_resolve_to_committed_verified_weights():
    registry = Registry.load()
    document = json.loads((EMBEDDED_MODELS_DIR / "registry.json").read_text())
    for task in document["defaults"]:
        model = registry.default(task)
        assert resolve_weights(model).parent == EMBEDDED_MODELS_DIR
        assert model.card and (EMBEDDED_MODELS_DIR / model.card).is_file()
        assert model.scores and model.licence
    with pytest.raises(KeyError, match="ser-pipeline models"):
        registry.get("nope")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["run", ".", "--dims-model", "nope"], "unknown model 'nope'"),
        (["run", ".", "--emotion-model", "laughter-tcn-v6"], "does not do emotion"),
        (["run", ".", "--operating-point", "loose"], "no operating point 'loose'"),
        (["predict", "x.wav", "-o", "x.csv", "--laughter-model", "ser-crnn-v1"], "does not do laughter"),
    ],
)
def test_model_mistakes_end_the_command_with_a_message(arguments, message, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ser_pipeline.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_publishing_into_another_folder_leaves_the_project_registry_alone(tmp_path):
    before = REGISTRY_FILE.read_bytes()
    weights = publish(
        LaughterNet(LaughterNetConfig(channels=4, dilations=(1,))),
        model_id="tiny-laughter",
        architecture="laughter-tcn",
        models_dir=tmp_path,
        entry={"tasks": ["laughter"]},
        card_body="A test.",
    )
    assert REGISTRY_FILE.read_bytes() == before
    registry = Registry.load(REGISTRY_FILE, extra=[tmp_path / "registry.json"])
    assert registry.get("tiny-laughter").sha256 == file_sha256(weights)
    assert (tmp_path / "tiny-laughter.md").read_text().startswith("# Model card: tiny-laughter")
