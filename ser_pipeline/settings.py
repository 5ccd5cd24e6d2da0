"""What a run is asked to do, in one object: built once (from the command line, a deployment's
parameters, or code) and passed down to the flow, the skip check and the models. Adding a run
option is a field here and its command-line option (`cli.py`), nothing else.

A pydantic model, so that Prefect validates it as one flow parameter and shows it as a form."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ser_pipeline.segmentation import Segmentation

DEFAULT_WAREHOUSE = Path("warehouse/data")


class ModelChoice(BaseModel):
    """Which registered models score a run (None: the registry's default for the task)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    emotion: str | None = None
    dims: str | None = None
    laughter: str | None = None
    operating_point: str = "balanced"  # of the laughter model
    # Who speaks, for segments without a speaker: "auto" (the embedded diarizer, for a transcript's
    # unnamed sentences), "embedded[:N]" (for every segment), a pinned pyannote.audio pipeline, or None.
    diarization: str | None = "auto"
    # The Whisper head reads utterances without a known speaker also against their whole episode
    # (more accurate; episodes then differ less in valence and arousal); False: each alone.
    episode_reading: bool = True


class RunSettings(BaseModel):
    """A run's settings; the archive itself is the flow's other parameter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warehouse: Path = DEFAULT_WAREHOUSE
    segmentation: Segmentation = Segmentation.sentence
    window_s: float = Field(3.0, gt=0)
    hop_s: float | None = Field(None, gt=0)
    device: str = "auto"
    reports: Path | None = None  # default: reports/ beside the warehouse
    report_window_s: float = Field(60.0, gt=0)
    models: ModelChoice = ModelChoice()
    reprocess: bool = False  # also episodes whose inputs, models and settings are unchanged
    task_runner: Literal["default", "dask"] = "default"
    dask_address: str | None = None  # an existing Dask scheduler; None: a local cluster
    allow_private_feeds: bool = False  # feeds on loopback or private addresses

    def run_config(self):
        """The settings the episode pipeline and its fingerprints read."""
        from ser_pipeline.fingerprints import RunConfig

        return RunConfig(self.warehouse, self.segmentation, self.window_s, self.hop_s, self.reprocess)

    def analyzer(self):
        """The models of this run, loaded."""
        from ser_pipeline.inference import Analyzer

        return Analyzer(
            device=self.device,
            emotion_model=self.models.emotion,
            dims_model=self.models.dims,
            laughter_model=self.models.laughter,
            operating_point=self.models.operating_point,
            diarization=self.models.diarization,
            episode_reading=self.models.episode_reading,
        )

    def models_fingerprint(self) -> dict:
        """What the chosen models make of an episode's fingerprint, read from the registry alone
        (no torch): see `registry.models_fingerprint`."""
        from ser_pipeline.registry import Registry, models_fingerprint

        registry = Registry.load()
        return models_fingerprint(
            registry.choose("emotion", self.models.emotion),
            registry.choose("dims", self.models.dims),
            registry.choose("laughter", self.models.laughter),
            self.models.operating_point,
            self.models.diarization,
            self.models.episode_reading,
        )


# How much a command says as it goes (`ser-pipeline -q` / `-v`), for the flow it starts too.
VERBOSITY_VARIABLE = "SER_PIPELINE_VERBOSITY"
Verbosity = Literal["quiet", "normal", "verbose"]


def verbosity() -> Verbosity:
    import os

    value = os.environ.get(VERBOSITY_VARIABLE, "normal")
    return value if value in ("quiet", "verbose") else "normal"
