"""From the registry to model objects: `load_models` chooses each kind of model (the registry's
default or a named one), loads its weights onto the device, and returns them in `LoadedModels`
with the options the scoring and the episode-level steps read (temperatures, the speaker
branch's share, the dims calibration, the laughter operating point). Nothing here scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ser_pipeline.devices import pick_device
from ser_pipeline.episode_steps import BranchFusion, HeadReading
from ser_pipeline.gillick import GillickResNet
from ser_pipeline.laughter import OperatingPoint
from ser_pipeline.registry import (
    FEATURE_NETWORKS,
    HF_AUDIO_CLASSIFICATION,
    WHISPER_EMOTION_HEAD,
    ModelSpec,
    Registry,
    load_network,
    models_fingerprint,
    reads_alone,
    resolve_weights,
)


@dataclass(frozen=True)
class LoadedModels:
    """The models of one configuration, loaded on `device`.

    Emotion and sentiment come from `emotion_net` (our network on the log-mel features) or
    `waveform_emotion` (a transformers audio classifier, or the Whisper head, on the segments'
    waveforms); dims from `emotion_net`'s own head (with a waveform emotion model, `emotion_net`
    is the dims model, run for its dims alone), the Whisper head's emotions through its lexicon
    (`dims_from_emotion`), `dims_net` (another network on the same features) or `waveform_dims`
    (wav2vec2, or the Whisper head beside another emotion model, on the waveforms); laughter from
    `laughter_net` (ours on the log-mel frames, or the Gillick ResNet on its own 8 kHz features)."""

    device: torch.device
    emotion_spec: ModelSpec
    dims_spec: ModelSpec
    laughter_spec: ModelSpec
    operating_point_name: str
    operating_point: OperatingPoint
    emotion_net: torch.nn.Module | None
    waveform_emotion: Any | None  # hf_emotion.AudioClassifierScorer or whisper_emotion.WhisperEmotionScorer
    dims_from_emotion: bool  # `waveform_emotion.dims(emotion)` gives the dims
    heads: HeadReading
    speaker_context: bool  # the emotion network reads a speaker's segments against each other
    branch: BranchFusion | None
    branch_id: str | None  # the branch's registry id
    dims_net: torch.nn.Module | None
    waveform_dims: Any | None  # wav2vec2_dims.Wav2Vec2DimsScorer
    dims_calibration: dict
    laughter_net: torch.nn.Module
    diarizer: Any | None  # diarization.Diarizer
    episode_reading: bool = True  # the Whisper head also reads unnamed utterances against their episode

    @property
    def description_width(self) -> int:
        """Width of the network's description of a segment, kept for speaker context (0 without)."""
        return self.emotion_net.description_width if self.speaker_context else 0

    @property
    def statistics_width(self) -> int:
        """Width of the utterance statistics the speaker branch reads (0 without one)."""
        return self.branch.network.config.n_statistics if self.branch is not None else 0

    @property
    def reads_features(self) -> bool:
        """Whether a model scores segments from the log-mel features (else only waveform models)."""
        return self.emotion_net is not None or self.dims_net is not None

    @property
    def laughter_reads_waveform(self) -> bool:
        """The Gillick ResNet reads its own 8 kHz features; our detector reads the log-mel frames."""
        return isinstance(self.laughter_net, GillickResNet)

    @property
    def needs_samples(self) -> bool:
        """Whether a model reads the waveform; otherwise the log-mel frames are all it needs."""
        waveform_models = (self.waveform_emotion, self.waveform_dims, self.always_diarizing)
        return any(m is not None for m in waveform_models) or self.laughter_reads_waveform

    @property
    def always_diarizing(self) -> Any | None:
        """The diarizer when it labels every segment without a speaker (None for `auto`, which labels
        only a transcript's unnamed sentences and decodes the file again for them)."""
        return None if self.diarizer is None or self.diarizer.sentences_only else self.diarizer

    @property
    def describes_while_decoding(self) -> bool:
        """Whether the only model reading the waveform is the Whisper head, whose per-segment
        descriptions can be taken as each segment's audio arrives (`StreamingScorer`), so that
        the episode's waveform need not be kept."""
        from ser_pipeline.whisper_emotion import WhisperEmotionScorer

        only_whisper = self.waveform_dims is None and self.always_diarizing is None and not self.laughter_reads_waveform
        return only_whisper and isinstance(self.waveform_emotion, WhisperEmotionScorer)

    @property
    def ids(self) -> dict[str, str]:
        """What produced each group of columns, as recorded in the warehouse."""
        ids = {
            "emotion": self.emotion_spec.id,
            "dims": self.dims_spec.id,
            "laughter": f"{self.laughter_spec.id}@{self.operating_point_name}",
        }
        if self.branch_id is not None:  # joins in where segments have speakers
            ids["emotion_branch"] = self.branch_id
        if not self.episode_reading:
            ids["emotion_reading"] = "alone"
        return {**ids, "diarization": self.diarizer.source} if self.diarizer else ids

    @property
    def fingerprints(self) -> dict[str, Any]:
        """See `registry.models_fingerprint`."""
        diarization = self.diarizer.source if self.diarizer else None
        return models_fingerprint(
            self.emotion_spec,
            self.dims_spec,
            self.laughter_spec,
            self.operating_point_name,
            diarization,
            self.episode_reading,
        )


