"""Port of the laughter ResNet of Gillick et al. (2021), "Robust Laughter Detection in Noisy
Environments" (MIT; weights published in jrgillick/laughter-detection).

Written from the published facts (see `../shared/models/laughter-resnet-gillick2021/README.md`):
a 44-frame x 128-band log-mel window at 8 kHz (hop 186 samples, about 43 frames per second)
in, one laughter probability out. Upstream scores a window at every frame; here windows are
scored in batches every `stride` frames and the probabilities in between are interpolated
(stride 1 reproduces upstream exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soxr
import torch
from torch import nn

from ser_pipeline.architectures import MetadataConfig
from ser_pipeline.audio import SAMPLE_RATE

GILLICK_RATE = 8_000
N_FFT, HOP, N_MELS, WINDOW_FRAMES = 2048, 186, 128, 44
GILLICK_FPS = GILLICK_RATE / HOP  # frames (and window starts) per second


class _ResidualUnit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + self.shortcut(x))


@dataclass(frozen=True)
class GillickConfig(MetadataConfig):
    """The published network has no free size parameters; only its dropout rate."""

    dropout: float = 0.5


class GillickResNet(nn.Module):
    """(batch, 1, 44, 128) log-mel windows -> (batch,) laughter probabilities."""

    def __init__(self, config: GillickConfig = GillickConfig()):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(1, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = [(64, 64, 1), (64, 32, 2), (32, 16, 2), (16, 16, 2)]
        for index, (a, b, stride) in enumerate(widths, start=1):
            setattr(self, f"block{index}", nn.Sequential(_ResidualUnit(a, b, stride), _ResidualUnit(b, b, 1)))
        self.bn2 = nn.BatchNorm1d(64)
        self.linear1 = nn.Linear(64, 32)
        self.bn3 = nn.BatchNorm1d(32)
        self.linear2 = nn.Linear(32, 1)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(windows)))
        x = self.block4(self.block3(self.block2(self.block1(x))))
        x = nn.functional.avg_pool2d(x, 4).flatten(1)
        x = self.dropout(self.bn2(x))
        x = torch.relu(self.dropout(self.bn3(self.linear1(x))))
        return torch.sigmoid(self.linear2(x)).squeeze(-1)


def gillick_features(samples_16k: np.ndarray) -> np.ndarray:
    """Time-major (frames, 128) features exactly as the network was trained on: 8 kHz, mel power
    with librosa's Slaney filters, `amplitude_to_db(S, ref=max)` over the whole signal."""
    audio = soxr.resample(samples_16k, SAMPLE_RATE, GILLICK_RATE)
    mel = librosa.feature.melspectrogram(y=audio, sr=GILLICK_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    return librosa.amplitude_to_db(mel, ref=np.max).T.astype(np.float32)


def window_probabilities(
    network: GillickResNet, features: np.ndarray, device: torch.device, stride: int = 1, batch_size: int = 256
) -> np.ndarray:
    """One probability per feature frame: the window starting at that frame (as upstream), scored
    every `stride` frames with linear interpolation in between."""
    frames = len(features)
    padded = np.pad(features, ((0, WINDOW_FRAMES - 1), (0, 0)), mode="edge")  # windows near the end
    starts = np.arange(0, frames, stride)
    if starts[-1] != frames - 1:
        starts = np.append(starts, frames - 1)
    windows = torch.from_numpy(padded).unfold(0, WINDOW_FRAMES, 1)[starts].transpose(1, 2)  # (n, 44, 128)
    scores = []
    with torch.inference_mode():
        for first in range(0, len(windows), batch_size):
            batch = windows[first : first + batch_size].unsqueeze(1).to(device)
            scores.append(network(batch).float().cpu().numpy())
    return np.interp(np.arange(frames), starts, np.concatenate(scores)).astype(np.float32)


def download_checkpoint(url: str, sha256: str, target: Path, max_bytes: int = 50_000_000) -> Path:
    """Fetch the upstream `best.pth.tar` (with the feeds' downloader, `remote.fetch`: resumed,
    retried, bounded, no address inside the network), check its published sha256, and convert it
    to safetensors at `target` (the checkpoint is read with `torch.load(weights_only=True)` only
    after the hash matched: nothing unverified is unpickled). Raises `remote.DownloadError`
    (offline, refused, too large) or ValueError (another file)."""
    from safetensors.torch import save_file

    from ser_pipeline.files import atomic_write, file_sha256
    from ser_pipeline.remote import Limits, fetch

    raw = target.with_name(target.name + ".pth.tar")
    try:
        fetch(url, raw, Limits.from_environment(max_bytes=max_bytes, deadline_s=900.0))
        if file_sha256(raw) != sha256:
            raise ValueError(f"{url} does not match the published sha256 {sha256}; refusing it")
        checkpoint = torch.load(raw, map_location="cpu", weights_only=True)
    finally:
        raw.unlink(missing_ok=True)
    state = checkpoint.get("state_dict", checkpoint)
    state = {key.removeprefix("module."): value.contiguous() for key, value in state.items()}
    # The same metadata as the conversion published beside the project, so the files match.
    metadata = {key: str(checkpoint[key]) for key in ("best_val_loss", "epoch") if key in checkpoint}
    with atomic_write(target) as temporary:
        save_file(state, str(temporary), metadata=metadata)
    return target
