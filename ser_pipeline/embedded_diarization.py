"""Speaker diarization that ships with the project and runs offline: who speaks when, from the
GE2E voice encoder of the `resemblyzer` wheel (see `voice_encoder`).

1. Speech regions: the segments' own spans when they are utterances (voice activity or a
   transcript's sentences), else silero-vad's.
2. Windows of 1.6 s every `hop_s` over each region (a shorter region is one window of its own
   length), each embedded by the voice encoder.
3. One voice when the windows' mean cosine distance is under `one_voice_spread` (GE2E's
   embeddings all lie in one orthant; a voice's own spread stays under it). Otherwise the
   embeddings are centred on their mean (what every voice of the episode shares goes), kept to
   their first `dims` principal components and clustered agglomeratively (average linkage,
   cosine distance) until clusters lie `threshold` apart, at most `max_speakers` of them;
   clusters holding under `min_share` of the windows join their nearest; then every window goes
   to its nearest centroid (twice, the centroids recomputed), so that an early merge does not
   decide a window for good. Windows more than `loud_db` above the episode's median window
   level (shouted, high-arousal speech, which GE2E places about as far from the same voice's
   calm speech as from another voice) are left out of all this and then join the nearest voice
   found: left in, an episode's loudest sentences formed a "voice" of their own.
4. Each 10 ms of a region takes the label of the window centred nearest to it, a window's label
   being the majority of it and its neighbours in the region (turns smoothed); labels are
   `S1`, `S2`, ... in order of first appearance.

Where each region is known to be one speaker's (a transcript's sentences), regions rather than
windows are clustered, each the mean of its windows' embeddings (steps 3 and 4 on those means),
loud ones included: setting them aside did not help there (development sentences of seed 1, DER
0.133 -> 0.160).

The settings were chosen on development voices only (`ser-pipeline train diarization`, whose
episodes of the held-out voices are the final test; see docs/evaluation.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import scipy.cluster.hierarchy
import torch

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.diarization import DiarizationError, Span, Turn, without
from ser_pipeline.voice_encoder import WINDOW_SAMPLES, VoiceEncoderUnavailable, embed_windows, load_voice_encoder

Embedder = Callable[[list[np.ndarray]], np.ndarray]  # 16 kHz windows -> (windows, d) L2-normalised rows


@dataclass(frozen=True)
class ClusteringSettings:
    hop_s: float = 0.8
    one_voice_spread: float = 0.35  # windows whose mean cosine distance is below this are one voice
    dims: int = 20  # principal components of the centred embeddings that are clustered
    threshold: float = 0.9  # cosine distance between clusters at which merging stops
    utterance_threshold: float = 1.0  # the same for utterances (sentences) clustered whole
    max_speakers: int = 8
    min_share: float = 0.08  # a cluster of fewer windows is no speaker of its own
    max_windows: int = 3000  # clustered directly; further windows only join the clusters found
    loud_db: float | None = 10.0  # windows this far above the median level only join the clusters found


@dataclass(frozen=True)
class Windows:
    """Where each embedded window lies: its region's index and its centre, in seconds; its level (dBFS)."""

    region: np.ndarray
    centre_s: np.ndarray
    level_db: np.ndarray


def speech_windows(samples: np.ndarray, regions: list[Span], hop_s: float) -> tuple[list[np.ndarray], Windows]:
    """1.6 s windows every `hop_s` over each region (the last one ending at the region's end);
    a shorter region is one window of its own length."""
    pieces, region_of, centres, levels = [], [], [], []
    length, hop = WINDOW_SAMPLES, int(hop_s * SAMPLE_RATE)
    for index, (start_s, end_s) in enumerate(regions):
        start, end = int(start_s * SAMPLE_RATE), min(int(end_s * SAMPLE_RATE), len(samples))
        if end - start < SAMPLE_RATE // 10:
            continue
        starts = [start] if end - start <= length else [*range(start, end - length, hop), end - length]
        for first in starts:
            piece = samples[first : min(first + length, end)]
            pieces.append(piece)
            region_of.append(index)
            centres.append((first + len(piece) / 2) / SAMPLE_RATE)
            levels.append(10 * np.log10(np.mean(np.square(piece, dtype=np.float64)) + 1e-12))
    return pieces, Windows(np.array(region_of, int), np.array(centres), np.array(levels))


