"""Inference on the embedded models: batching is exact, chunking is exact, outputs are sane."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, needs_shared, tone
from ser_pipeline.architectures import (
    EmotionEnsemble,
    EmotionEnsembleConfig,
    EmotionNet,
    EmotionNetConfig,
    speaker_relative,
)
from ser_pipeline.inference import Analyzer, StreamingScorer
from ser_pipeline.registry import Registry
from ser_pipeline.schema import EMOTION_PROB_COLUMNS, SENTIMENT_PROB_COLUMNS
from ser_pipeline.segmentation import Segment, window_segments
from ser_pipeline.timing import StageClock


@pytest.fixture(scope="module")
def analyzer():
    """The embedded log-mel network (`ser-crnn-v3`, speaker context and branch): these tests are
    about its batches, chunks and streaming (the Whisper head: tests/test_whisper_encoder.py)."""
    return Analyzer(device="cpu", emotion_model="ser-crnn-v3", dims_model="ser-crnn-v3")


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pieces = [
        tone(rng.uniform(100, 300), rng.uniform(0.2, 0.6), amplitude=rng.uniform(0.05, 0.5))
        for _ in range(int(seconds * 3))
    ]
    signal = np.concatenate(pieces)[: int(seconds * 16_000)]
    return signal + rng.standard_normal(len(signal)).astype(np.float32) * 0.01


def test_a_batch_gives_the_same_outputs_as_one_at_a_time(analyzer):
    samples = speechlike(40.0)
    rng = np.random.default_rng(1)
    starts = rng.uniform(0, 35, 25)
    segments = [Segment(i, "sentence", float(s), float(s + rng.uniform(0.05, 5.0))) for i, s in enumerate(starts)]
    batched = analyzer.analyze(samples, segments)
    for i, segment in enumerate(segments):
        alone = analyzer.analyze(samples, [segment])
        for column in (
            *EMOTION_PROB_COLUMNS,
            *SENTIMENT_PROB_COLUMNS,
            "valence",
            "arousal",
            "dominance",
            "laughter_prob",
        ):
            assert alone.columns[column][0] == pytest.approx(batched.columns[column][i], abs=1e-5), column
        assert alone.columns["emotion"][0] == batched.columns["emotion"][i]


def test_padded_batches_are_exact_for_the_architecture_itself():
    torch.manual_seed(0)
    network = EmotionNet(EmotionNetConfig()).eval()
    lengths = torch.tensor([300, 1, 7, 180])
    features = torch.randn(4, 300, 84)
    with torch.no_grad():
        batch = network(features, lengths)
        for i, length in enumerate(lengths):
            alone = network(features[i : i + 1, :length], lengths[i : i + 1])
            for head in ("emotion", "sentiment", "dims"):
                assert torch.allclose(alone[head][0], batch[head][i], atol=1e-5)


def test_a_speaker_context_ensemble_describes_padded_batches_exactly():
    torch.manual_seed(1)
    network = EmotionEnsemble(EmotionEnsembleConfig(speaker_context=1, members=2)).eval()
    lengths = torch.tensor([300, 3, 7, 180])
    features = torch.randn(4, 300, 84)
    with torch.no_grad():
        batch = network.describe(features, lengths)
        assert batch.shape == (4, network.description_width)
        for i, length in enumerate(lengths):
            assert torch.allclose(
                network.describe(features[i : i + 1, :length], lengths[i : i + 1])[0], batch[i], atol=1e-5
            )
        relative = speaker_relative(batch, ["a", "a", "b", "a"], 3)[0]
        with_context, alone = network.heads(batch, relative), network(features, lengths)
        # Speaker b has too few segments: no context, so the same as alone; speaker a's change.
        assert torch.allclose(with_context["emotion"][2], alone["emotion"][2], atol=1e-6)
        assert not torch.allclose(with_context["emotion"][0], alone["emotion"][0], atol=1e-3)
        assert torch.allclose(with_context["emotion"].exp().sum(1), torch.ones(4), atol=1e-5)


def test_speaker_relative_is_each_row_against_the_mean_of_its_speakers_others():
    rows = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 7.0], [9.0, 9.0]])
    relative, given = speaker_relative(rows, ["x", None, "x", "y", "x"], 3)
    assert given == [0, 2, 4]
    assert torch.allclose(relative[0], rows[0] - (rows[2] + rows[4]) / 2)
    assert torch.allclose(relative[4], rows[4] - (rows[0] + rows[2]) / 2)
    assert (relative[[1, 3]] == 0).all()  # no speaker; a speaker heard once


def talking_speakers(count: int = 30) -> tuple[np.ndarray, list[Segment]]:
    """Sentences of speakers A and B (10 each, enough for context), C (3: too few) and none."""
    samples = speechlike(45.0, seed=2)
    rng = np.random.default_rng(3)
    names = ["A", "B"] * 10 + ["C"] * 3 + [None] * (count - 23)
    return samples, [
        Segment(i, "sentence", float(s), float(s + rng.uniform(0.3, 4.0)), speaker=names[i])
        for i, s in enumerate(rng.uniform(0, 40, count))
    ]


def test_speaker_context_scores_a_batch_as_segments_one_at_a_time(analyzer):
    """The embedded default reads its speakers' other segments: whatever the batches, and in
    whatever order the segments come, every segment gets the same scores."""
    assert analyzer.models.speaker_context
    samples, segments = talking_speakers()
    batched = analyzer.analyze(samples, segments)
    budget = analyzer.max_batch_frames
    analyzer.max_batch_frames = 1  # every segment a batch of its own
    try:
        order = np.random.default_rng(0).permutation(len(segments))
        alone = analyzer.analyze(samples, [segments[i] for i in order])
    finally:
        analyzer.max_batch_frames = budget
    for column, values in batched.columns.items():
        if values.dtype == object:
            assert list(alone.columns[column]) == list(values[order]), column
        else:
            np.testing.assert_allclose(alone.columns[column], values[order], atol=1e-5, err_msg=column)


def test_only_named_speakers_heard_often_enough_get_context(analyzer):
    samples, segments = talking_speakers()
    named = analyzer.analyze(samples, segments).columns
    unnamed = analyzer.analyze(samples, [replace(s, speaker=None) for s in segments]).columns
    often = np.array([s.speaker in ("A", "B") for s in segments])
    for column in (*EMOTION_PROB_COLUMNS, "valence"):
        np.testing.assert_allclose(named[column][~often], unnamed[column][~often], atol=1e-6, err_msg=column)
    assert np.abs(named["p_neutral"][often] - unnamed["p_neutral"][often]).max() > 1e-3


def test_laughter_chunks_equal_one_pass(analyzer):
    logmel = analyzer.front_end.episode(speechlike(30.0), torch.device("cpu"))
    whole = analyzer.laughter_frames(logmel)
    chunk, analyzer.laughter_chunk_frames = analyzer.laughter_chunk_frames, 333
    try:
        chunked = analyzer.laughter_frames(logmel)
    finally:
        analyzer.laughter_chunk_frames = chunk
    assert np.allclose(whole, chunked, atol=1e-5)


def named(segments: list[Segment]) -> list[Segment]:
    """Windows given to speakers by the minute they start in, as diarization names them."""
    return [replace(s, speaker=f"spk{int(s.start_s // 60)}") for s in segments]


@pytest.mark.parametrize("speakers", ["none", "transcript", "diarizer"])
def test_scoring_while_frames_arrive_equals_scoring_the_whole_episode(analyzer, speakers):
    """Speakers named by the transcript arrive with their segments; a diarizer names them only
    after decoding, when most segments were scored already."""
    samples = speechlike(62.0, seed=4)
    logmel = analyzer.front_end.episode(samples, torch.device("cpu"))
    final = (list if speakers == "none" else named)(window_segments(len(samples) / 16_000, 2.0))
    arriving = named if speakers == "transcript" else list
    whole = analyzer.score(logmel, None, final)
    budget, chunk = analyzer.max_batch_frames, analyzer.laughter_chunk_frames
    analyzer.max_batch_frames, analyzer.laughter_chunk_frames = 900, 700  # score and detect many times on the way
    try:
        scorer = StreamingScorer(analyzer)
        given = set()
        for frames in (150, 1000, 1001, 2500, 4100, 5900):
            new = [s for s in arriving(window_segments(frames / 100, 2.0)) if (s.start_s, s.end_s) not in given]
            given |= {(s.start_s, s.end_s) for s in new}  # the last, shorter window is given too: never used
            scorer.update(logmel[:frames], new, StageClock())
        assert scorer.scored and scorer.laughter.rows > 0  # some of the work was done on the way
        streamed = scorer.finish(logmel, None, final)
    finally:
        analyzer.max_batch_frames, analyzer.laughter_chunk_frames = budget, chunk
    for column, values in whole.columns.items():
        if values.dtype == object:
            assert list(streamed.columns[column]) == list(values), column
        else:
            np.testing.assert_allclose(streamed.columns[column], values, atol=1e-5, err_msg=column)
    np.testing.assert_allclose(streamed.laughter_frame_probs, whole.laughter_frame_probs, atol=1e-5)
    assert streamed.events == whole.events


def test_outputs_are_distributions_and_dims_in_range(analyzer):
    scores = analyzer.analyze(speechlike(20.0), window_segments(20.0))
    emotion = np.stack([scores.columns[c] for c in EMOTION_PROB_COLUMNS], 1)
    sentiment = np.stack([scores.columns[c] for c in SENTIMENT_PROB_COLUMNS], 1)
    assert np.allclose(emotion.sum(1), 1, atol=1e-5) and np.allclose(sentiment.sum(1), 1, atol=1e-5)
    for column in ("valence", "arousal", "dominance", "laughter_prob"):
        assert ((scores.columns[column] >= 0) & (scores.columns[column] <= 1)).all()


def test_every_model_id_is_recorded(analyzer):
    registry = Registry.load()
    assert analyzer.models.ids["emotion"] == analyzer.models.ids["dims"] == "ser-crnn-v3"
    assert analyzer.models.ids["emotion_branch"] == registry.get("ser-crnn-v3").options["speaker_branch"]["model"]
    assert analyzer.models.ids["laughter"].startswith(registry.defaults["laughter"] + "@")


@needs_shared
def test_the_embedded_models_beat_chance_on_held_out_actors(analyzer):
    """Actor 01 is held out of the network's training (see its model card)."""
    from ser_pipeline.schema import EMOTIONS
    from ser_pipeline.training.data import RAVDESS_EMOTIONS

    files = sorted((SHARED_DATA / "ravdess" / "Actor_01").glob("*.flac"))
    truth = [RAVDESS_EMOTIONS[f.stem.split("-")[2]] for f in files]
    predicted = [analyzer.analyze_file(f).columns["emotion"][0] for f in files]
    recalls = [np.mean([p == e for p, t in zip(predicted, truth) if t == e]) for e in EMOTIONS]
    assert np.mean(recalls) > 1 / 7 + 0.1


