"""The laughter test episodes' generator and scoring (reads ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA, needs_shared
from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.laughter import LaughterEvent
from ser_pipeline.training.laughter_episodes import NOISES, Tally, _noise, build_episodes, music_bed, score_episodes


@pytest.mark.parametrize("kind", NOISES)
def test_every_noise_and_the_music_bed_have_unit_rms(kind):
    rng = np.random.default_rng(0)
    assert np.sqrt(np.mean(_noise(kind, SAMPLE_RATE * 2, rng) ** 2)) == pytest.approx(1.0, rel=1e-3)
    assert np.sqrt(np.mean(music_bed(SAMPLE_RATE * 9, rng) ** 2)) == pytest.approx(1.0, rel=1e-3)


def test_brown_noise_is_darker_than_blue():
    rng = np.random.default_rng(0)
    low_share = {}
    for kind in ("brown", "blue"):
        power = np.abs(np.fft.rfft(_noise(kind, SAMPLE_RATE, rng))) ** 2
        low_share[kind] = power[:1000].sum() / power.sum()  # below 1 kHz
    assert low_share["brown"] > 0.9 > 0.1 > low_share["blue"]


def test_a_tally_without_detections_has_no_precision_and_says_so_in_json():
    tally = Tally(laughs=4, found=0, false_alarms=0, hours=0.1)
    assert tally.summary()["precision"] is None and tally.summary()["recall"] == 0.0
    assert Tally(laughs=4, found=3, false_alarms=1, hours=0.5).summary()["f1"] == 0.75


@needs_shared
def test_episodes_hold_their_laughs_and_a_detector_that_hears_them_all_scores_one():
    episodes = build_episodes(SHARED_DATA, count=4, minutes=1.0, seed=3)
    assert [(e.music, e.room) for e in episodes] == [(False, False), (True, False), (False, True), (True, True)]
    assert all(e.laughs for e in episodes) and any(laugh.overlaps_speech for e in episodes for laugh in e.laughs)
    for episode in episodes:
        assert len(episode.samples) / SAMPLE_RATE == pytest.approx(60, abs=15)
        assert all(0 < laugh.start_s < laugh.end_s <= len(episode.samples) / SAMPLE_RATE for laugh in episode.laughs)

    def perfect(samples: np.ndarray) -> list[LaughterEvent]:
        episode = next(e for e in episodes if e.samples is samples)
        return [LaughterEvent(laugh.start_s, laugh.end_s, 1.0, 1.0) for laugh in episode.laughs]

    def early(samples: np.ndarray) -> list[LaughterEvent]:  # every laugh's event 5 s too early: no match
        episode = next(e for e in episodes if e.samples is samples)
        return [LaughterEvent(laugh.start_s - 5, laugh.end_s - 5, 1.0, 1.0) for laugh in episode.laughs]

    scores = score_episodes({"perfect": perfect, "early": early}, episodes, log=lambda _: None)
    laughs = sum(len(e.laughs) for e in episodes)
    assert scores["perfect"].overall.summary()["f1"] == 1.0 and scores["perfect"].overall.laughs == laughs
    assert scores["early"].overall.found == 0 and scores["early"].overall.false_alarms == laughs
    kinds = scores["perfect"].by
    assert kinds["laugh over the sentence's end"].laughs + kinds["laugh after the sentence"].laughs == laughs
    assert kinds["music bed"].laughs + kinds["no music"].laughs == laughs
    assert [e.laughs for e in scores["perfect"].episodes] == [len(e.laughs) for e in episodes]


def test_the_paired_f1_interval_is_over_episodes_and_zero_for_the_same_detector():
    from ser_pipeline.training.laughter_episodes import EpisodeScores, f1_difference_interval

    def scores(rows):
        tallies = EpisodeScores()
        for laughs, found, false_alarms in rows:
            tallies.add([], laughs, found, false_alarms, 0.05, True)
        return tallies

    good = scores([(6, 6, 0)] * 8)
    assert f1_difference_interval(good, good) == (0.0, 0.0)
    assert f1_difference_interval(good, scores([(6, 3, 0)] * 8)) == pytest.approx((1 / 3, 1 / 3), abs=1e-3)  # 1 - 2/3
    low, high = f1_difference_interval(good, scores([(6, 6, 0)] * 7 + [(6, 0, 4)]))  # one episode lost
    assert low == 0.0 < high < 0.5  # drawn without it, no difference; with it, some


@needs_shared
def test_development_casts_share_nobody_with_the_final_test_or_with_each_other():
    from ser_pipeline.training.laughter import DEFAULT_HELD_OUT_LAUGHERS
    from ser_pipeline.training.laughter_episodes import development_cast, final_test_cast

    final = final_test_cast(SHARED_DATA)
    assert set(final.laughs) == set(DEFAULT_HELD_OUT_LAUGHERS)
    assert {v.split("-")[0] for v in final.voices} == {"nemo", "ravdess"}
    whole, halves = development_cast(SHARED_DATA), [development_cast(SHARED_DATA, part) for part in (0, 1)]
    assert not set(whole.voices) & set(final.voices) and not set(whole.laughs) & set(final.laughs)
    assert not set(halves[0].voices) & set(halves[1].voices) and not set(halves[0].laughs) & set(halves[1].laughs)
    assert set(halves[0].voices) | set(halves[1].voices) == set(whole.voices)
    assert set(halves[0].laughs) | set(halves[1].laughs) == set(whole.laughs) and len(whole.laughs) >= 10
    (episode,) = build_episodes(SHARED_DATA, count=1, minutes=0.5, seed=1, cast=halves[1])
    assert episode.laughs and {laugh.laugher for laugh in episode.laughs} <= set(halves[1].laughs)
