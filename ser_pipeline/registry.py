"""The model registry (`models/registry.json`) and safe weight loading.

Resolution of a weights file: explicit path -> `SER_MODEL_PATH` folders -> the embedded
`models/` folder -> the user cache -> download of a pinned URL (never when offline) -> an
error that says how to get the file. Weights are safetensors only and are checked against
the registry's sha256 before use: nothing here unpickles a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ser_pipeline.files import EMBEDDED_MODELS_DIR, cache_root, file_sha256

if TYPE_CHECKING:
    import torch

REGISTRY_FILE = EMBEDDED_MODELS_DIR / "registry.json"

# The networks this project builds itself; other architectures (wav2vec2) load through their
# own libraries. Resolved lazily (`_architecture`) so that reading the registry needs no torch.
ARCHITECTURES = (
    "emotion-net",
    "emotion-net-ensemble",
    "laughter-tcn",
    "laughter-tcn-ensemble",
    "gillick-resnet",
    "speaker-branch",
    "whisper-emotion-head",  # reads the frozen Whisper encoder's descriptions (whisper_emotion)
)
WHISPER_EMOTION_HEAD = "whisper-emotion-head"
FEATURE_NETWORKS = ("emotion-net", "emotion-net-ensemble")  # emotion/dims networks on the shared log-mel frames
HF_AUDIO_CLASSIFICATION = "hf-audio-classification"  # any transformers audio classifier (emotion)
HF_WAV2VEC2_DIMS = "hf-wav2vec2-dims"  # audEERING's wav2vec2 dimensional model layout


def _architecture(name: str) -> tuple[type, type]:
    from ser_pipeline.architectures import (
        EmotionEnsemble,
        EmotionEnsembleConfig,
        EmotionNet,
        EmotionNetConfig,
        LaughterEnsemble,
        LaughterEnsembleConfig,
        LaughterNet,
        LaughterNetConfig,
        SpeakerBranch,
        SpeakerBranchConfig,
    )
    from ser_pipeline.gillick import GillickConfig, GillickResNet
    from ser_pipeline.whisper_emotion import WhisperEmotionHead, WhisperHeadConfig

    return {
        "emotion-net": (EmotionNet, EmotionNetConfig),
        "emotion-net-ensemble": (EmotionEnsemble, EmotionEnsembleConfig),
        "speaker-branch": (SpeakerBranch, SpeakerBranchConfig),
        "laughter-tcn": (LaughterNet, LaughterNetConfig),
        "laughter-tcn-ensemble": (LaughterEnsemble, LaughterEnsembleConfig),
        "gillick-resnet": (GillickResNet, GillickConfig),
        WHISPER_EMOTION_HEAD: (WhisperEmotionHead, WhisperHeadConfig),
    }[name]


class ModelNotFoundError(FileNotFoundError):
    """A registered model whose weights cannot be found or fetched; says how to get them."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    tasks: tuple[str, ...]
    architecture: str
    weights: str
    sha256: str | None = None  # hub models: None (pinned by `revision` instead)
    licence: str = "unknown"
    input: str = ""
    labels: tuple[str, ...] = ()
    url: str | None = None
    revision: str | None = None  # for hub models: the pinned revision
    output_order: tuple[str, ...] = ()  # for regression models whose outputs are not in our order
    card: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # architecture-specific inference settings
    scores: dict[str, Any] = field(default_factory=dict)
    operating_points: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ModelSpec:
        return cls(
            **{
                **entry,
                "tasks": tuple(entry["tasks"]),
                "labels": tuple(entry.get("labels", ())),
                "output_order": tuple(entry.get("output_order", ())),
            }
        )


@dataclass(frozen=True)
class Registry:
    models: dict[str, ModelSpec]
    defaults: dict[str, str]

    @classmethod
    def load(cls, path: Path = REGISTRY_FILE, extra: list[Path] | None = None) -> Registry:
        """The registry file, plus the files in `extra` (default: `SER_REGISTRY`, a list of JSON
        files like `models/registry.json`): their models are added (same id: replaced) and
        their defaults win. Users register their own checkpoints there."""
        if extra is None:
            extra = [Path(p) for p in os.environ.get("SER_REGISTRY", "").split(os.pathsep) if p]
        models, defaults = {}, {}
        for file in [path, *extra]:
            try:
                document = json.loads(file.read_text())
                models |= {entry["id"]: ModelSpec.from_json(entry) for entry in document.get("models", [])}
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ValueError(f"registry file {file}: {error}") from None
            defaults |= document.get("defaults", {})
        return cls(models, defaults)

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self.models[model_id]
        except KeyError:
            raise KeyError(
                f"unknown model {model_id!r}; `ser-pipeline models` lists: {', '.join(self.models)}"
            ) from None

    def document(self) -> dict[str, Any]:
        """The registry as plain data: the defaults and every entry (`models --json`, `GET /v1/models`)."""
        from dataclasses import asdict

        return {"defaults": self.defaults, "models": [asdict(spec) for spec in self.models.values()]}

    def default(self, task: str) -> ModelSpec:
        return self.get(self.defaults[task])

    def choose(self, task: str, model_id: str | None) -> ModelSpec:
        """The model asked for by id, else the task's default."""
        spec = self.get(model_id) if model_id else self.default(task)
        if task not in spec.tasks:
            raise ValueError(f"model {spec.id} does not do {task} (it does: {', '.join(spec.tasks)})")
        return spec


