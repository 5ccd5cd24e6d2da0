"""Valence/arousal/dominance from a wav2vec2 regression model with audEERING's layout.

`audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim` (MSP-Podcast; CC BY-NC-SA 4.0): a
wav2vec2 encoder, mean pooling over time of the last hidden state, then `classifier.dense`
(hidden -> hidden, tanh, dropout) and `classifier.out_proj` (hidden -> 3) whose outputs are
ordered arousal, dominance, valence. Input: 16 kHz waveform normalised per utterance.
Loaded with transformers from a local directory or a hub id (downloaded only when online).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import Wav2Vec2Model, Wav2Vec2PreTrainedModel

from ser_pipeline.devices import autocast_for
from ser_pipeline.hf_models import load_pretrained, resolve_source, score_in_chunks
from ser_pipeline.registry import ModelSpec
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


class Wav2Vec2DimsScorer:
    """Scores segments of a decoded episode; long segments are cut into chunks of at most
    `max_chunk_s` whose outputs are averaged, weighted by length."""

    def __init__(self, spec: ModelSpec, device: torch.device, explicit: Path | None = None, max_chunk_s: float = 10.0):
        self.model = load_pretrained(Wav2Vec2DimsModel, spec, resolve_source(spec, explicit))
        self.model.eval().to(device)
        self.device = device
        order = spec.output_order or AUDEERING_OUTPUT_ORDER
        self.columns = [order.index(d) for d in DIMENSIONS]  # model output index for each of our columns
        self.max_chunk_s = max_chunk_s

    @torch.inference_mode()
    def dims_batch(self, wavs: torch.Tensor) -> np.ndarray:
        """(batch, samples) equal-length waveforms -> (batch, 3) valence, arousal, dominance."""
        wavs = wavs.to(self.device)
        wavs = (wavs - wavs.mean(dim=1, keepdim=True)) / torch.sqrt(wavs.var(dim=1, keepdim=True) + 1e-7)
        with autocast_for(self.device):
            out = self.model(wavs).float()
        return out[:, self.columns].clamp(0, 1).cpu().numpy()

    def score(self, samples: np.ndarray, segments: list[Segment], batch_size: int = 8) -> np.ndarray:
        """(segments, 3) valence, arousal, dominance; long segments averaged over their chunks."""
        return score_in_chunks(samples, segments, self.dims_batch, len(DIMENSIONS), self.max_chunk_s, batch_size)
