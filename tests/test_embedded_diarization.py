"""The embedded diarizer: the GE2E port against the resemblyzer package it comes from, the
diarization error rate against hand-counted answers and pyannote.metrics, the clustering on
embeddings of known groups, and an episode through the pipeline with its speakers withheld."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from conftest import EPISODES, SHARED_DATA, needs_shared
from ser_pipeline.diarization import DiarizationError, Turn
from ser_pipeline.embedded_diarization import ClusteringSettings, EmbeddedDiarizer, cluster, loud, speech_windows
from ser_pipeline.metrics import diarization_score
from ser_pipeline.voice_encoder import WINDOW_SAMPLES, at_target_level, embed_windows, load_voice_encoder


def test_the_port_gives_the_resemblyzer_package_s_embeddings_for_whole_and_short_windows():
    resemblyzer = pytest.importorskip("resemblyzer")
    from resemblyzer import audio

    reference = resemblyzer.VoiceEncoder("cpu", verbose=False)
    rng = np.random.default_rng(0)
    t = np.arange(WINDOW_SAMPLES) / 16_000
    voiced = np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t))
    windows = [voiced.astype(np.float32), 0.01 * voiced[:9_000].astype(np.float32)]  # a short, quiet one
    ours = embed_windows(load_voice_encoder(torch.device("cpu")), windows, fast=False)
    for window, embedding in zip(windows, ours, strict=True):
        mel = audio.wav_to_mel_spectrogram(at_target_level(window))
        with torch.no_grad():
            expected = reference(torch.from_numpy(mel[None]))[0].numpy()
        np.testing.assert_allclose(embedding, expected, atol=1e-5)
    assert abs(float(np.linalg.norm(ours[0])) - 1) < 1e-5


@needs_shared
def test_the_fast_precision_keeps_each_voice_s_embedding():
    """Where the CPU has bfloat16 dot products the LSTM runs in bfloat16: each window's embedding
    stays within a hair of float32's, far nearer than two windows of one voice are to each other."""
    from ser_pipeline.training.data import nemo_clips, read_clip

    clips = [c for c in nemo_clips(SHARED_DATA) if c.speaker == "nemo-MK0"][::40][:12]  # one voice
    windows = [read_clip(c.path)[:WINDOW_SAMPLES] for c in clips]
    encoder = load_voice_encoder(torch.device("cpu"))
    fast, exact = embed_windows(encoder, windows), embed_windows(encoder, windows, fast=False)
    agreement = (fast * exact).sum(1)
    assert agreement.min() > 0.98, agreement
    same_voice = exact @ exact.T
    assert (1 - agreement).max() < 0.25 * (1 - same_voice[np.triu_indices(len(windows), 1)]).min()


def test_diarization_error_counts_missed_false_alarm_and_confused_seconds():
    reference = [Turn(0, 10, "A"), Turn(10, 20, "B")]
    hypothesis = [Turn(0, 12, "x"), Turn(12, 18, "y"), Turn(25, 27, "y")]
    score = diarization_score(reference, hypothesis, collar_s=0)
    assert (score.missed_s, score.false_alarm_s, score.confusion_s) == pytest.approx((2, 2, 2))  # 18-20, 25-27, 10-12
    assert score.der == pytest.approx(0.3) and (score.reference_speakers, score.hypothesis_speakers) == (2, 2)
    # The collar leaves 0.25 s either side of every reference boundary out: 10-12 loses 0.25 s.
    assert diarization_score(reference, hypothesis).confusion_s == pytest.approx(1.75)
    overlapped = diarization_score([Turn(0, 4, "A"), Turn(2, 4, "B")], [Turn(0, 4, "x")], collar_s=0)
    assert (overlapped.missed_s, overlapped.speech_s) == pytest.approx((2, 6))  # two voices at once count twice


def test_diarization_error_agrees_with_pyannote_metrics():
    metrics = pytest.importorskip("pyannote.metrics.diarization")
    from pyannote.core import Annotation, Segment

    rng = np.random.default_rng(1)

    def turns(names: str, count: int) -> list[Turn]:
        starts = np.sort(rng.uniform(0, 120, count)).round(2)
        return [
            Turn(float(s), float(s + rng.uniform(0.5, 6)).__round__(2), names[rng.integers(len(names))]) for s in starts
        ]

    for _ in range(5):
        reference, hypothesis = turns("ABC", 30), turns("xyzw", 30)
        annotations = []
        for side in (reference, hypothesis):
            annotation = Annotation()
            for i, t in enumerate(side):
                annotation[Segment(t.start_s, t.end_s), i] = t.speaker
            annotations.append(annotation.support())
        expected = metrics.DiarizationErrorRate(collar=0.5)(*annotations, detailed=True)  # 0.5 there = 0.25 a side
        ours = diarization_score(reference, hypothesis)
        assert ours.der == pytest.approx(expected["diarization error rate"], abs=0.01)
        assert ours.missed_s == pytest.approx(expected["missed detection"], abs=0.3)


