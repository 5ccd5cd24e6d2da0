"""Network architectures. They know tensors and shapes, nothing about files or training.

Every network here is exact under batching: a padded batch gives the same outputs as each
item alone, because padding is re-zeroed after every layer (so convolutions see the same
zeros as their own padding), recurrences are packed and pooling is masked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def lengths_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(batch, max_length) bool: True on real frames."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def masked_cmvn(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean and variance normalisation over real frames; (batch, time, feat)."""
    weights = mask[..., None].to(x.dtype)
    count = weights.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (x * weights).sum(dim=1, keepdim=True) / count
    var = (((x - mean) * weights) ** 2).sum(dim=1, keepdim=True) / count
    return (x - mean) / torch.sqrt(var + 1e-5) * weights


class MetadataConfig:
    """Round-trips a flat dataclass of ints, floats and int tuples through safetensors metadata
    (a str -> str map), so that weights files describe their own architecture."""

    def to_metadata(self) -> dict[str, str]:
        return {k: ",".join(map(str, v)) if isinstance(v, tuple) else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]):
        defaults, values = cls(), {}
        for f in fields(cls):
            if f.name in metadata:
                default, raw = getattr(defaults, f.name), metadata[f.name]
                values[f.name] = (
                    tuple(int(v) for v in raw.split(",")) if isinstance(default, tuple) else type(default)(raw)
                )
        return cls(**values)


@dataclass(frozen=True)
class EmotionNetConfig(MetadataConfig):
    n_features: int = 84
    channels: tuple[int, ...] = (96, 96, 128)
    kernel_size: int = 5
    lstm_hidden: int = 96
    dropout: float = 0.3
    n_emotions: int = 7
    n_sentiments: int = 3
    n_dims: int = 3
    n_mels: int = 64  # the first n_mels features are log-mel (the rest MFCC): `utterance_level` reads them
    speaker_context: int = 0  # 1: the heads also read how the utterance departs from its speaker's others
    context_min_segments: int = 8  # a speaker heard in fewer segments gives no context

    @property
    def level_width(self) -> int:
        """Width of `utterance_level` when the heads read it (speaker context), else 0."""
        return self.n_features + 2 if self.speaker_context else 0


def utterance_level(features: torch.Tensor, n_mels: int) -> torch.Tensor:
    """How loud and how bright one utterance is (time, n_features), which per-utterance
    normalisation removes: the mean features of its louder half of frames (louder: summed mel
    power at or above the median), then the median and 90th percentile of frame log-energy.
    Background noise barely moves the loud frames, where the voice stands above it."""
    features = features.float()
    energy = torch.logsumexp(features[:, :n_mels], 1)
    loud = features[energy >= energy.median()].mean(0)
    return torch.cat([loud, torch.quantile(energy, energy.new_tensor([0.5, 0.9]))])


def speaker_relative(descriptions: torch.Tensor, speakers: list, min_segments: int) -> tuple[torch.Tensor, list[int]]:
    """Each utterance's description minus the mean of its speaker's other utterances (speakers
    of at least `min_segments` utterances; None is no speaker), and the rows that got one; the
    other rows are zero, as for an utterance whose speaker is unknown."""
    relative, rows = torch.zeros_like(descriptions), []
    for speaker in dict.fromkeys(speakers):
        mine = [i for i, s in enumerate(speakers) if s == speaker]
        if speaker is None or len(mine) < max(min_segments, 2):
            continue
        block = descriptions[mine]
        relative[mine] = block - (block.sum(0, keepdim=True) - block) / (len(mine) - 1)
        rows += mine
    return relative, sorted(rows)


