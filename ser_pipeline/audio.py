"""Decoding: any supported file to 16 kHz mono float32, once per episode, in bounded blocks.

The source is read block by block (soundfile for wav/flac/mp3/ogg, PyAV's FFmpeg for
m4a/aac/mp4/opus), each block is downmixed and fed to a streaming soxr resampler, so the
source-rate channels are only ever held one block at a time. `decode` keeps the whole 16 kHz
result; `Decoding.blocks` hands the blocks on one by one (optionally from a thread), so that
the pipeline can keep only their log-mel frames.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Full, Queue
from typing import TypeVar

import numpy as np
import soundfile as sf
import soxr

T = TypeVar("T")
SAMPLE_RATE = 16_000
_BLOCK_SECONDS = 30
_SOUNDFILE_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


class AudioError(ValueError):
    """A file that cannot be decoded; the message is one line fit for the episodes table."""


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    source_rate: int
    source_channels: int
    warnings: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class Source:
    rate: int
    channels: int
    declared_frames: int | None  # what the header claims, which a damaged file may overstate


def downmix(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> mono: the channels' mean, as one matrix-vector product (numpy's
    mean over a short axis is ~30x slower, as slow as decoding the MP3 itself)."""
    return block @ np.full(block.shape[1], 1 / block.shape[1], dtype=block.dtype)


def _soundfile_blocks(path: Path) -> tuple[Source, Iterator[np.ndarray]]:
    with _quiet_native_stderr():  # libmpg123 prints "Note: Illegal Audio-MPEG-Header" while probing
        try:
            handle = sf.SoundFile(path)
        except sf.LibsndfileError as error:
            # For bytes it cannot parse as its format libsndfile says "File does not exist or is
            # not a regular file (possibly a pipe?)" of a file that exists: say what is true.
            raise AudioError(f"not decodable audio: no {path.suffix} audio found in the file") from error

    def blocks() -> Iterator[np.ndarray]:
        # Plain reads until one comes back empty: SoundFile.blocks() trusts the header's frame
        # count and pads a truncated file out to it.
        with handle:
            while len(block := handle.read(handle.samplerate * _BLOCK_SECONDS, dtype="float32", always_2d=True)):
                yield downmix(block)

    return Source(handle.samplerate, handle.channels, handle.frames), blocks()


def _ffmpeg_blocks(path: Path) -> tuple[Source, Iterator[np.ndarray]]:
    import av  # only m4a/aac/mp4/opus need FFmpeg

    container = av.open(str(path))
    if not container.streams.audio:
        container.close()
        raise AudioError("no audio stream in the file")
    stream = container.streams.audio[0]
    rate, channels = stream.rate or stream.codec_context.sample_rate, stream.codec_context.channels
    to_planar_float = av.AudioResampler(format="fltp", rate=rate)

    def blocks() -> Iterator[np.ndarray]:
        with container:
            for frame in container.decode(stream):
                for planar in to_planar_float.resample(frame):
                    yield planar.to_ndarray().mean(axis=0, dtype=np.float32)

    return Source(rate, channels, None), blocks()


def iter_blocks(path: Path) -> tuple[Source, Iterator[np.ndarray]]:
    """The source's format and an iterator of mono float32 blocks at the source rate."""
    if not path.is_file():
        raise AudioError(f"audio file not found: {path.name}")
    if path.stat().st_size == 0:
        raise AudioError("audio file is empty (0 bytes)")
    try:
        if path.suffix.lower() in _SOUNDFILE_SUFFIXES:
            return _soundfile_blocks(path)
        return _ffmpeg_blocks(path)
    except AudioError:
        raise
    except (
        sf.LibsndfileError,
        RuntimeError,
        OSError,
        ValueError,
    ) as error:  # FFmpeg's InvalidDataError is a ValueError
        raise AudioError(f"cannot decode {path.suffix} audio: {_one_line(error)}") from None


_NATIVE_NOISE = (b"Note: ", b"Warning: ", b"[src/libmpg123")


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Capture what native decoders write straight to file descriptor 2 while inside; pass on
    every line that is not their probing noise, so nothing else written meanwhile is lost."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not line.startswith(_NATIVE_NOISE)]
            if kept:
                os.write(2, b"".join(kept))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


