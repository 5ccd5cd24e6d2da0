"""Emotion from any Hugging Face audio-classification checkpoint, its labels mapped onto ours.

A registry entry with architecture `hf-audio-classification` names a hub id or a local
directory (`weights`) and, in `options.label_map`, what each of the checkpoint's labels means
among our seven emotions (null: ignore that label). Labels with common names (neu, hap, ang,
anger, joy, ...) need no entry. The checkpoint's own feature extractor prepares the waveform;
segments longer than `max_chunk_s` are scored in chunks whose probabilities are averaged.
Probabilities of the mapped labels are summed per emotion and renormalised; sentiment is the
sum over its emotions. Emotions no label maps to get probability 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.devices import autocast_for
from ser_pipeline.hf_models import load_pretrained, resolve_source, score_in_chunks
from ser_pipeline.registry import ModelSpec
from ser_pipeline.schema import EMOTIONS, SENTIMENT_OF_EMOTION
from ser_pipeline.segmentation import Segment

COMMON_LABELS = {
    **{e: e for e in EMOTIONS},
    "neu": "neutral",
    "calm": "neutral",
    "hap": "happy",
    "happiness": "happy",
    "joy": "happy",
    "exc": "happy",
    "excited": "happy",
    "ang": "angry",
    "anger": "angry",
    "sad": "sad",
    "sadness": "sad",
    "fearful": "fear",
    "fea": "fear",
    "dis": "disgust",
    "disgusted": "disgust",
    "sur": "surprise",
    "surprised": "surprise",
}


def label_matrix(id2label: dict[int, str], label_map: dict[str, str | None], model_id: str) -> np.ndarray:
    """(model labels, 7) 0/1 matrix: which of our emotions each of the checkpoint's labels is."""
    matrix = np.zeros((len(id2label), len(EMOTIONS)), np.float32)
    for index, label in sorted(id2label.items()):
        key = label if label in label_map else label.lower()
        target = label_map[key] if key in label_map else COMMON_LABELS.get(key, "unknown")
        if target is None:
            continue
        if target not in EMOTIONS:
            raise ValueError(
                f"model {model_id}: label {label!r} has no meaning among {', '.join(EMOTIONS)}; add it to the "
                f'registry entry\'s options.label_map (e.g. "{label}": "neutral", or null to ignore it)'
            )
        matrix[int(index), EMOTIONS.index(target)] = 1.0
    if not matrix.any():
        raise ValueError(f"model {model_id}: none of its labels {list(id2label.values())} maps onto our emotions")
    return matrix


class AudioClassifierScorer:
    """Scores the segments of a decoded episode with a transformers audio classifier."""

    def __init__(self, spec: ModelSpec, device: torch.device, explicit: Path | None = None, max_chunk_s: float = 10.0):
        source = resolve_source(spec, explicit)
        self.extractor = load_pretrained(AutoFeatureExtractor, spec, source)
        self.model = load_pretrained(AutoModelForAudioClassification, spec, source).eval().to(device)
        self.device = device
        labels = {int(i): name for i, name in self.model.config.id2label.items()}
        self.to_emotions = torch.from_numpy(label_matrix(labels, spec.options.get("label_map", {}), spec.id))
        self.temperature = float(spec.options.get("temperature", {}).get("emotion", 1.0))
        self.max_chunk_s = max_chunk_s

    @torch.inference_mode()
    def label_probabilities(self, wavs: torch.Tensor) -> np.ndarray:
        """(batch, samples) equal-length 16 kHz waveforms -> (batch, model labels) probabilities."""
        inputs = self.extractor(list(wavs.numpy()), sampling_rate=SAMPLE_RATE, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with autocast_for(self.device):
            logits = self.model(**inputs).logits.float()
        return torch.softmax(logits / self.temperature, -1).cpu().numpy()

    def emotions(self, wavs: torch.Tensor) -> np.ndarray:
        """(batch, samples) -> (batch, 7) probabilities of our emotions."""
        mapped = torch.from_numpy(self.label_probabilities(wavs)) @ self.to_emotions
        return (mapped / mapped.sum(-1, keepdim=True).clamp(min=1e-12)).numpy()

    def score(self, samples: np.ndarray, segments: list[Segment], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """(segments, 7) emotion and (segments, 3) sentiment probabilities."""
        emotion = score_in_chunks(samples, segments, self.emotions, len(EMOTIONS), self.max_chunk_s, batch_size)
        return emotion, emotion @ SENTIMENT_OF_EMOTION