class _MaskedConvBlock(nn.Module):
    """Conv1d -> per-frame LayerNorm -> ReLU -> zero the padding -> max-pool by 2.

    Per-frame normalisation (not BatchNorm) so that padding never enters any statistic, in
    training or inference; ReLU output >= 0, so padded zeros never win a max over real frames.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        x = torch.relu(x) * lengths_mask(lengths, x.shape[-1])[:, None, :]
        x = nn.functional.max_pool1d(x, 2, ceil_mode=True)
        return x, (lengths + 1) // 2


class EmotionNet(nn.Module):
    """Fused MFCC + log-mel frames -> CNN -> BiLSTM -> attention pooling -> three heads.

    Heads: 7 emotion logits, 3 sentiment logits, and valence/arousal/dominance in 0..1. With
    `speaker_context` the heads also read how the utterance departs from its speaker's other
    utterances (`speaker_relative` of `describe`): speaker normalisation after the network, in
    the space it keeps steady in noise, which the per-utterance input normalisation cannot do.
    Without it (zeros: an unknown speaker) they read the utterance alone.
    """

    def __init__(self, config: EmotionNetConfig = EmotionNetConfig()):
        super().__init__()
        self.config = config
        widths = (config.n_features, *config.channels)
        self.blocks = nn.ModuleList(_MaskedConvBlock(a, b, config.kernel_size) for a, b in zip(widths[:-1], widths[1:]))
        self.lstm = nn.LSTM(widths[-1], config.lstm_hidden, batch_first=True, bidirectional=True)
        pooled = 2 * config.lstm_hidden
        self.attention = nn.Linear(pooled, 1)
        self.dropout = nn.Dropout(config.dropout)
        heads_read = pooled + (self.description_width if config.speaker_context else 0)
        self.emotion = nn.Linear(heads_read, config.n_emotions)
        self.sentiment = nn.Linear(heads_read, config.n_sentiments)
        self.dims = nn.Linear(heads_read, config.n_dims)

    @property
    def description_width(self) -> int:
        """Width of `describe`: the pooled embedding, and with speaker context the level."""
        return 2 * self.config.lstm_hidden + self.config.level_width

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, time, n_features) + lengths -> pooled utterance vectors (batch, 2*hidden)."""
        x = masked_cmvn(features, lengths_mask(lengths, features.shape[1])).transpose(1, 2)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        packed = pack_padded_sequence(x.transpose(1, 2), lengths.cpu(), batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[-1])
        scores = self.attention(hidden).squeeze(-1).masked_fill(~lengths_mask(lengths, hidden.shape[1]), float("-inf"))
        return (torch.softmax(scores, dim=1)[..., None] * hidden).sum(dim=1)

    def levels(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`utterance_level` of each padded item, (batch, n_features + 2)."""
        return torch.stack([utterance_level(f[:n], self.config.n_mels) for f, n in zip(features, lengths.tolist())])

    def describe(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """What the heads read of each utterance alone, (batch, description_width): the
        pooled embedding, and with speaker context the utterance's level after it."""
        pooled = self.embed(features, lengths)
        if not self.config.speaker_context:
            return pooled
        return torch.cat([pooled, self.levels(features, lengths).to(pooled.dtype)], 1)

    def heads(self, description: torch.Tensor, relative: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The heads on `describe`'s rows and, with speaker context, their `speaker_relative`
        (None: no context, as for unknown speakers)."""
        z = description[:, : 2 * self.config.lstm_hidden]
        if self.config.speaker_context:
            z = torch.cat([z, torch.zeros_like(description) if relative is None else relative], 1)
        z = self.dropout(z)
        return {"emotion": self.emotion(z), "sentiment": self.sentiment(z), "dims": torch.sigmoid(self.dims(z))}

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads of each utterance alone (no speaker context)."""
        return self.heads(self.describe(features, lengths))


@dataclass(frozen=True)
class EmotionEnsembleConfig(EmotionNetConfig):
    members: int = 2


class EmotionEnsemble(nn.Module):
    """Emotion networks of one configuration trained with different seeds, their probabilities
    (and dims) averaged: one network's reading of unheard speakers in noise depends on its
    seed's luck (docs/evaluation.md). Same interface as `EmotionNet`; `describe` gives every
    member's pooled embedding, then the level they share."""

    def __init__(self, config: EmotionEnsembleConfig = EmotionEnsembleConfig()):
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(EmotionNet(config) for _ in range(config.members))

    @property
    def description_width(self) -> int:
        return len(self.members) * 2 * self.config.lstm_hidden + self.config.level_width

    def describe(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled = [member.embed(features, lengths) for member in self.members]
        if self.config.speaker_context:
            pooled.append(self.members[0].levels(features, lengths).to(pooled[0].dtype))
        return torch.cat(pooled, 1)

    def _member_part(self, rows: torch.Tensor, index: int) -> torch.Tensor:
        width = 2 * self.config.lstm_hidden
        shared = rows[:, len(self.members) * width :]
        return torch.cat([rows[:, index * width : (index + 1) * width], shared], 1)

    def heads(self, description: torch.Tensor, relative: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Emotion and sentiment as log of the members' mean probabilities; dims their mean."""
        outputs = [
            member.heads(
                self._member_part(description, k), None if relative is None else self._member_part(relative, k)
            )
            for k, member in enumerate(self.members)
        ]
        mean = {key: torch.stack([o[key].float() for o in outputs]) for key in outputs[0]}
        return {
            "emotion": torch.log(torch.softmax(mean["emotion"], -1).mean(0)),
            "sentiment": torch.log(torch.softmax(mean["sentiment"], -1).mean(0)),
            "dims": mean["dims"].mean(0),
        }

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.describe(features, lengths))


@dataclass(frozen=True)
class LaughterNetConfig(MetadataConfig):
    n_mels: int = 64
    channels: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)
    kernel_size: int = 3
    dropout: float = 0.2
    stride: int = 1  # the dilated layers run on every stride-th frame; outputs are repeated back
    pcen_half_window: int = 0  # > 0: PCEN input, each band against its mean over this many frames each side

    @property
    def receptive_frames(self) -> int:
        """Frames of context on each side that one output frame depends on (a stride's worth
        more with a stride, for the frames a repeated output stands for; PCEN's window more)."""
        return self.stride * (self.kernel_size // 2) * (2 + sum(self.dilations)) + self.pcen_half_window


def pcen(logmel: torch.Tensor, half_window: int, alpha: float = 0.98, delta: float = 2.0, r: float = 0.5):
    """Per-channel energy normalisation (Wang et al. 2017) of natural-log mel power frames
    (batch, time, n_mels): each band's power divided by (nearly) its mean over `half_window`
    frames each side, then compressed by a root. A steady noise floor maps to the same values
    whatever its level, as silence does, so a band that holds only room noise looks alike in
    every room; what rises above its surroundings stands out. The smoother is a centred moving
    average rather than PCEN's causal one-pole filter, so a chunk with enough context scores
    like one pass. Always in float32, also under float16 autocast (powers overflow float16)."""
    with torch.autocast(logmel.device.type, enabled=False):
        power = logmel.float().exp()
        mean = nn.functional.avg_pool1d(
            power.transpose(1, 2), 2 * half_window + 1, stride=1, padding=half_window, count_include_pad=False
        ).transpose(1, 2)
        return (power / mean.pow(alpha) + delta).pow(r) - delta**r


class LaughterNet(nn.Module):
    """Frame-level laughter detector: a dilated temporal CNN over log-mel frames.

    One pass scores every frame (`config.receptive_frames` of context each side), so an
    episode is scored in one sweep, not one window per frame. With a stride the input layer
    keeps every stride-th frame and each output is repeated for the frames it stands for:
    twice the context at half the cost per layer. Input is normalised with fixed statistics
    learnt in training (stored as buffers), so scores do not depend on the rest of the episode.
    Chunks must start at a multiple of the stride to give the same frames as one pass.
    """

    def __init__(self, config: LaughterNetConfig = LaughterNetConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.n_mels))
        self.register_buffer("feature_std", torch.ones(config.n_mels))
        self.inp = nn.Conv1d(
            config.n_mels, config.channels, config.kernel_size, stride=config.stride, padding=config.kernel_size // 2
        )
        self.layers = nn.ModuleList(
            nn.Conv1d(
                config.channels, config.channels, config.kernel_size, padding=d * (config.kernel_size // 2), dilation=d
            )
            for d in config.dilations
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(config.channels) for _ in config.dilations)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Conv1d(config.channels, 1, 1)

    def representation(self, logmel: torch.Tensor) -> torch.Tensor:
        """The input the layers read, before the fixed normalisation: log-mel, or its PCEN."""
        return pcen(logmel, self.config.pcen_half_window) if self.config.pcen_half_window else logmel

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """(batch, time, n_mels) log-mel -> (batch, time) laughter logits."""
        return self.classify(self.representation(logmel))

    def classify(self, representation: torch.Tensor) -> torch.Tensor:
        """Logits from `representation(logmel)`, which an ensemble computes once for its members."""
        x = ((representation - self.feature_mean) / self.feature_std).transpose(1, 2)
        x = torch.relu(self.inp(x))
        for conv, norm in zip(self.layers, self.norms):
            x = x + torch.relu(norm(conv(self.dropout(x))))
        logits = self.out(x).squeeze(1)
        if self.config.stride > 1:
            logits = logits.repeat_interleave(self.config.stride, dim=1)[:, : representation.shape[1]]
        return logits


@dataclass(frozen=True)
class LaughterEnsembleConfig(LaughterNetConfig):
    members: int = 3


class LaughterEnsemble(nn.Module):
    """Laughter networks of one configuration trained with different seeds: their logits are
    averaged. The embedded default is two: an ensemble finds about its members' average of
    unheard laughers' laughs, but its false alarms depend less on a training seed's luck
    (docs/evaluation.md)."""

    def __init__(self, config: LaughterEnsembleConfig = LaughterEnsembleConfig()):
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(LaughterNet(config) for _ in range(config.members))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        """(batch, time, n_mels) log-mel -> (batch, time) laughter logits, the members' mean."""
        representation = self.members[0].representation(logmel)  # the same for every member
        return torch.stack([member.classify(representation) for member in self.members]).mean(dim=0)


@dataclass(frozen=True)
class SpeakerBranchConfig(MetadataConfig):
    n_features: int = 363  # features.utterance_statistics with 64 mels, 20 MFCCs (+ network_inputs)
    n_emotions: int = 7
    min_segments: int = 8  # fewer utterances of a speaker than this: too few for their baseline
    n_dims: int = 0  # a linear valence/arousal/dominance head beside the emotions (0: none)
    network_inputs: int = 0  # the last features are the network's emotion log-probabilities (0: none)

    @property
    def n_statistics(self) -> int:
        """How many of the features are utterance statistics."""
        return self.n_features - self.network_inputs


def branch_features(statistics: np.ndarray, emotion_probs: np.ndarray, config: SpeakerBranchConfig) -> np.ndarray:
    """A speaker branch's input before `speaker_zscore`: the utterance statistics, followed, if the
    branch reads them, by the network's (temperature-calibrated) emotion log-probabilities."""
    if not config.network_inputs:
        return statistics
    log_probs = np.log(np.clip(emotion_probs, 1e-8, None)).astype(np.float32)
    return np.concatenate([statistics.astype(np.float32), log_probs], axis=1)


class SpeakerBranch(nn.Module):
    """A linear classifier (and optionally a linear regressor of valence, arousal and dominance)
    of utterance statistics, and optionally the network's emotion log-probabilities, z-scored
    within their speaker: how one utterance departs from that speaker's usual voice, and how
    much more of each emotion the network hears in it than in the speaker's other utterances.
    Its input is `branch_features`, `speaker_zscore`'d."""

    def __init__(self, config: SpeakerBranchConfig = SpeakerBranchConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.n_features))
        self.register_buffer("scale", torch.ones(config.n_features))
        self.linear = nn.Linear(config.n_features, config.n_emotions)
        self.dims = nn.Linear(config.n_features, config.n_dims) if config.n_dims else None

    def forward(self, zscored: torch.Tensor) -> torch.Tensor:
        """(utterances, n_features) -> emotion logits."""
        return self.linear((zscored - self.mean) / self.scale)

    def dimensions(self, zscored: torch.Tensor) -> torch.Tensor:
        """(utterances, n_features) -> (utterances, n_dims) valence, arousal, dominance."""
        if self.dims is None:
            raise ValueError("this speaker branch has no dimensions head")
        return self.dims((zscored - self.mean) / self.scale)


def speaker_zscore(
    statistics: torch.Tensor, speakers: list, min_segments: int, baseline: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each utterance's statistics z-scored over its speaker's utterances (those marked in
    `baseline`, default all, or all when none of theirs is marked), and which utterances have a
    speaker with at least `min_segments` of them (the rest stay unnormalised). A speaker's single
    utterance is only centred: one utterance has no spread."""
    out, enough = statistics.clone(), torch.zeros(len(speakers), dtype=torch.bool)
    for speaker in set(speakers):
        rows = torch.tensor([i for i, s in enumerate(speakers) if s == speaker])
        if len(rows) >= min_segments:
            marked = rows if baseline is None else rows[baseline[rows]]
            basis = statistics[marked if len(marked) else rows]
            spread = basis.std(0) if len(basis) > 1 else torch.zeros_like(basis[0])
            out[rows] = (statistics[rows] - basis.mean(0)) / (spread + 1e-4)
            enough[rows] = True
    return out, enough


def calibrate_dims(dims: np.ndarray, affine: dict | None) -> np.ndarray:
    """Dims mapped by a per-dimension affine `{"scale": [...], "shift": [...]}` (fitted on held-out
    outputs to match the targets' mean and spread, see `training.crossval.fit_dims_affine`),
    kept within 0..1; unchanged without one."""
    if not affine:
        return dims
    mapped = np.asarray(affine["shift"], np.float32) + np.asarray(affine["scale"], np.float32) * dims
    return np.clip(mapped, 0.0, 1.0).astype(dims.dtype)


def fuse_dims(network_dims: np.ndarray, branch_dims: np.ndarray, weight: float) -> np.ndarray:
    """Valence/arousal/dominance of the network and the speaker branch averaged (weight = the
    branch's share), before the fused calibration."""
    return (1 - weight) * network_dims + weight * branch_dims


def fuse_emotions(network_probs: torch.Tensor, branch_logits: torch.Tensor, weight: float, temperature: float = 1.0):
    """Emotion probabilities of the network and the speaker branch combined as a weighted
    geometric mean (weight = the branch's share), renormalised, with a calibration temperature."""
    log_probs = (1 - weight) * torch.log(network_probs.clamp(min=1e-8)) + weight * torch.log_softmax(branch_logits, -1)
    return torch.softmax(log_probs / temperature, -1)