def load_models(
    registry: Registry | None = None,
    device: str = "auto",
    emotion_model: str | None = None,
    dims_model: str | None = None,
    laughter_model: str | None = None,
    operating_point: str = "balanced",
    diarization: str | None = None,
    episode_reading: bool = True,
) -> LoadedModels:
    """The chosen models (None: the registry's default of that kind) loaded on `device`.
    `episode_reading`: whether the Whisper head also reads utterances without a known speaker
    against their whole recording (`WhisperEmotionScorer.recording_context`)."""
    registry = registry or Registry.load()
    on = pick_device(device)
    emotion_spec = registry.choose("emotion", emotion_model)
    dims_spec = registry.choose("dims", dims_model)
    laughter_spec = registry.choose("laughter", laughter_model)
    if operating_point not in laughter_spec.operating_points:
        known = ", ".join(laughter_spec.operating_points) or "none"
        raise ValueError(f"model {laughter_spec.id} has no operating point {operating_point!r} (known: {known})")
    emotion_net = waveform_emotion = None
    if emotion_spec.architecture == HF_AUDIO_CLASSIFICATION:
        from ser_pipeline.hf_emotion import AudioClassifierScorer

        waveform_emotion = AudioClassifierScorer(emotion_spec, on)
    elif emotion_spec.architecture == WHISPER_EMOTION_HEAD:
        from ser_pipeline.whisper_emotion import WhisperEmotionScorer

        waveform_emotion = WhisperEmotionScorer(load_network(resolve_weights(emotion_spec)), on, episode_reading)
    else:
        emotion_net = load_network(resolve_weights(emotion_spec)).to(on)
    # A waveform model reads emotion and sentiment only. When the dims model is one of our emotion
    # networks, that network runs as it would as the emotion model (speaker context, its speaker
    # branch, its calibration), and only its dims are kept.
    network_spec = emotion_spec
    network_dims = dims_spec.id != emotion_spec.id and dims_spec.architecture in FEATURE_NETWORKS
    if waveform_emotion is not None and network_dims and "emotion" in dims_spec.tasks:
        network_spec = dims_spec
        emotion_net = load_network(resolve_weights(dims_spec)).to(on)
    temperatures = network_spec.options.get("temperature", {})
    dims_are_the_networks = dims_spec.id == network_spec.id
    branch = None
    branch_option = network_spec.options.get("speaker_branch")
    if branch_option and emotion_net is not None:
        branch_net = load_network(resolve_weights(registry.get(branch_option["model"]))).to(on)
        branch = BranchFusion(
            network=branch_net,
            weight=float(branch_option["weight"]),
            temperature=float(temperatures.get("fused_emotion", 1.0)),
            fuses_dims=branch_net.dims is not None and dims_are_the_networks,
        )
    dims_net = waveform_dims = None
    if not dims_are_the_networks:
        if dims_spec.architecture in FEATURE_NETWORKS:
            dims_net = load_network(resolve_weights(dims_spec)).to(on)
        elif dims_spec.architecture == WHISPER_EMOTION_HEAD:  # its emotions through the lexicon
            from ser_pipeline.whisper_emotion import WhisperDims, WhisperEmotionScorer

            head = load_network(resolve_weights(dims_spec))
            waveform_dims = WhisperDims(WhisperEmotionScorer(head, on, episode_reading))
        else:
            from ser_pipeline.wav2vec2_dims import Wav2Vec2DimsScorer

            waveform_dims = Wav2Vec2DimsScorer(dims_spec, on)
    laughter_net = load_network(resolve_weights(laughter_spec), laughter_spec.architecture).to(on)
    diarizer = None
    if diarization and diarization.split(":")[0] in ("embedded", "auto"):
        from ser_pipeline.embedded_diarization import EmbeddedDiarizer

        diarizer = EmbeddedDiarizer.load(diarization, on)
    elif diarization:
        from ser_pipeline.diarization import Diarizer

        diarizer = Diarizer.load(diarization, on)
    return LoadedModels(
        device=on,
        emotion_spec=emotion_spec,
        dims_spec=dims_spec,
        laughter_spec=laughter_spec,
        operating_point_name=operating_point,
        operating_point=OperatingPoint(**laughter_spec.operating_points[operating_point]),
        emotion_net=emotion_net,
        waveform_emotion=waveform_emotion,
        # The Whisper head gives dims too: its emotion probabilities through the lexicon.
        dims_from_emotion=waveform_emotion is not None and dims_spec.id == emotion_spec.id,
        heads=HeadReading(
            {head: float(temperatures.get(head, 1.0)) for head in ("emotion", "sentiment")}, dims_are_the_networks
        ),
        speaker_context=emotion_net is not None and bool(emotion_net.config.speaker_context),
        branch=branch,
        branch_id=branch_option["model"] if branch is not None else None,
        dims_net=dims_net,
        waveform_dims=waveform_dims,
        # "network" (every segment) and "fused" (segments whose dims the branch joined) affines,
        # fitted on held-out folds to match the targets' mean and spread.
        dims_calibration=dims_spec.options.get("dims_calibration", {}),
        laughter_net=laughter_net,
        diarizer=diarizer,
        episode_reading=not reads_alone(emotion_spec, dims_spec, episode_reading),  # as recorded: where it acts
    )
