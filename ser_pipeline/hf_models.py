"""What the Hugging Face (transformers) plug-in models share: finding a checkpoint, loading it
with a clear error when offline, and scoring segments in equal-length chunks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.registry import ModelNotFoundError, ModelSpec, search_path
from ser_pipeline.segmentation import Segment

MIN_CHUNK_SAMPLES = 400  # 25 ms: wav2vec2's feature encoder needs at least this much


def resolve_source(spec: ModelSpec, explicit: Path | None = None) -> str:
    """A local directory holding the model (explicit, or named after the model in a search-path
    folder), else the hub id itself for transformers to fetch or find in its cache."""
    names = (spec.id, spec.weights.rsplit("/", 1)[-1])
    candidates = [explicit] if explicit else [folder / name for folder in search_path() for name in names]
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return str(candidate)
    if explicit:
        raise ModelNotFoundError(f"{explicit} holds no config.json of a transformers model")
    return spec.weights


def load_pretrained(loader: Callable, spec: ModelSpec, source: str):
    """`loader.from_pretrained(source)` at the registered revision; offline (HF_HUB_OFFLINE=1) only
    from local files; a missing model becomes a ModelNotFoundError that says what to do."""
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if source == spec.weights and spec.revision is None:  # from the hub, at whatever it holds today
        raise ModelNotFoundError(
            f"{spec.id} has no pinned revision, so it is not downloaded. On a connected machine run "
            f"`hf download {spec.weights} --revision <commit you reviewed>` and put the folder, named {spec.id}, "
            "in a folder on SER_MODEL_PATH (or give it a revision in your own registry file, SER_REGISTRY)"
        )
    try:
        return loader.from_pretrained(source, revision=spec.revision, local_files_only=offline)
    except OSError as error:
        raise ModelNotFoundError(
            f"cannot load {spec.id} from {source!r} ({' '.join(str(error).split())[:200]}). Offline? On a connected "
            f"machine run `hf download {spec.weights}` and put the folder, named {spec.id}, in a folder on "
            "SER_MODEL_PATH"
        ) from None


def score_in_chunks(
    samples: np.ndarray,
    segments: list[Segment],
    batch: Callable[[torch.Tensor], np.ndarray],
    width: int,
    max_chunk_s: float,
    batch_size: int = 8,
) -> np.ndarray:
    """Cut each segment into chunks of at most `max_chunk_s`, run `batch` ((batch, samples)
    waveforms of one length -> (batch, outputs)) on chunks of equal length, and average each
    segment's chunk outputs weighted by length: (segments, width)."""
    max_chunk = int(max_chunk_s * SAMPLE_RATE)
    pieces = []  # (segment index, start sample, length)
    for index, segment in enumerate(segments):
        start = int(segment.start_s * SAMPLE_RATE)
        end = max(int(segment.end_s * SAMPLE_RATE), start + MIN_CHUNK_SAMPLES)
        count = -(-(end - start) // max_chunk)
        bounds = np.linspace(start, end, count + 1).astype(int)
        pieces += [(index, a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]
    by_length: dict[int, list[tuple[int, int, int]]] = {}
    for piece in pieces:
        by_length.setdefault(piece[2], []).append(piece)
    totals = np.zeros((len(segments), width))
    weights = np.zeros(len(segments))
    padded = np.pad(samples, (0, max_chunk))  # a segment may end past the decoded audio
    for length, group in by_length.items():
        for first in range(0, len(group), batch_size):
            chunk = group[first : first + batch_size]
            outputs = batch(torch.from_numpy(np.stack([padded[a : a + length] for _, a, _ in chunk])))
            for (index, _, _), values in zip(chunk, outputs):
                totals[index] += values * length
                weights[index] += length
    return (totals / weights[:, None]).astype(np.float32)
