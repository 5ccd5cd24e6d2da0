"""Acoustic front end (torchaudio, on the inference device): log-mel frames and MFCCs.

One log-mel pass over the whole episode feeds every model: the emotion network reads the
frames of each segment, the laughter network reads them all. The pass runs in chunks of
frames with exact edges, so memory stays bounded and chunked = unchunked.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio

from ser_pipeline.audio import SAMPLE_RATE, GrowingArray


@dataclass(frozen=True)
class FrontEndConfig:
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms: 100 frames per second
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 8000.0
    n_mfcc: int = 20

    @property
    def frames_per_second(self) -> float:
        return SAMPLE_RATE / self.hop_length


class LogMel(torch.nn.Module):
    """Waveform -> natural-log mel power frames, time-major: (..., frames, n_mels).

    Frame t covers samples [t*hop - n_fft/2, t*hop + n_fft/2) with zeros outside the signal,
    so a file of N samples has N // hop + 1 frames.
    """

    def __init__(self, config: FrontEndConfig = FrontEndConfig()):
        super().__init__()
        self.config = config
        self.spectrum = torchaudio.transforms.Spectrogram(
            n_fft=config.n_fft, win_length=config.win_length, hop_length=config.hop_length, center=False, power=None
        )
        self.mel_scale = torchaudio.transforms.MelScale(
            config.n_mels, SAMPLE_RATE, config.f_min, config.f_max, n_stft=config.n_fft // 2 + 1
        )

    def forward(self, framed_signal: torch.Tensor) -> torch.Tensor:
        # Power as re^2 + im^2: torch's complex abs (a hypot per bin), squared, took 4x as long.
        real, imaginary = torch.view_as_real(self.spectrum(framed_signal)).unbind(-1)
        power = real * real + imaginary * imaginary
        return torch.log(self.mel_scale(power) + 1e-6).transpose(-1, -2)

    def frames(self, signal: torch.Tensor) -> torch.Tensor:
        """Frames of whole signals (..., samples), zero-padded at both ends like `episode`."""
        half = self.config.n_fft // 2
        return self(torch.nn.functional.pad(signal, (half, half)))

    def frame_count(self, n_samples: int) -> int:
        return n_samples // self.config.hop_length + 1

    def episode(self, samples: np.ndarray, device: torch.device, chunk_frames: int = 6000) -> torch.Tensor:
        """Log-mel frames of a whole episode, (frames, n_mels), computed chunk by chunk on `device`."""
        stream = LogMelStream(self, device, len(samples), chunk_frames)
        stream.push(samples)
        return stream.finish()


class LogMelStream:
    """Log-mel frames of an episode fed block by block (as it is decoded), equal to
    `LogMel.episode` on the whole signal: only the frames and one block are ever held."""

    def __init__(self, front_end: LogMel, device: torch.device, expected_samples: int, chunk_frames: int = 6000):
        self.front_end, self.device, self.chunk_frames = front_end, device, chunk_frames
        config = front_end.config
        self.hop, self.n_fft = config.hop_length, config.n_fft
        self.frames = GrowingArray(front_end.frame_count(expected_samples), (config.n_mels,))
        # Samples not yet fully consumed, in the signal padded by n_fft/2 zeros in front;
        # `offset` is the padded index of pending[0].
        self.pending = np.zeros(self.n_fft // 2, np.float32)
        self.offset = 0
        self.samples = 0

    @torch.inference_mode()
    def _emit(self, available_frames: int) -> None:
        first = self.frames.rows
        for start in range(first, available_frames, self.chunk_frames):
            count = min(self.chunk_frames, available_frames - start)
            begin = start * self.hop - self.offset
            piece = torch.from_numpy(self.pending[begin : begin + (count - 1) * self.hop + self.n_fft])
            if self.device.type == "cuda":  # page-locked, so that the copy runs beside the GPU's work
                piece = piece.pin_memory().to(self.device, non_blocking=True)
            self.frames.append(self.front_end(piece.to(self.device)).cpu().numpy())
        consumed = self.frames.rows * self.hop - self.offset
        self.pending, self.offset = self.pending[consumed:], self.offset + consumed

    def push(self, block: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, np.asarray(block, dtype=np.float32)])
        self.samples += len(block)
        self._emit((self.offset + len(self.pending) - self.n_fft) // self.hop + 1)

    def frames_so_far(self) -> torch.Tensor:
        """The frames emitted so far; they do not change as more samples arrive."""
        return torch.from_numpy(self.frames.array())

    def finish(self) -> torch.Tensor:
        """All frames: N samples give N // hop + 1, zeros standing in past both ends."""
        total = self.front_end.frame_count(self.samples)
        needed = (total - 1) * self.hop + self.n_fft - self.offset
        self.pending = np.concatenate([self.pending, np.zeros(max(needed - len(self.pending), 0), np.float32)])
        self._emit(total)
        return torch.from_numpy(self.frames.array())


