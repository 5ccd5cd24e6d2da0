"""Speaker attribution: the overlap rule, and the pyannote.audio wiring tested offline with a
diarization pipeline built here from locally constructed (untrained) models: nothing is
downloaded, so the labels mean nothing, but every step a real pipeline takes is taken."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from ser_pipeline.archive import Episode
from ser_pipeline.diarization import DiarizationError, Diarizer, Turn, attribute, folder_sha256
from ser_pipeline.pipeline import RunConfig, previous_row, process_episode
from ser_pipeline.segmentation import Segment, Segmentation

try:
    import pyannote.audio  # noqa: F401
except ImportError:
    needs_pyannote = pytest.mark.skip(reason="pyannote.audio is not installed (the test extra installs it)")
else:
    needs_pyannote = pytest.mark.usefixtures()


def test_unattributed_segments_take_the_speaker_overlapping_them_most():
    segments = [
        Segment(0, "window", 0.0, 3.0),
        Segment(1, "sentence", 3.0, 6.0, speaker="Host"),
        Segment(2, "window", 6.0, 9.0),
        Segment(3, "window", 20.0, 23.0),
    ]
    turns = [Turn(0.0, 1.0, "A"), Turn(1.0, 4.5, "B"), Turn(5.0, 7.0, "A"), Turn(6.5, 9.0, "B")]
    attributed = attribute(segments, turns, "pyannote")
    assert [s.speaker for s in attributed] == ["B", "Host", "B", None]
    assert [s.speaker_source for s in attributed] == [
        "pyannote",
        None,
        "pyannote",
        None,
    ]  # 2.0 s of B beat 1.0 s of A; 2.5 s of B beat 1.0 s of A


def _local_pipeline():
    """pyannote's SpeakerDiarization from an untrained segmentation PyanNet and WeSpeaker
    ResNet34 embedding, agglomerative clustering (which reads no PLDA)."""
    from pyannote.audio.core.plda import PLDA
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34
    from pyannote.audio.models.segmentation import PyanNet
    from pyannote.audio.pipelines import SpeakerDiarization

    torch.manual_seed(0)
    segmentation = PyanNet(sincnet={"stride": 10}, sample_rate=16_000)
    segmentation.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME, duration=5.0,
        classes=["a", "b", "c"], powerset_max_classes=2, min_duration=5.0, warm_up=(0.0, 0.0),
        permutation_invariant=True,
    )  # fmt: skip
    segmentation.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = SpeakerDiarization(
            segmentation=segmentation,
            embedding=WeSpeakerResNet34(sample_rate=16_000),
            plda=PLDA.__new__(PLDA),  # unused by agglomerative clustering
            clustering="AgglomerativeClustering",
        )
    return pipeline.instantiate(
        {
            "segmentation": {"min_duration_off": 0.0},
            "clustering": {"method": "centroid", "min_cluster_size": 1, "threshold": 0.7},
        }
    )


class Spy:
    def __init__(self, pipeline):
        self.pipeline, self.inputs, self.labels = pipeline, [], set()

    def __call__(self, file):
        self.inputs.append(file)
        output = self.pipeline(file)
        self.labels |= set(output.speaker_diarization.labels())
        return output


@needs_pyannote
def test_a_local_pyannote_pipeline_labels_the_speakers_of_unattributed_segments(analyzer, tmp_path, monkeypatch):
    from conftest import write_audio

    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 8) / 16_000
    voices = [0.3 * np.sin(2 * np.pi * f * t[:64_000]) for f in (140, 260)]
    audio = write_audio(
        tmp_path / "show" / "ep.wav",
        (np.concatenate(voices) + 0.01 * rng.standard_normal(len(t))).astype(np.float32),
        16_000,
    )
    spy = Spy(_local_pipeline())
    monkeypatch.setattr(analyzer, "models", replace(analyzer.models, diarizer=Diarizer(spy, "local-test-pipeline")))
    episode = Episode("show", "ep", "ep", audio)
    config = RunConfig(tmp_path / "wh", Segmentation.window, window_s=2.0)
    outcome = process_episode(episode, config, analyzer, "run-1")
    assert outcome.status == "ok" and "diarize" in outcome.stage_seconds
    (given,) = spy.inputs  # once, in memory: the decoded waveform, not the file
    assert "audio" not in given and given["sample_rate"] == 16_000
    assert given["waveform"].shape == (1, 16_000 * 8)
    segments = pq.read_table(next((tmp_path / "wh" / "segments").rglob("*.parquet"))).to_pandas()
    assert len(segments) == 4 and spy.labels and set(segments.speaker.dropna()) <= spy.labels
    assert segments.speaker.notna().any()
    assert set(segments.speaker_source.dropna()) == {"pyannote"}
    assert (segments.speaker.isna() == segments.speaker_source.isna()).all()
    assert '"diarization": "local-test-pipeline"' in previous_row(config.warehouse, episode)["models"]


@needs_pyannote
def test_an_unreachable_hub_pipeline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DiarizationError, match="offline, give a local directory"):
        Diarizer.load(f"pyannote/speaker-diarization-community-1@{'a' * 40}", torch.device("cpu"))
    with pytest.raises(DiarizationError, match="not pinned to a commit"):
        Diarizer.load(str(tmp_path / "no-such-pipeline"), torch.device("cpu"))


@needs_pyannote
def test_what_pyannote_would_unpickle_is_pinned_before_it_loads_anything(monkeypatch, tmp_path):
    from pyannote.audio import Pipeline

    calls = []
    monkeypatch.setattr(Pipeline, "from_pretrained", lambda *args, **kwargs: calls.append((args, kwargs)))
    hub = "pyannote/speaker-diarization-community-1"
    for unpinned in (hub, f"{hub}@main", f"{hub}@v1.0"):
        with pytest.raises(DiarizationError, match="not pinned to a commit"):
            Diarizer.load(unpinned, torch.device("cpu"))
    folder = tmp_path / "my pipeline@home"  # an @ in the path, too
    (folder / "segmentation").mkdir(parents=True)
    (folder / "config.yaml").write_text("pipeline: {}")
    (folder / "segmentation" / "pytorch_model.bin").write_bytes(b"pickled weights")
    with pytest.raises(DiarizationError, match="its files hash to sha256:") as unpinned:
        Diarizer.load(str(folder), torch.device("cpu"))
    pinned = str(unpinned.value).rsplit("--diarization ", 1)[1].strip("'")
    assert pinned == f"{folder}@sha256:{folder_sha256(folder)}"
    assert calls == []  # nothing was handed to pyannote
    with pytest.raises(DiarizationError, match="the hub refused"):  # the stub returns None
        Diarizer.load(pinned, torch.device("cpu"))
    (folder / "segmentation" / "pytorch_model.bin").write_bytes(b"other pickled weights")
    with pytest.raises(DiarizationError, match="now hash to"):
        Diarizer.load(pinned, torch.device("cpu"))
    with pytest.raises(DiarizationError, match="the hub refused"):
        Diarizer.load(f"{hub}@{'b' * 40}", torch.device("cpu"))
    assert [(args[0], kwargs["revision"]) for args, kwargs in calls] == [(str(folder), None), (hub, "b" * 40)]


def test_without_cuts_holes_out_of_spans():
    from ser_pipeline.diarization import without

    assert without([(0.0, 10.0), (12.0, 14.0)], [(2.0, 3.0), (9.0, 13.0)]) == [(0.0, 2.0), (3.0, 9.0), (13.0, 14.0)]
    assert without([(1.0, 5.0)], [(0.0, 6.0)]) == []
    assert without([(1.0, 5.0)], [(5.0, 6.0), (-2.0, -1.0)]) == [(1.0, 5.0)]
    assert without([(1.0, 5.0)], [(4.95, 6.0)]) == [(1.0, 4.95)]
    assert without([(1.0, 5.0)], [(1.0, 4.95)]) == []  # a piece under 0.1 s is dropped
    assert without([(1.0, 5.0)], [(1.0, 4.95)], shortest_s=0.0) == [(4.95, 5.0)]