class GrowingArray:
    """Rows appended into one preallocated array. Capacity beyond the rows written costs no
    memory (the pages are never touched), so an estimate from a file's header is allocated
    whole; it grows by half when the estimate was short."""

    def __init__(self, capacity: int, row_shape: tuple[int, ...] = (), dtype=np.float32):
        self._data = np.empty((max(capacity, 1), *row_shape), dtype=dtype)
        self.rows = 0

    def append(self, rows: np.ndarray) -> None:
        if self.rows + len(rows) > len(self._data):
            grown = np.empty(
                (max(self.rows + len(rows), len(self._data) * 3 // 2), *self._data.shape[1:]), self._data.dtype
            )
            grown[: self.rows] = self._data[: self.rows]
            self._data = grown
        self._data[self.rows : self.rows + len(rows)] = rows
        self.rows += len(rows)

    def array(self) -> np.ndarray:
        return self._data[: self.rows]


class SampleTail:
    """The latest stretch of a stream of samples: blocks appended at the end, dropped from the
    start once nothing will read them, read by absolute sample index. Holds what is still to be
    read rather than the whole stream (an hour of 16 kHz float32 is 230 MB)."""

    def __init__(self) -> None:
        self._blocks: list[tuple[int, np.ndarray]] = []  # (absolute index of the first sample, block)
        self.end = 0  # absolute index one past the last sample appended

    def append(self, block: np.ndarray) -> None:
        if len(block):
            self._blocks.append((self.end, block))
            self.end += len(block)

    def drop_before(self, index: int) -> None:
        """Forget the blocks that end at or before absolute sample `index`."""
        while self._blocks and self._blocks[0][0] + len(self._blocks[0][1]) <= index:
            self._blocks.pop(0)

    @property
    def start(self) -> int:
        """Absolute index of the first sample still held."""
        return self._blocks[0][0] if self._blocks else self.end

    def read(self, first: int, last: int) -> np.ndarray:
        """Samples [first, last) (absolute; `last` clipped to the end appended so far)."""
        if first < self.start:
            raise ValueError(f"samples from {first} were dropped (held from {self.start})")
        last = min(last, self.end)
        parts = [
            block[max(first - at, 0) : max(last - at, 0)]
            for at, block in self._blocks
            if at < last and at + len(block) > first
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class Decoding:
    """One streaming pass over a file: `blocks()` yields 16 kHz mono float32 blocks; once they
    are exhausted, `samples` (their count) and `warnings` hold. The source-rate channels are
    only ever held one block at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.source, self._blocks = iter_blocks(path)
        self.samples = 0
        self.warnings: tuple[str, ...] = ()

    @property
    def expected_samples(self) -> int:
        """The 16 kHz length the header announces (10 minutes when it announces none)."""
        frames = self.source.declared_frames
        return int(frames * SAMPLE_RATE / self.source.rate) + SAMPLE_RATE if frames else 600 * SAMPLE_RATE

    def blocks(self, background: bool = False) -> Iterator[np.ndarray]:
        """16 kHz mono blocks. With `background`, decoding and resampling run in a thread, a
        few blocks ahead of whatever the caller does with each block."""
        return InBackground(self._resampled()) if background else self._resampled()

    def _resampled(self) -> Iterator[np.ndarray]:
        self._counts = {"source_frames": 0, "clipped": 0, "nonfinite": 0}
        resampler = soxr.ResampleStream(self.source.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        for block in self._checked_source_blocks():
            out = resampler.resample_chunk(block)
            self.samples += len(out)
            yield out
        out = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        self.samples += len(out)
        yield out
        if self.samples == 0:
            raise AudioError("audio file holds no samples")
        self.warnings = self._warnings(**self._counts)

    def _checked_source_blocks(self) -> Iterator[np.ndarray]:
        """Mono blocks at the source rate, NaN/inf replaced by silence, clipping counted."""
        counts = self._counts
        try:
            for block in self._blocks:
                counts["source_frames"] += len(block)
                counts["clipped"] += int(np.count_nonzero(np.abs(block) >= 0.999))
                bad = ~np.isfinite(block)
                if bad.any():
                    counts["nonfinite"] += int(bad.sum())
                    block = np.where(bad, np.float32(0), block)
                yield block
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as error:
            if not counts["source_frames"]:
                raise AudioError(f"cannot decode {self.path.suffix} audio: {_one_line(error)}") from None
            raise AudioError(
                f"decoding stopped after {counts['source_frames'] / self.source.rate:.1f}s: {_one_line(error)}"
            ) from None

    def _warnings(self, source_frames: int, clipped: int, nonfinite: int) -> tuple[str, ...]:
        source, warnings = self.source, []
        if source.declared_frames and source_frames < 0.99 * source.declared_frames:
            warnings.append(
                f"file is truncated or its header overstates its length: decoded {source_frames / source.rate:.1f}s "
                f"of the {source.declared_frames / source.rate:.1f}s declared"
            )
        if clipped > 0.001 * source_frames:
            warnings.append(f"{clipped / source_frames:.1%} of samples are clipped: scores may be unreliable")
        if nonfinite:
            warnings.append(f"{nonfinite} NaN/inf sample(s) replaced by silence")
        return tuple(warnings)


def decode(path: Path) -> DecodedAudio:
    """Decode, downmix and resample a whole file to 16 kHz mono float32."""
    decoding = Decoding(path)
    samples = GrowingArray(decoding.expected_samples)
    for block in decoding.blocks():
        samples.append(block)
    return DecodedAudio(samples.array(), decoding.source.rate, decoding.source.channels, decoding.warnings)


class InBackground(Iterator[T]):
    """`items`, produced by a thread up to `depth` ahead of the consumer. Decoding (libsndfile,
    soxr) and the log-mel pass (torch) both release the GIL, so they run on two cores at once.
    An exception in the producer is raised in the consumer; a consumer that stops early (or
    drops the iterator) stops the producer. Inside `held()` the producer starts no new item, so
    long work of the consumer's has the cores to itself."""

    _finished = object()

    def __init__(self, items: Iterator[T], depth: int = 3):
        self._queue: Queue = Queue(maxsize=depth)
        self._stop, self._running = threading.Event(), threading.Event()
        self._running.set()
        self._items = items
        self._thread = threading.Thread(target=self._produce, name="decoder", daemon=True)
        self._thread.start()

    def _put(self, entry: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._running.wait(0.1):  # held
                    continue
                item = next(self._items, self._finished)
                if not self._put((item, None)) or item is self._finished:
                    return
        except BaseException as error:  # handed to the consumer, raised there
            self._put((self._finished, error))

    def __next__(self) -> T:
        while True:
            try:
                item, error = self._queue.get(timeout=0.1)
            except Empty:
                if not self._thread.is_alive():
                    self._stop.set()
                    raise RuntimeError("the decoding thread ended without a result") from None
                continue
            if item is self._finished:
                self._stop.set()
                if error is not None:
                    raise error
                raise StopIteration
            return item

    @contextmanager
    def held(self) -> Iterator[None]:
        self._running.clear()
        try:
            yield
        finally:
            self._running.set()

    def close(self) -> None:
        self._stop.set()

    def __del__(self) -> None:
        self._stop.set()
