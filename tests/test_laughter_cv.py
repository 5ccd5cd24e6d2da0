"""Leave-laughers-out check of the laughter recipe (trains tiny models on ../shared/data)."""

from __future__ import annotations

import pytest

from conftest import SHARED_DATA, needs_shared
from ser_pipeline.training.laughter import DEFAULT_HELD_OUT_LAUGHERS, LaughterRecipe
from ser_pipeline.training.laughter_cv import (
    BALANCED,
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
    assert len(scenes) == 3 * len(fold)  # one clip per laugher: whole, and two excerpts
    for scene in scenes:
        start, end = scene["laugh"]
        assert 0.5 < start < end < len(scene["samples"]) / 16_000 - 0.5
        assert scene["laugher"] in fold


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
