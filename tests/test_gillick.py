"""The port of the Gillick et al. (2021) laughter ResNet and its pinned download."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import SHARED_DATA
from ser_pipeline.gillick import GillickResNet, gillick_features, window_probabilities
from ser_pipeline.registry import ModelNotFoundError, Registry, load_network, resolve_weights

SHARED_MODELS = SHARED_DATA.parent / "models"
CPU = torch.device("cpu")
needs_weights = pytest.mark.skipif(
    not (SHARED_MODELS / "laughter-resnet-gillick2021").is_dir(), reason="../shared/models is absent"
)


@pytest.fixture()
def switchboard(monkeypatch):
    monkeypatch.setenv("SER_MODEL_PATH", str(SHARED_MODELS))
    spec = Registry.load().get("laughter-resnet-gillick2021-switchboard")
    return load_network(resolve_weights(spec), spec.architecture)


def clip(relative: str) -> np.ndarray:
    return sf.read(SHARED_DATA / relative, dtype="float32")[0]


@needs_weights
def test_published_weights_load_by_registry_name_into_the_port(switchboard):
    assert isinstance(switchboard, GillickResNet)
    total = sum(t.numel() for t in switchboard.state_dict().values())
    assert total == 223_255  # the published count, buffers included


@needs_weights
def test_it_hears_laughter_and_not_speech(switchboard):
    laugh = window_probabilities(
        switchboard, gillick_features(clip("nonverbal/laughing/BYYM_12_6_0_32_0_0_0.flac")), CPU
    )
    speech = window_probabilities(
        switchboard, gillick_features(clip("ravdess/Actor_01/03-01-01-01-01-01-01.flac")), CPU
    )
    assert (laugh > 0.5).mean() > 0.5 > (speech > 0.5).mean()


@needs_weights
def test_stride_with_interpolation_stays_close_to_every_frame_and_batches_are_exact(switchboard):
    features = gillick_features(clip("nonverbal/laughing/3S0D_12_8_0_16_0_0_0.flac"))
    every = window_probabilities(switchboard, features, CPU, stride=1)
    strided = window_probabilities(switchboard, features, CPU, stride=4)
    assert len(every) == len(strided) == len(features)
    assert np.abs(every - strided).mean() < 0.05
    one_by_one = window_probabilities(switchboard, features[:60], CPU, stride=1, batch_size=1)
    assert np.allclose(one_by_one, window_probabilities(switchboard, features[:60], CPU, stride=1), atol=1e-5)


def test_features_follow_the_published_recipe():
    t = np.arange(16_000 * 2) / 16_000
    features = gillick_features((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert features.shape == (int(2 * 8000 / 186) + 1, 128)
    assert features.max() == 0 and features.min() >= -80  # dB re the maximum, top_db 80


@pytest.fixture()
def checkpoint_server(tmp_path):
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in GillickResNet().state_dict().items()}
    path = tmp_path / "served" / "best.pth.tar"
    path.parent.mkdir()
    torch.save({"state_dict": state, "epoch": 3, "best_val_loss": 0.25}, path)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/best.pth.tar", hashlib.sha256(path.read_bytes()).hexdigest()
    server.shutdown()


def test_pinned_download_is_verified_then_converted_to_safetensors(tmp_path, monkeypatch, checkpoint_server):
    import dataclasses

    url, checkpoint_sha = checkpoint_server
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    spec = dataclasses.replace(
        Registry.load().get("laughter-resnet-gillick2021-switchboard"),
        url=url,
        sha256=None,
        options={"checkpoint_sha256": "0" * 64},
    )
    # The feeds' downloader fetches it: an address inside the network is refused unless allowed.
    with pytest.raises(ModelNotFoundError, match="refusing 127.0.0.1"):
        resolve_weights(spec)
    monkeypatch.setenv("SER_FEED_ALLOW_PRIVATE", "1")
    with pytest.raises(ModelNotFoundError, match="does not match the published sha256"):
        resolve_weights(spec)
    assert not list((tmp_path / "cache").rglob("*.*"))  # nothing unverified is kept
    spec = dataclasses.replace(spec, options={"checkpoint_sha256": checkpoint_sha})
    path = resolve_weights(spec)
    assert path.suffix == ".safetensors" and not list(path.parent.glob("*.pth.tar"))
    network = load_network(path, spec.architecture)
    torch.manual_seed(0)
    assert torch.equal(network.linear2.weight, GillickResNet().linear2.weight)
    monkeypatch.setenv("SER_OFFLINE", "1")
    (path).unlink()
    with pytest.raises(ModelNotFoundError, match="download it from http://127.0.0.1"):
        resolve_weights(spec)