def cache_dir() -> Path:
    return cache_root() / "models"


def search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("SER_MODEL_PATH", "").split(os.pathsep) if p]
    return [*extra, EMBEDDED_MODELS_DIR, cache_dir()]


def resolve_weights(spec: ModelSpec, explicit: Path | None = None) -> Path:
    """Find `spec`'s weights file, verified against its sha256."""
    candidates = [explicit] if explicit else [folder / spec.weights for folder in search_path()]
    for candidate in candidates:
        if candidate.is_file():
            if spec.sha256 and file_sha256(candidate) != spec.sha256:
                raise ModelNotFoundError(
                    f"{candidate} does not match the registered sha256 of {spec.id}: the file is corrupt or another "
                    "version; delete it or point SER_MODEL_PATH at the right one"
                )
            return candidate
    where = ", ".join(str(c) for c in candidates)
    if spec.url and not explicit and os.environ.get("SER_OFFLINE") != "1":
        from ser_pipeline.gillick import download_checkpoint

        target = cache_dir() / spec.weights
        try:
            download_checkpoint(spec.url, spec.options["checkpoint_sha256"], target)
        except (OSError, ValueError) as error:  # remote.DownloadError is an OSError
            raise ModelNotFoundError(
                f"weights {spec.weights!r} of model {spec.id} not found (looked in {where}) and the download failed: "
                f"{error}. Download {spec.url} elsewhere, or point SER_MODEL_PATH at a folder holding {spec.weights}"
            ) from None
        return resolve_weights(spec, target)
    hint = f"download it from {spec.url} into {cache_dir()}" if spec.url else "train it with `ser-pipeline train`"
    raise ModelNotFoundError(f"weights {spec.weights!r} of model {spec.id} not found (looked in {where}); {hint}")


def save_network(
    network: torch.nn.Module, architecture: str, path: Path, extra_metadata: dict[str, str] | None = None
) -> str:
    """Write a network as safetensors with its architecture config in the metadata; returns sha256."""
    from safetensors.torch import save_file

    metadata = {"architecture": architecture, **network.config.to_metadata(), **(extra_metadata or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous() for key, value in network.state_dict().items()}
    save_file(state, str(path), metadata=metadata)
    return file_sha256(path)


def load_network(path: Path, architecture: str | None = None) -> torch.nn.Module:
    """Build the network a safetensors file describes (its metadata, else `architecture` from the
    registry, for published files without our metadata) and load its weights (eval mode)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    written = metadata.get("architecture")
    if written and architecture and written != architecture:
        raise ValueError(f"{path} holds a {written!r} network, not the registered {architecture!r}")
    architecture = written or architecture
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{path}: unknown or missing architecture {architecture!r} in the safetensors metadata")
    network_class, config_class = _architecture(architecture)
    network = network_class(config_class.from_metadata(metadata))
    network.load_state_dict(load_file(str(path)))
    return network.eval()


def reads_alone(emotion: ModelSpec, dims: ModelSpec, episode_reading: bool) -> bool:
    """Whether the episode reading is off where it would act: only the Whisper head (as the
    emotion or the dims model) reads utterances without a speaker against their episode."""
    return not episode_reading and WHISPER_EMOTION_HEAD in (emotion.architecture, dims.architecture)


def models_fingerprint(
    emotion: ModelSpec,
    dims: ModelSpec,
    laughter: ModelSpec,
    operating_point: str,
    diarization: str | None,
    episode_reading: bool = True,
) -> dict[str, Any]:
    """What an episode's scores depend on, model-wise: each model's id and weights' sha256 (a
    model retrained under the same id changes it) or hub revision, its options (calibration
    temperatures, label maps), the laughter operating point's values, the diarization
    pipeline, and the episode reading when it is off for a model that has one (`reads_alone`; on,
    the default, it adds nothing, so fingerprints recorded before it was a choice still match)."""
    fingerprint = {
        "emotion": [emotion.id, emotion.sha256, emotion.revision, emotion.options],
        "dims": [dims.id, dims.sha256, dims.revision, dims.options],
        "laughter": [laughter.id, laughter.sha256, laughter.operating_points.get(operating_point)],
        "laughter_options": laughter.options,
        "diarization": diarization,
    }
    return {**fingerprint, "episode_reading": False} if reads_alone(emotion, dims, episode_reading) else fingerprint