def _groups(sizes: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors scattered around one centre per group in the positive orthant, as spread as
    GE2E's on the development voices (cosine about 0.7 within a group, 0.5 between)."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for k, size in enumerate(sizes):
        centre = np.abs(rng.standard_normal(256))
        rows.append(np.maximum(centre + 0.9 * rng.standard_normal((size, 256)), 0))
        truth += [k] * size
    embeddings = np.concatenate(rows)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True), np.array(truth)


@pytest.mark.parametrize("sizes", [[120, 80, 60], [160, 80], [150, 100, 90, 60, 40]])
def test_clustering_finds_the_groups_of_known_embeddings(sizes):
    from sklearn.metrics import adjusted_rand_score

    embeddings, truth = _groups(sizes)
    labels = cluster(embeddings, ClusteringSettings())
    assert len(set(labels)) == len(sizes) and adjusted_rand_score(truth, labels) > 0.95


def test_one_voice_is_one_speaker_and_max_speakers_bounds_the_count():
    one, _ = _groups([300])
    assert set(cluster(one, ClusteringSettings())) == {0}
    many, _ = _groups([60] * 6, seed=3)
    assert len(set(cluster(many, ClusteringSettings(max_speakers=3)))) <= 3
    assert len(set(cluster(many, ClusteringSettings()))) == 6


