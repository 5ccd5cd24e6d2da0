"""Leave-laughers-out check of the laughter recipe (trains tiny models on ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA, needs_shared
from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.training.laughter import DEFAULT_HELD_OUT_LAUGHERS, LaughterRecipe
from ser_pipeline.training.laughter_cv import (
    BALANCED,
    HARD_CONDITIONS,
    THRESHOLDS,
    cross_validate_laughers,
    laugher_folds,
    scenes_around_laughs,
    scenes_around_vocalizations,
    vocalizer_folds,
)

pytestmark = [needs_shared, pytest.mark.slow]


def test_folds_deal_out_every_laugher_outside_the_episodes_once():
    folds = laugher_folds(LaughterRecipe(data=SHARED_DATA), count=4)
    laughers = [laugher for fold in folds for laugher in fold]
    assert len(folds) == 4 and len(laughers) == len(set(laughers)) == 13
    assert not set(laughers) & set(DEFAULT_HELD_OUT_LAUGHERS)


def test_each_held_out_laugh_sits_inside_its_scene_between_speech():
    recipe = LaughterRecipe(data=SHARED_DATA)
    fold = laugher_folds(recipe)[0]
    scenes = scenes_around_laughs(recipe, fold)
    plain = [s for s in scenes if s["condition"] == "plain"]
    assert len(plain) == 3 * len(fold)  # one clip per laugher: whole, and two excerpts
    assert [s["condition"] for s in scenes if s["condition"] != "plain"] == list(HARD_CONDITIONS) * len(fold)
    for scene in plain:
        start, end = scene["laugh"]
        assert 0.5 < start < end < len(scene["samples"]) / 16_000 - 0.5
        assert scene["laugher"] in fold
    for scene in scenes:
        if scene["condition"] == "close, over the sentence's end":  # starts before the speech before it ends
            start, end = scene["laugh"]
            before = scene["samples"][: int(start * 16_000)]
            assert np.abs(before[-int(0.15 * 16_000) :]).max() > 0.01
    again = scenes_around_laughs(recipe, fold)  # the same scenes each time (the folds' truth)
    assert all(np.array_equal(a["samples"], b["samples"]) for a, b in zip(scenes, again, strict=True))


def test_everyone_else_is_dealt_into_folds_once():
    recipe = LaughterRecipe(data=SHARED_DATA)
    folds = vocalizer_folds(recipe, count=4)
    people = [person for fold in folds for person in fold]
    assert len(people) == len(set(people)) > 300 and max(map(len, folds)) - min(map(len, folds)) <= 1
    assert not set(people) & {laugher for fold in laugher_folds(recipe) for laugher in fold}
    assert not set(people) & set(DEFAULT_HELD_OUT_LAUGHERS)


def test_a_fold_trains_without_its_laughers_and_reports_each_of_them():
    recipe = LaughterRecipe(data=SHARED_DATA, epochs=1, scenes_per_epoch=16, speech_clips=20)
    fold, vocalizers = laugher_folds(recipe)[1], vocalizer_folds(recipe, count=40)[0]
    result = cross_validate_laughers(recipe, [fold], jobs=1, vocalizers=[vocalizers])
    unheard = scenes_around_vocalizations(recipe, fold + vocalizers)
    assert result["vocalizations"] == len(unheard) > 5
    assert sum(e["clips"] for e in result["per_vocalization"].values()) == len(unheard)
    assert "laughing" not in result["per_vocalization"]
    assert set(result["vocalizations_by_threshold"]) == {str(t) for t in THRESHOLDS}
    assert result["laughs"] == 3 * len(fold) and set(result["per_laugher"]) == set(fold)
    assert [result["hard_conditions"][c]["laughs"] for c in HARD_CONDITIONS] == [len(fold)] * len(HARD_CONDITIONS)
    assert 0.0 <= result["laugh_recall"] <= 1.0 and result["false_alarms_per_speech_hour"] >= 0.0
    assert sum(e["found"] for e in result["per_laugher"].values()) == round(result["laugh_recall"] * result["laughs"])
    assert set(result["by_threshold"]) == {str(t) for t in THRESHOLDS}
    assert result["by_threshold"][str(BALANCED)]["laugh_recall"] == result["laugh_recall"]


def test_the_recipe_trains_on_the_chosen_vocalization_classes_and_names_unknown_ones():
    from dataclasses import replace

    from typer.testing import CliRunner

    from ser_pipeline.cli import app
    from ser_pipeline.training.data import nonverbal_clips
    from ser_pipeline.training.laughter import PODCAST_VOCALIZATIONS, negative_classes

    recipe, clips = LaughterRecipe(data=SHARED_DATA), nonverbal_clips(SHARED_DATA)
    assert negative_classes(recipe, clips) == set(PODCAST_VOCALIZATIONS) and len(PODCAST_VOCALIZATIONS) == 9
    every = negative_classes(replace(recipe, vocalization_classes=None), clips)
    assert len(every) == 15 and "laughing" not in every and set(PODCAST_VOCALIZATIONS) < every
    chosen = replace(recipe, vocalization_classes=("coughing", "sighing"))
    assert negative_classes(chosen, clips) == {"coughing", "sighing"}
    arguments = ["train", "laughter-cv", "--data", str(SHARED_DATA), "--negative-classes", "coughing,giggling"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2 and "giggling" in result.output and "throat-clearing" in result.output
    negative_window = CliRunner().invoke(app, ["train", "laughter", "--data", str(SHARED_DATA), "--pcen-window", "-1"])
    assert negative_window.exit_code == 2 and "--pcen-window" in negative_window.output
    for option, value in (("--speech-corpora", "ravdess,klingon"), ("--held-out-actors", "1,two")):
        wrong = CliRunner().invoke(app, ["train", "laughter", "--data", str(SHARED_DATA), option, value])
        assert wrong.exit_code == 2 and option in wrong.output, wrong.output
    unknown_model = CliRunner().invoke(app, ["train", "laughter-speech", "--model", "no-such-model"])
    assert unknown_model.exit_code == 2 and "no-such-model" in unknown_model.output


def test_laugh_types_and_the_paired_recall_interval():
    from ser_pipeline.training.laughter_cv import laugh_types, recall_difference_interval

    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    voiced = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    high = (0.3 * np.sin(2 * np.pi * 900 * t)).astype(np.float32)
    breath = (0.05 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    assert laugh_types(voiced) == () and laugh_types(high) == ("high-pitched",)
    assert laugh_types(breath) == ("breathy",)
    same = {"a": {"laughs": 3, "found": 3}, "b": {"laughs": 3, "found": 1}}
    assert recall_difference_interval(same, same) == (0.0, 0.0)
    better = {"a": {"laughs": 3, "found": 3}, "b": {"laughs": 3, "found": 3}}
    low, high_end = recall_difference_interval(better, same)
    assert 0.0 <= low and 0 < high_end <= 0.6667  # rounded to 4 places


def test_a_candidate_trained_without_the_final_test_reads_none_of_it_and_says_so(tmp_path):
    import json

    from typer.testing import CliRunner

    from ser_pipeline.cli import app

    published = CliRunner().invoke(app, ["train", "laughter", "--no-final-test", "--publish"])
    assert published.exit_code == 2 and "--no-final-test" in published.output
    arguments = ["train", "laughter", "--data", str(SHARED_DATA), "--no-final-test", "--members", "1", "--epochs", "1"]
    result = CliRunner().invoke(app, [*arguments, "--models-dir", str(tmp_path), "--model-id", "candidate"])
    assert result.exit_code == 0, result.output
    assert "nemo final" not in result.output and "test-01" not in result.output  # nothing of the final test read
    card = (tmp_path / "candidate.md").read_text()
    assert "## Final test: not measured" in card and "False alarms on voices no recipe trained on" not in card
    (entry,) = json.loads((tmp_path / "registry.json").read_text())["models"]
    assert "laughter_event_f1" in entry["scores"]  # the shared episodes: development data
    assert not [key for key in entry["scores"] if "final" in key or key.startswith("test_episodes")]