@needs_shared
def test_laughter_scores_higher_on_laughs_than_on_speech(analyzer):
    laugh = analyzer.analyze_file(SHARED_DATA / "nonverbal/laughing/3S0D_12_8_0_16_0_0_0.flac")
    speech = analyzer.analyze_file(SHARED_DATA / "ravdess/Actor_01/03-01-01-01-01-01-01.flac")
    assert laugh.columns["laughter_prob"][0] > 0.5 > speech.columns["laughter_prob"][0]


@needs_shared
def test_the_default_laughter_model_seldom_fires_on_speech_clean_or_under_the_episodes_noise(analyzer):
    from ser_pipeline.evaluation import laughter_false_alarms

    clean, noisy = laughter_false_alarms(analyzer, sorted(SHARED_DATA.glob("ravdess/*/*.flac")), minutes=10)
    assert clean["speech_hours"] == noisy["speech_hours"] >= 10 / 60
    assert clean["false_alarms"] <= 2 and noisy["false_alarms"] <= 2, (clean, noisy)


@needs_shared
def test_loose_and_tight_cuts_of_the_same_speech_score_alike(analyzer):
    """Segments are scored on their voiced part, so how much pause a cut leaves matters little
    (before voiced-part scoring, valence moved by 0.15 on average between the two cuts)."""
    import soundfile as sf

    differences = []
    for path in sorted((SHARED_DATA / "ravdess" / "Actor_02").glob("*.flac"))[::3]:  # a held-out actor
        speech, _ = sf.read(path, dtype="float32")
        energy = np.convolve(speech**2, np.ones(320) / 320, mode="same")
        loud = np.flatnonzero(energy > energy.max() * 1e-3)  # within 30 dB of the peak
        segments = [
            Segment(0, "sentence", 0.0, len(speech) / 16_000),
            Segment(1, "sentence", loud[0] / 16_000, loud[-1] / 16_000),
        ]
        scores = analyzer.analyze(speech, segments).columns
        differences.append([abs(scores[d][0] - scores[d][1]) for d in ("valence", "arousal", "dominance")])
    assert len(differences) == 20
    assert (np.mean(differences, axis=0) < 0.06).all(), np.mean(differences, axis=0)