def mfcc_from_logmel(logmel: torch.Tensor, n_mfcc: int) -> torch.Tensor:
    """MFCCs (orthonormal DCT-II of the log-mel frames), (..., frames, n_mfcc)."""
    dct = torchaudio.functional.create_dct(n_mfcc, logmel.shape[-1], norm="ortho").to(logmel)
    return logmel @ dct


def fused_features(logmel: torch.Tensor, n_mfcc: int) -> torch.Tensor:
    """The emotion network's input per frame: log-mel and MFCC side by side."""
    return torch.cat([logmel, mfcc_from_logmel(logmel, n_mfcc)], dim=-1)


def frame_span(start_s: float, end_s: float, frames_per_second: float, total_frames: int) -> tuple[int, int]:
    """Frame indices [first, last) whose centres lie in [start_s, end_s); at least one frame."""
    first = min(max(math.ceil(start_s * frames_per_second - 1e-6), 0), total_frames - 1)
    last = min(max(math.ceil(end_s * frames_per_second - 1e-6), first + 1), total_frames)
    return first, last


def _frame_energy(x: np.ndarray) -> np.ndarray:
    """Log of each frame's summed mel power (a log-sum-exp over the bands)."""
    peak = x.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(x - peak).sum(axis=1, keepdims=True)))[:, 0]


def voiced_span(logmel: torch.Tensor, floor_nats: float = 7.0, margin_frames: int = 5) -> tuple[int, int]:
    """[first, last) frames from the first to the last whose energy is within `floor_nats`
    (about 30 dB) of the loudest one, plus a small margin: leading and trailing pauses cut.
    In numpy: called once per segment on a few hundred frames, where torch's per-op overhead
    (and, with many cores, its thread pool) cost 4 ms a call beside a busy decoder."""
    energy = _frame_energy(logmel.detach().float().cpu().numpy())
    loud = np.flatnonzero(energy >= energy.max() - floor_nats)
    first = max(int(loud[0]) - margin_frames, 0)
    last = min(int(loud[-1]) + 1 + margin_frames, len(energy))
    return first, last


@functools.cache
def _dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    return torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho").numpy()


def utterance_statistics(logmel: torch.Tensor, n_mfcc: int) -> torch.Tensor:
    """A fixed-length description of one utterance's (voiced) log-mel frames: per band the mean,
    standard deviation, 10th and 90th percentile and the spread of frame-to-frame change; mean
    and deviation of the MFCCs; mean, deviation and range of frame energy. (5 * n_mels + 2 *
    n_mfcc + 3 values; deviations with Bessel's correction; percentiles interpolated linearly.)
    Its length carries no weight: a sentence's length is its content. Computed in numpy, which
    reduces over frames ten times faster than torch on CPU: the pipeline does this per segment."""
    x = logmel.detach().float().cpu().numpy()
    if len(x) < 3:
        x = np.resize(x, (3, x.shape[1])) if len(x) else np.zeros((3, x.shape[1]), np.float32)
    ordered = np.sort(x, axis=0)
    percentiles = []
    for level in (0.1, 0.9):
        position = level * (len(x) - 1)
        low, fraction = int(position), position - int(position)
        percentiles.append(ordered[low] * (1 - fraction) + ordered[min(low + 1, len(x) - 1)] * fraction)
    mfcc = x @ _dct_matrix(x.shape[1], n_mfcc)
    energy = _frame_energy(x)
    values = [
        x.mean(0),
        x.std(0, ddof=1),
        *percentiles,
        np.diff(x, axis=0).std(0, ddof=1),
        mfcc.mean(0),
        mfcc.std(0, ddof=1),
        [energy.mean(), energy.std(ddof=1), energy.max() - energy.min()],
    ]
    return torch.from_numpy(np.concatenate(values).astype(np.float32))
