"""Valence/arousal/dominance from a wav2vec2 regression model with audEERING's layout.

`audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim` (MSP-Podcast; CC BY-NC-SA 4.0): a
wav2vec2 encoder, mean pooling over time of the last hidden state, then `classifier.dense`
(hidden -> hidden, tanh, dropout) and `classifier.out_proj` (hidden -> 3) whose outputs are
ordered arousal, dominance, valence. Input: 16 kHz waveform normalised per utterance.
Loaded with transformers from a local directory or a hub id (downloaded only when online).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2Model, Wav2Vec2PreTrainedModel

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.devices import autocast_for
from ser_pipeline.registry import ModelNotFoundError, ModelSpec, search_path
from ser_pipeline.schema import DIMENSIONS
from ser_pipeline.segmentation import Segment

AUDEERING_OUTPUT_ORDER = ("arousal", "dominance", "valence")


class RegressionHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(pooled)))))


class Wav2Vec2DimsModel(Wav2Vec2PreTrainedModel):
    """wav2vec2 encoder + mean pooling + regression head; keys `wav2vec2.*`, `classifier.*`."""

    def __init__(self, config):
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config)
        self.classifier = RegressionHead(config)
        self.post_init()

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.wav2vec2(input_values).last_hidden_state.mean(dim=1))


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


class Wav2Vec2DimsScorer:
    """Scores segments of a decoded episode; long segments are cut into chunks of at most
    `max_chunk_s` whose outputs are averaged, weighted by length."""

    def __init__(self, spec: ModelSpec, device: torch.device, explicit: Path | None = None, max_chunk_s: float = 10.0):
        source = resolve_source(spec, explicit)
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        try:
            self.model = Wav2Vec2DimsModel.from_pretrained(source, revision=spec.revision, local_files_only=offline)
        except OSError as error:
            raise ModelNotFoundError(
                f"cannot load {spec.id} from {source!r} ({' '.join(str(error).split())[:200]}). Offline? On a connected "
                f"machine run `hf download {spec.weights}` and put the folder, named {spec.id}, in a folder on "
                "SER_MODEL_PATH"
            ) from None
        self.model.eval().to(device)
        self.device = device
        order = spec.output_order or AUDEERING_OUTPUT_ORDER
        self.columns = [order.index(d) for d in DIMENSIONS]  # model output index for each of our columns
        self.max_chunk = int(max_chunk_s * SAMPLE_RATE)

    @torch.inference_mode()
    def dims_batch(self, wavs: torch.Tensor) -> np.ndarray:
        """(batch, samples) equal-length waveforms -> (batch, 3) valence, arousal, dominance."""
        wavs = wavs.to(self.device)
        wavs = (wavs - wavs.mean(dim=1, keepdim=True)) / torch.sqrt(wavs.var(dim=1, keepdim=True) + 1e-7)
        with autocast_for(self.device):
            out = self.model(wavs).float()
        return out[:, self.columns].clamp(0, 1).cpu().numpy()

    def score(self, samples: np.ndarray, segments: list[Segment], batch_size: int = 8) -> np.ndarray:
        pieces = []  # (segment index, start sample, length)
        for index, segment in enumerate(segments):
            start, end = (
                int(segment.start_s * SAMPLE_RATE),
                max(int(segment.end_s * SAMPLE_RATE), int(segment.start_s * SAMPLE_RATE) + 400),
            )
            count = -(-(end - start) // self.max_chunk)
            bounds = np.linspace(start, end, count + 1).astype(int)
            pieces += [(index, a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]
        by_length: dict[int, list[tuple[int, int, int]]] = {}
        for piece in pieces:
            by_length.setdefault(piece[2], []).append(piece)
        totals = np.zeros((len(segments), len(DIMENSIONS)))
        weights = np.zeros(len(segments))
        padded = np.pad(samples, (0, self.max_chunk))  # a segment may end past the decoded audio
        for length, group in by_length.items():
            for first in range(0, len(group), batch_size):
                chunk = group[first : first + batch_size]
                wavs = torch.from_numpy(np.stack([padded[a : a + length] for _, a, _ in chunk]))
                for (index, _, _), dims in zip(chunk, self.dims_batch(wavs)):
                    totals[index] += dims * length
                    weights[index] += length
        return (totals / weights[:, None]).astype(np.float32)