def loud(level_db: np.ndarray, settings: ClusteringSettings) -> np.ndarray:
    """Which windows (or utterances) lie more than `settings.loud_db` above their median level."""
    if settings.loud_db is None or not len(level_db):
        return np.zeros(len(level_db), bool)
    return level_db > np.median(level_db) + settings.loud_db


def cluster(embeddings: np.ndarray, settings: ClusteringSettings, aside: np.ndarray | None = None) -> np.ndarray:
    """A speaker index for each row of L2-normalised `embeddings` (see the module's step 3); rows
    where `aside` is True (loud windows) are not clustered but join the nearest voice found."""
    if aside is not None and aside.any() and (~aside).sum() >= 2:
        kept = np.flatnonzero(~aside)
        found = cluster(embeddings[kept], settings)
        voices = np.unique(found)
        labels = _nearest(embeddings, np.stack([embeddings[kept][found == k].mean(0) for k in voices]))
        labels[kept] = np.searchsorted(voices, found)
        return labels
    n = len(embeddings)
    chosen = np.linspace(0, n - 1, min(n, settings.max_windows)).round().astype(int)
    mean = embeddings[chosen].mean(0)
    if n < 2 or 1 - float(mean @ mean) < settings.one_voice_spread:  # mean of pairwise cosines = |mean|^2
        return np.zeros(n, int)
    _, _, axes = np.linalg.svd(embeddings[chosen] - mean, full_matrices=False)
    embeddings = (embeddings - mean) @ axes[: settings.dims].T
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-8)
    tree = scipy.cluster.hierarchy.linkage(embeddings[chosen], method="average", metric="cosine")
    labels = scipy.cluster.hierarchy.fcluster(tree, settings.threshold, criterion="distance")
    if labels.max() > settings.max_speakers:
        labels = scipy.cluster.hierarchy.fcluster(tree, settings.max_speakers, criterion="maxclust")
    centroids = np.stack([embeddings[chosen][labels == k].mean(0) for k in np.unique(labels)])
    for _ in range(2):
        nearest = _nearest(embeddings, centroids)
        counts = np.bincount(nearest, minlength=len(centroids))
        kept = counts >= max(settings.min_share * n, 1)
        if not kept.any():
            kept = counts == counts.max()
        centroids = centroids[kept]
        nearest = _nearest(embeddings, centroids)
        centroids = np.stack([embeddings[nearest == k].mean(0) for k in range(len(centroids))])
    return _nearest(embeddings, centroids)


