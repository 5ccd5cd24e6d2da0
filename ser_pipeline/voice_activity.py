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
its `silero_vad_16k.safetensors` holds different, older weights and is not used. Its timestamp
rules (`get_speech_timestamps_from_probs`) run here incrementally (`SpeechTracker`), so the same
code finds speech in a whole recording and in one still decoding; the tests hold both to the
package's model and rules. The package itself is never imported at run time: importing it sets
torch to one thread for the whole process (its `model.py` calls `torch.set_num_threads(1)`).
"""

from __future__ import annotations

import math
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


class VadStream:
    """silero-vad's probabilities for audio arriving in blocks of any length: frame by frame the
    same as `speech_probabilities` of the whole (the LSTM state and the 64 samples of context
    carried from block to block); `finish` reads the last, partial frame zero-padded."""

    def __init__(self, model: SileroVad | None = None):
        self.model = vad_model() if model is None else model
        self.context = np.zeros(CONTEXT, np.float32)  # zeros before the first frame, as the package
        self.pending = np.zeros(0, np.float32)  # samples short of a whole frame
        self.state = None

    def push(self, block: np.ndarray) -> np.ndarray:
        """The probabilities of the frames that `block` completes."""
        audio = np.asarray(block, np.float32)
        if len(self.pending):
            audio = np.concatenate([self.pending, audio])
        whole = len(audio) // FRAME * FRAME
        self.pending = audio[whole:].copy()
        return self._frames(audio[:whole])

    def finish(self) -> np.ndarray:
        if not len(self.pending):
            return np.zeros(0, np.float32)
        last = np.zeros(FRAME, np.float32)
        last[: len(self.pending)] = self.pending
        self.pending = np.zeros(0, np.float32)
        return self._frames(last)

    def _frames(self, audio: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for first in range(0, len(audio), BLOCK_FRAMES * FRAME):
                piece = audio[first : first + BLOCK_FRAMES * FRAME]
                chunk = np.concatenate([self.context, piece])
                self.context = piece[-CONTEXT:].copy()
                probabilities, self.state = self.model(
                    torch.from_numpy(chunk).unfold(0, CONTEXT + FRAME, FRAME), self.state
                )
                out.append(probabilities.numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def speech_probabilities(samples: np.ndarray, model: SileroVad | None = None) -> np.ndarray:
    """One probability of speech per 512 samples of 16 kHz audio (the last frame zero-padded),
    as silero-vad's model gives them stepping through the audio from a fresh state."""
    stream = VadStream(model)
    return np.concatenate([stream.push(samples), stream.finish()])


@dataclass(frozen=True)
class SpeechSpan:
    start_s: float
    end_s: float


class SpeechTracker:
    """silero-vad's timestamp rules (`get_speech_timestamps_from_probs` with threshold 0.5, 30 ms
    of padding and no maximum speech length, as `speech_timestamps` uses it) fed probabilities as
    they arrive: a span is given once the silence after it is long enough, and `finish` closes the
    last at the audio's end. The package pads two spans apart by half the silence between them
    when it is under twice the padding; the minimum silence here is at least that, so a span's
    padding never waits for the next one. The same spans as the package's on the whole (tested)."""

    def __init__(self, min_speech_s: float = 0.25, min_silence_s: float = 0.3, threshold: float = 0.5):
        pad_ms = 30
        if min_silence_s * 1000 < 2 * pad_ms:
            raise ValueError(f"min_silence_s {min_silence_s} is under twice the padding ({2 * pad_ms} ms)")
        # the package's own formulas (floats, as it compares them)
        self.min_speech = SAMPLE_RATE * int(min_speech_s * 1000) / 1000
        self.min_silence = SAMPLE_RATE * int(min_silence_s * 1000) / 1000
        self.pad = SAMPLE_RATE * pad_ms / 1000
        self.threshold, self.negative = threshold, max(threshold - 0.15, 0.01)
        self.frames = 0
        self.start: int | None = None  # the open speech's first sample
        self.silent_from = 0  # where the silence inside the open speech began (0: none)

    def push(self, probabilities: np.ndarray) -> list[SpeechSpan]:
        spans = []
        for probability in probabilities.tolist():
            sample = FRAME * self.frames
            self.frames += 1
            if probability >= self.threshold:
                self.silent_from = 0
                if self.start is None:
                    self.start = sample
                continue
            if probability < self.negative and self.start is not None:
                if not self.silent_from:
                    self.silent_from = sample
                if sample - self.silent_from < self.min_silence:
                    continue
                if self.silent_from - self.start > self.min_speech:
                    spans.append(self._padded(self.start, self.silent_from, math.inf))
                self.start, self.silent_from = None, 0
        return spans

    def finish(self, total_samples: int) -> list[SpeechSpan]:
        """The open speech, if long enough, closed at the audio's end."""
        start, self.start, self.silent_from = self.start, None, 0
        if start is None or total_samples - start <= self.min_speech:
            return []
        return [self._padded(start, total_samples, total_samples)]

    def _padded(self, start: int, end: int, total_samples: float) -> SpeechSpan:
        return SpeechSpan(
            int(max(0, start - self.pad)) / SAMPLE_RATE, int(min(total_samples, end + self.pad)) / SAMPLE_RATE
        )

    @property
    def pending_start_s(self) -> float:
        """The earliest start a span still to be given can have."""
        first = self.start if self.start is not None else FRAME * self.frames
        return max(0.0, first - self.pad) / SAMPLE_RATE


def speech_timestamps(samples: np.ndarray, min_speech_s: float = 0.25, min_silence_s: float = 0.3) -> list[SpeechSpan]:
    """silero-vad's speech spans of a whole recording (its `get_speech_timestamps` with these
    settings, the rest its defaults): the same stream and rules as while decoding."""
    stream, tracker = VadStream(), SpeechTracker(min_speech_s, min_silence_s)
    spans = tracker.push(stream.push(samples))
    return spans + tracker.push(stream.finish()) + tracker.finish(len(samples))