@pytest.mark.parametrize("stride,pcen_half_window", [(2, 0), (3, 0), (2, 40)])
def test_a_strided_laughter_network_scores_chunks_like_one_pass(analyzer, stride, pcen_half_window):
    from ser_pipeline.architectures import LaughterNet, LaughterNetConfig

    torch.manual_seed(stride)
    config = LaughterNetConfig(stride=stride, dilations=(1, 2, 4, 8), pcen_half_window=pcen_half_window)
    network = LaughterNet(config).eval()
    logmel = analyzer.front_end.episode(speechlike(12.0, seed=stride), torch.device("cpu"))
    with torch.inference_mode():
        assert network(logmel[None]).shape == (1, len(logmel))
    saved = analyzer.models, analyzer.laughter_chunk_frames
    analyzer.models = replace(analyzer.models, laughter_net=network)
    try:
        whole = analyzer.laughter_frames(logmel)
        analyzer.laughter_chunk_frames = 101  # chunks starting off the stride
        chunked = analyzer.laughter_frames(logmel)
        later = analyzer.laughter_frames(logmel, first=57)
    finally:
        analyzer.models, analyzer.laughter_chunk_frames = saved
    assert len(whole) == len(logmel)
    assert np.allclose(whole, chunked, atol=1e-5)
    assert np.allclose(whole[57:], later, atol=1e-5)