def _nearest(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    unit = centroids / np.linalg.norm(centroids, axis=1, keepdims=True).clip(1e-8)
    return np.argmax(embeddings @ unit.T, axis=1)


def smoothed(labels: np.ndarray, windows: Windows) -> np.ndarray:
    """Each window's label the majority of it and its neighbours in the same region (its own on a tie)."""
    out = labels.copy()
    for i in range(len(labels)):
        near = [j for j in (i - 1, i, i + 1) if 0 <= j < len(labels) and windows.region[j] == windows.region[i]]
        counts = Counter(labels[near])
        best = max(counts.values())
        if counts[labels[i]] < best:
            out[i] = counts.most_common(1)[0][0]
    return out


def region_turns(regions: list[Span], labels: np.ndarray, windows: Windows) -> list[Turn]:
    """Each region split where the nearest window's label changes; labels named S1, S2, ... in order."""
    names: dict[int, str] = {}
    turns: list[Turn] = []
    for index, (start_s, end_s) in enumerate(regions):
        mine = np.flatnonzero(windows.region == index)
        if not len(mine):
            continue
        centres, own = windows.centre_s[mine], labels[mine]
        bounds = [start_s, *((centres[1:] + centres[:-1]) / 2), end_s]
        for k, label in enumerate(own):
            name = names.setdefault(int(label), f"S{len(names) + 1}")
            if turns and turns[-1].speaker == name and abs(turns[-1].end_s - bounds[k]) < 1e-9:
                turns[-1] = Turn(turns[-1].start_s, float(bounds[k + 1]), name)
            else:
                turns.append(Turn(float(bounds[k]), float(bounds[k + 1]), name))
    return turns


class EmbeddedDiarizer:
    """`turns(samples, regions)`: who speaks when in a 16 kHz episode. `source` is the option
    that chose it, as the warehouse's `models` records it: `embedded` (or `embedded:N`, at most N
    speakers) labels every segment without a speaker; `auto` (the default) only a transcript's
    sentences without speaker names, where it was measured to help (docs/evaluation.md).
    `embedder` replaces the GE2E voice encoder (the evaluation's MFCC baseline)."""

    label_source = "embedded"

    def __init__(
        self,
        device: torch.device,
        settings: ClusteringSettings | None = None,
        source: str = "embedded",
        sentences_only: bool = False,
        embedder: Embedder | None = None,
    ):
        self.embedder = embedder or partial(embed_windows, load_voice_encoder(device))
        self.settings, self.source, self.sentences_only = settings or ClusteringSettings(), source, sentences_only

    @classmethod
    def load(cls, option: str, device: torch.device) -> EmbeddedDiarizer:
        """From `--diarization auto`, `embedded` or `embedded:N` (at most N speakers an episode, default 8)."""
        name, _, most = option.partition(":")
        if name not in ("embedded", "auto") or (most and not (most.isdigit() and 1 <= int(most) <= 50)):
            raise DiarizationError(f"{option!r}: use auto, embedded, or embedded:N for at most N speakers (1-50)")
        try:
            return cls(device, ClusteringSettings(max_speakers=int(most or 8)), option, sentences_only=name == "auto")
        except VoiceEncoderUnavailable as error:
            raise DiarizationError(str(error)) from None

    def embed(self, samples: np.ndarray, regions: list[Span]) -> tuple[np.ndarray, Windows]:
        pieces, windows = speech_windows(samples, regions, self.settings.hop_s)
        return self.embedder(pieces), windows

    def turns(
        self,
        samples: np.ndarray,
        regions: list[Span] | None = None,
        utterances: bool = False,
        exclude: list[Span] | None = None,
    ) -> list[Turn]:
        """Who speaks when: in `regions` (silero-vad's speech when None) less the spans of `exclude`
        (laughs: no one's speech, and a voice of their own to the clustering), window by window,
        or with `utterances` (each region one speaker's, as a transcript's sentences are) region
        by region, each the mean of its windows' embeddings (clustered to `utterance_threshold`)."""
        if regions is None:
            from ser_pipeline.segmentation import vad_segments

            regions = [(s.start_s, s.end_s) for s in vad_segments(samples)]
        if exclude:
            regions = without(regions, exclude)
        embeddings, windows = self.embed(samples, regions)
        if not len(embeddings):
            return []
        if not utterances:
            labels = cluster(embeddings, self.settings, loud(windows.level_db, self.settings))
            return region_turns(regions, smoothed(labels, windows), windows)
        heard = np.unique(windows.region)
        means = np.stack([embeddings[windows.region == r].mean(0) for r in heard])
        means /= np.linalg.norm(means, axis=1, keepdims=True).clip(1e-8)
        labels = cluster(means, replace(self.settings, threshold=self.settings.utterance_threshold))
        return region_turns(regions, labels[np.searchsorted(heard, windows.region)], windows)
