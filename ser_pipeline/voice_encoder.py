"""Resemblyzer's GE2E voice encoder, ported to torch, with the weights that ship inside its PyPI wheel.

The `resemblyzer` wheel (Apache-2.0, pinned in pyproject) carries `pretrained.pt`: a 3-layer LSTM
(256 units) over 40 mel bands of power (not log) at 100 frames a second, then a linear layer,
a ReLU and L2 normalisation: a 256-d embedding of who is speaking in 1.6 s of speech. The file
is checked against `PRETRAINED_SHA256` and read with `torch.load(weights_only=True)`; only the
port below runs (batched, on the pipeline's device), never the package's code.

Each window is brought to -30 dBFS before its mel bands are taken (Resemblyzer normalises a
whole utterance to the same level), so loud and quiet stretches of one voice are compared alike.
`tests/test_embedded_diarization.py` checks the port against the package's own `VoiceEncoder`;
its card is `models/embedded-diarizer-ge2e.md`.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import nn

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.devices import matmul_autocast_for
from ser_pipeline.files import wheel_file

WHEEL = "resemblyzer==0.1.4"
PRETRAINED_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
N_MELS, HIDDEN, LAYERS = 40, 256, 3
HOP = SAMPLE_RATE // 100  # 10 ms frames
WINDOW_SAMPLES = 160 * HOP  # 1.6 s, the length the encoder was trained on
TARGET_DBFS = -30.0


class VoiceEncoderUnavailable(RuntimeError):
    """The wheel that carries the weights is not installed, or its pretrained.pt is another file."""


def pretrained_path() -> Path:
    return wheel_file(
        "resemblyzer", "pretrained.pt", PRETRAINED_SHA256, WHEEL, "the embedded diarizer's voice encoder",
        VoiceEncoderUnavailable,
    )  # fmt: skip


class VoiceEncoder(nn.Module):
    """GE2E: the mel bands of 16 kHz windows (`features`) -> (batch, 256) L2-normalised speaker embeddings."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, HIDDEN)
        # librosa.feature.melspectrogram's defaults, as Resemblyzer computes them: 25 ms Hann
        # windows, centred with zero padding, Slaney mel scale and area normalisation, power.
        self.mel = torchaudio.transforms.MelSpectrogram(
            SAMPLE_RATE,
            n_fft=400,
            hop_length=HOP,
            n_mels=N_MELS,
            norm="slaney",
            mel_scale="slaney",
            pad_mode="constant",
        )

    def features(self, windows: torch.Tensor) -> torch.Tensor:
        """Mel bands of windows already at -30 dBFS: (batch, frames, 40)."""
        return self.mel(windows).transpose(1, 2)

    def forward(self, mels: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings of (batch, frames, 40) mel bands, each row's first `frames` of them (all without)."""
        if frames is not None:
            mels = nn.utils.rnn.pack_padded_sequence(mels, frames.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8)


@lru_cache(maxsize=2)
def load_voice_encoder(device: torch.device) -> VoiceEncoder:
    state = torch.load(pretrained_path(), map_location="cpu", weights_only=True)["model_state"]
    encoder = VoiceEncoder()
    missing = encoder.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")}, strict=False)
    if missing.unexpected_keys or any(not k.startswith("mel.") for k in missing.missing_keys):
        raise VoiceEncoderUnavailable(f"pretrained.pt does not fit the GE2E port: {missing}")
    return encoder.eval().to(device)


def at_target_level(window: np.ndarray) -> np.ndarray:
    rms = max(float(np.sqrt(np.mean(np.square(window, dtype=np.float64)))), 1e-5)
    return (window * (10 ** (TARGET_DBFS / 20) / rms)).astype(np.float32)


def embed_windows(encoder: VoiceEncoder, windows: list[np.ndarray], batch: int = 256, fast: bool = True) -> np.ndarray:
    """Embeddings (n, 256) of 16 kHz windows of at most 1.6 s, each brought to -30 dBFS first;
    batched, shorter windows padded and read only up to their own last frame. `fast`: on a CPU
    with bfloat16 dot products the LSTM runs in bfloat16 (`devices.matmul_autocast_for`), 1.6x
    faster; on 24 development episodes each window within cosine 0.9998 of float32 on average,
    DER -0.003 (-0.010 to +0.003) (research/ge2e_precision_probe.py). Elsewhere, and on CUDA
    (float16 autocast of a packed LSTM was never tried there; a GPU has time to spare), and
    without `fast`: float32 throughout, as the package computes it."""
    device = next(encoder.parameters()).device
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    out = np.zeros((len(windows), HIDDEN), np.float32)
    with torch.inference_mode():
        for first in range(0, len(order), batch):
            rows = order[first : first + batch]
            longest = len(windows[rows[0]])
            padded = np.zeros((len(rows), longest), np.float32)
            for k, i in enumerate(rows):
                padded[k, : len(windows[i])] = at_target_level(windows[i])
            mels = encoder.features(torch.from_numpy(padded).to(device))
            frames = torch.tensor([len(windows[i]) // HOP + 1 for i in rows])
            short = bool((frames < mels.shape[1]).any())
            with matmul_autocast_for(device) if fast and device.type == "cpu" else contextlib.nullcontext():
                out[rows] = encoder(mels, frames if short else None).float().cpu().numpy()
    return out
