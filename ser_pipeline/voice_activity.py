"""Silero VAD's speech probabilities for a whole recording in a few batched calls.

silero-vad (MIT, pinned in pyproject) runs its model one 32 ms frame at a time from Python,
carrying an LSTM state between frames: 37 s for an hour of audio on this project's 2-core
machine, the slowest stage of voice-activity segmentation. Nothing in the model needs that
loop but the LSTM: each frame's front end (a fixed STFT over the frame and the 64 samples
before it, four convolutions) reads only its own 576 samples. So the front end runs on
thousands of frames at once and the LSTM cell's weights run as one `nn.LSTM` over the
sequence; the probabilities are the package's own to a few millionths (tested against its
model, frame by frame) and an hour takes about 3 s.

The weights are those of the package's TorchScript file (`silero_vad.jit`, checked against
`SILERO_JIT_SHA256`; TorchScript's own loader, not Python's unpickler), taken as a state dict;
its `silero_vad_16k.safetensors` holds different, older weights and is not used. The package's
code is used only for its timestamp state machine, `get_speech_timestamps_from_probs`.
Importing `silero_vad` sets torch to one thread for the whole process (its `model.py` calls
`torch.set_num_threads(1)`); `speech_timestamps` puts the count back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.files import wheel_file

WHEEL = "silero-vad==6.2.3"
SILERO_JIT_SHA256 = "e1122837f4154c511485fe0b9c64455f7b929c96fbb8d79fbdb336383ebd3720"
FRAME = 512  # samples a probability covers at 16 kHz (32 ms)
CONTEXT = 64  # samples of the frame before, read with each frame
BLOCK_FRAMES = 8192  # frames per batched call (4.4 min of audio; the LSTM state carries across)


class VadUnavailable(RuntimeError):
    """silero-vad is not installed, or its silero_vad.jit is another file than the pinned wheel's."""


def jit_path() -> Path:
    return wheel_file(
        "silero_vad", "data/silero_vad.jit", SILERO_JIT_SHA256, WHEEL, "voice-activity segmentation", VadUnavailable
    )


class SileroVad(nn.Module):
    """Silero VAD v6's 16 kHz model: (frames, 576 samples) -> features; features -> probabilities."""

    def __init__(self):
        super().__init__()
        self.register_buffer("stft_basis", torch.zeros(258, 1, 256))
        self.convs = nn.ModuleList(
            nn.Conv1d(i, o, 3, stride=s, padding=1)
            for i, o, s in ((129, 128, 1), (128, 64, 2), (64, 64, 2), (64, 128, 1))
        )
        self.lstm = nn.LSTM(128, 128)
        self.out = nn.Linear(128, 1)

    @classmethod
    def from_package(cls, path: Path | None = None) -> SileroVad:
        path = jit_path() if path is None else path
        state = torch.jit.load(str(path), map_location="cpu")._model.state_dict()
        model = cls()
        mapped = {"stft_basis": state["stft.forward_basis_buffer"]}
        for i in range(4):
            mapped[f"convs.{i}.weight"] = state[f"encoder.{i}.reparam_conv.weight"]
            mapped[f"convs.{i}.bias"] = state[f"encoder.{i}.reparam_conv.bias"]
        for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            mapped[f"lstm.{part}_l0"] = state[f"decoder.rnn.{part}"]
        mapped["out.weight"] = state["decoder.decoder.2.weight"][:, :, 0]
        mapped["out.bias"] = state["decoder.decoder.2.bias"]
        model.load_state_dict(mapped)
        return model.eval()

    def front_end(self, frames: torch.Tensor) -> torch.Tensor:
        x = F.pad(frames.unsqueeze(1), (0, CONTEXT), mode="reflect")
        x = F.conv1d(x, self.stft_basis, stride=128)
        x = (x[:, :129] ** 2 + x[:, 129:] ** 2).sqrt()
        for conv in self.convs:
            x = F.relu(conv(x))
        return x.squeeze(-1)

    def forward(self, frames: torch.Tensor, state=None):
        hidden, state = self.lstm(self.front_end(frames), state)
        return torch.sigmoid(self.out(F.relu(hidden))).squeeze(-1), state


@lru_cache(maxsize=1)
def vad_model() -> SileroVad:
    return SileroVad.from_package()


def speech_probabilities(samples: np.ndarray, model: SileroVad | None = None) -> np.ndarray:
    """One probability of speech per 512 samples of 16 kHz audio (the last frame zero-padded),
    as silero-vad's model gives them stepping through the audio from a fresh state. The audio is
    read a block at a time (no copy of the whole of it)."""
    model = vad_model() if model is None else model
    count = -(-len(samples) // FRAME)
    probabilities, state = [], None
    with torch.inference_mode():
        for first in range(0, count, BLOCK_FRAMES):
            frames = min(BLOCK_FRAMES, count - first)
            begin, end = first * FRAME - CONTEXT, (first + frames) * FRAME
            # zeros before the first frame's context (as the package) and after the audio's end
            block = np.zeros(end - begin, np.float32)
            piece = samples[max(begin, 0) : end]
            block[max(-begin, 0) : max(-begin, 0) + len(piece)] = piece
            out, state = model(torch.from_numpy(block).unfold(0, CONTEXT + FRAME, FRAME), state)
            probabilities.append(out)
    return torch.cat(probabilities).numpy() if probabilities else np.zeros(0, np.float32)


@dataclass(frozen=True)
class SpeechSpan:
    start_s: float
    end_s: float


def speech_timestamps(samples: np.ndarray, min_speech_s: float = 0.25, min_silence_s: float = 0.3) -> list[SpeechSpan]:
    """silero-vad's speech spans (its `get_speech_timestamps` with these settings, the rest its
    defaults), from the batched probabilities."""
    threads = torch.get_num_threads()
    try:
        from silero_vad.utils_vad import get_speech_timestamps_from_probs
    finally:
        torch.set_num_threads(threads)  # importing silero_vad set it to 1
    spans = get_speech_timestamps_from_probs(
        speech_probabilities(samples).tolist(),
        sampling_rate=SAMPLE_RATE,
        min_speech_duration_ms=int(min_speech_s * 1000),
        min_silence_duration_ms=int(min_silence_s * 1000),
        audio_length_samples=len(samples),
    )
    return [SpeechSpan(span["start"] / SAMPLE_RATE, span["end"] / SAMPLE_RATE) for span in spans]