def test_loud_windows_join_the_nearest_voice_instead_of_making_one_of_their_own():
    """Shouting moves a voice's embedding part of the way to somewhere else: clustered with the
    rest, a voice's 40 shouted windows are a third speaker; set aside, they join their own voice."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    calm, other, elsewhere = (np.abs(rng.standard_normal(256)) for _ in range(3))
    centres = [(calm, 120), (other, 90), (0.3 * calm + 0.7 * elsewhere, 40)]
    embeddings = np.concatenate([np.maximum(c + 0.9 * rng.standard_normal((n, 256)), 0) for c, n in centres])
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    truth = np.array([0] * 120 + [1] * 90 + [0] * 40)
    shouted = np.arange(250) >= 210
    assert len(set(cluster(embeddings, ClusteringSettings()))) == 3
    labels = cluster(embeddings, ClusteringSettings(), shouted)
    assert len(set(labels)) == 2 and adjusted_rand_score(truth, labels) == 1.0


def test_each_window_s_level_is_measured_and_the_loud_ones_lie_over_the_median_by_loud_db():
    samples = np.concatenate([np.full(32_000, 0.01), np.full(32_000, 0.1), np.full(16_000, 0.001)]).astype(np.float32)
    pieces, windows = speech_windows(samples, [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)], hop_s=0.8)
    assert len(pieces) == len(windows.level_db) == 5  # two windows in each 2 s region, the last one alone
    assert np.allclose(windows.level_db, [-40, -40, -20, -20, -60], atol=0.01)
    assert loud(windows.level_db, ClusteringSettings()).tolist() == [False, False, True, True, False]
    assert not loud(windows.level_db, ClusteringSettings(loud_db=None)).any()
    assert not loud(windows.level_db, ClusteringSettings(loud_db=30)).any()


def test_the_mfcc_baseline_replaces_the_voice_encoder_and_tells_unlike_sources_apart():
    from ser_pipeline.training.diarization_episodes import mfcc_means

    rng = np.random.default_rng(0)
    t = np.arange(48_000) / 16_000
    buzz = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 12)).astype(np.float32) * 0.1
    hiss = np.diff(rng.standard_normal(48_001)).astype(np.float32) * 0.05  # bright noise
    order = ["buzz", "hiss", "buzz", "buzz", "hiss", "hiss", "buzz", "hiss"]
    samples = np.concatenate([buzz if name == "buzz" else hiss for name in order])
    truth = [Turn(3.0 * i, 3.0 * i + 3.0, name) for i, name in enumerate(order)]
    diarizer = EmbeddedDiarizer(torch.device("cpu"), embedder=mfcc_means)
    for utterances in (False, True):
        found = diarizer.turns(samples, [(t.start_s, t.end_s) for t in truth], utterances=utterances)
        score = diarization_score(truth, found)
        assert score.hypothesis_speakers == 2 and score.der < 0.05
    # spans to leave out (laughs) are no one's turn
    found = diarizer.turns(samples, [(t.start_s, t.end_s) for t in truth], exclude=[(4.0, 5.0), (13.5, 16.5)])
    assert found and all(t.end_s <= 4.0 or t.start_s >= 5.0 for t in found)
    assert all(t.end_s <= 13.5 or t.start_s >= 16.5 for t in found)
    assert diarization_score(truth, found).hypothesis_speakers == 2
    assert diarizer.turns(samples, []) == [] and mfcc_means([]).shape == (0, 19)


@pytest.mark.parametrize("option", ["embedded:0", "embedded:x", "embeded"])
def test_a_malformed_embedded_option_is_a_clear_error(option):
    with pytest.raises(DiarizationError, match="embedded:N"):
        EmbeddedDiarizer.load(option, torch.device("cpu"))


@needs_shared
def test_voices_of_the_development_split_are_told_apart():
    """A known answer on real voices: a 1.5-minute conversation of three development voices."""
    from ser_pipeline.training.diarization_episodes import build_episodes, diarize, score_diarizer

    (episode,) = build_episodes(SHARED_DATA, "dev", count=1, minutes=1.5, seed=1)
    summary = score_diarizer(diarize(EmbeddedDiarizer(torch.device("cpu")), [episode]))
    assert summary["speaker_count_exact"] == 1.0 and summary["der_pooled"] < 0.15


@needs_shared
def test_built_sentences_keep_their_recorded_loudness_relative_to_their_voice():
    """The same seed with and without natural levels places the same sentences; each sentence's
    level differs between the two by its recorded loudness against the voice's other sentences:
    those differences average to zero over a voice and spread over several dB (acted emotions)."""
    from ser_pipeline.training.diarization_episodes import build_episodes

    (natural,) = build_episodes(SHARED_DATA, "dev", count=1, minutes=1.5, seed=1)
    (flat,) = build_episodes(SHARED_DATA, "dev", count=1, minutes=1.5, seed=1, natural_levels=False)
    assert natural.turns == flat.turns and not natural.room

    def level(samples, turn):
        piece = samples[int(turn.start_s * 16_000) : int(turn.end_s * 16_000)].astype(np.float64)
        return 10 * np.log10(np.mean(piece**2))

    alone = [
        t for t in natural.turns if all(u is t or u.end_s <= t.start_s or u.start_s >= t.end_s for u in natural.turns)
    ]
    by_voice: dict[str, list[float]] = {}
    for turn in alone:
        by_voice.setdefault(turn.speaker, []).append(level(natural.samples, turn) - level(flat.samples, turn))
    spreads = [np.std(differences) for differences in by_voice.values()]
    assert all(abs(np.mean(d)) < 2.5 for d in by_voice.values() if len(d) >= 5)
    assert max(spreads) > 3.0


@needs_shared
@pytest.mark.slow
def test_the_diarization_command_measures_the_mfcc_baseline_with_and_without_laughs(tmp_path):
    from typer.testing import CliRunner

    from ser_pipeline.cli import app

    figures = {}
    for extra in ([], ["--keep-laughs"]):
        output = tmp_path / f"figures{len(extra)}.json"
        arguments = ["train", "diarization", "--data", str(SHARED_DATA), "--split", "dev", "--episodes", "1"]
        arguments += ["--minutes", "1", "--embedding", "mfcc", "--threshold", "0.9", "--output", str(output), *extra]
        arguments += ["--loud-db", "12", "--flat-levels"] if extra else []
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
        figures[bool(extra)] = json.loads(output.read_text())
    for document in figures.values():
        assert document["embedding"] == "mfcc" and document["threshold"] == 0.9
        assert 0 <= document["der_pooled"] <= 1 and len(document["episodes"]) == 1
    assert figures[True]["keep_laughs"] and not figures[False]["keep_laughs"]
    assert figures[True]["loud_db"] == 12 and figures[False]["loud_db"] == ClusteringSettings().loud_db
    assert not figures[True]["natural_levels"] and figures[False]["natural_levels"]
    wrong = CliRunner().invoke(app, ["train", "diarization", "--data", str(SHARED_DATA), "--embedding", "ivector"])
    assert wrong.exit_code != 0 and "ge2e or mfcc" in wrong.output


def _unnamed(source, folder):
    """A shared episode whose transcript has lost its speaker names."""
    from ser_pipeline.archive import Episode

    transcript = json.loads(source.with_suffix(".json").read_text())
    for sentence in transcript["segments"]:
        del sentence["speaker"]
    (folder / "ep.json").write_text(json.dumps(transcript))
    return Episode("show", "ep", "ep", source.with_suffix(".mp3"), transcript_path=folder / "ep.json")


@needs_shared
@pytest.mark.slow
def test_an_episode_without_speakers_gets_embedded_ones_through_the_pipeline(tmp_path):
    from ser_pipeline.inference import Analyzer
    from ser_pipeline.pipeline import RunConfig, previous_row, process_episode
    from ser_pipeline.segmentation import Segmentation

    episode = _unnamed(EPISODES / "morning-chat" / "morning-chat-ep01", tmp_path)
    analyzer = Analyzer(device="cpu", diarization="embedded")
    for segmentation in (Segmentation.sentence, Segmentation.window):
        config = RunConfig(tmp_path / segmentation.value, segmentation)
        assert process_episode(episode, config, analyzer, "run-1").status == "ok"
        segments = pq.read_table(next((config.warehouse / "segments").rglob("*.parquet"))).to_pandas()
        assert set(segments.speaker_source.dropna()) == {"embedded"}
        speakers = set(segments.speaker.dropna())
        assert 2 <= len(speakers) <= 4 and speakers == {f"S{i + 1}" for i in range(len(speakers))}
        assert segments.speaker.notna().mean() > 0.8
        assert '"diarization": "embedded"' in previous_row(config.warehouse, episode)["models"]


@needs_shared
@pytest.mark.slow
def test_laughs_are_no_ones_speech_to_the_diarizer(tmp_path):
    """By voice activity, the laughter detector's laughs are cut out of the diarizer's regions: a
    segment that is a laugh gets no speaker (before, the episode's laughs made a voice of their own)."""
    from ser_pipeline.inference import Analyzer
    from ser_pipeline.pipeline import RunConfig, process_episode
    from ser_pipeline.segmentation import Segmentation

    episode = _unnamed(EPISODES / "morning-chat" / "morning-chat-ep01", tmp_path)
    config = RunConfig(tmp_path / "vad", Segmentation.vad)
    assert process_episode(episode, config, Analyzer(device="cpu", diarization="embedded"), "run-1").status == "ok"
    segments = pq.read_table(next((config.warehouse / "segments").rglob("*.parquet"))).to_pandas()
    laughs = pq.read_table(next((config.warehouse / "laughter_events").rglob("*.parquet"))).to_pandas()

    def laughed(segment) -> float:
        inside = sum(
            max(0.0, min(segment.end_s, e.end_s) - max(segment.start_s, e.start_s)) for e in laughs.itertuples()
        )
        return inside / (segment.end_s - segment.start_s)

    share = np.array([laughed(s) for s in segments.itertuples()])
    assert (share >= 0.9).sum() >= 3 and segments.speaker[share >= 0.9].isna().all()
    assert segments.speaker[share == 0].notna().mean() > 0.9


@needs_shared
@pytest.mark.slow
def test_auto_labels_a_transcript_s_unnamed_sentences_only(tmp_path):
    """The default (`auto`): sentences of a transcript without names get embedded speakers; voice
    activity and windows keep none; the waveform is not kept for it (decoded again when needed)."""
    from ser_pipeline.inference import Analyzer
    from ser_pipeline.pipeline import RunConfig, process_episode
    from ser_pipeline.segmentation import Segmentation
    from ser_pipeline.settings import RunSettings

    assert RunSettings().models.diarization == "auto"
    episode = _unnamed(EPISODES / "late-debate" / "late-debate-ep01", tmp_path)
    analyzer = Analyzer(device="cpu", diarization="auto")
    assert analyzer.models.describes_while_decoding  # `auto` keeps the streamed Whisper path
    found = {}
    for segmentation in (Segmentation.sentence, Segmentation.vad):
        config = RunConfig(tmp_path / segmentation.value, segmentation)
        assert process_episode(episode, config, analyzer, "run-1").status == "ok"
        found[segmentation] = pq.read_table(next((config.warehouse / "segments").rglob("*.parquet"))).to_pandas()
    sentences = found[Segmentation.sentence]
    assert set(sentences.speaker_source) == {"embedded"} and sentences.speaker.str.fullmatch(r"S\d").all()
    assert found[Segmentation.vad].speaker.isna().all() and found[Segmentation.vad].speaker_source.isna().all()
