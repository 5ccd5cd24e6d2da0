"""Leave-actors-out cross-validation of the emotion recipe, temperature scaling, the report."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from ser_pipeline.architectures import calibrate_dims
from ser_pipeline.metrics import concordance_correlation
from ser_pipeline.training.crossval import (
    actor_folds,
    expected_calibration_error,
    fit_dims_affine,
    fit_temperature,
    negative_log_likelihood,
    nested_dims_calibration,
    softmax,
)
from ser_pipeline.training.cv_report import confusion_svg

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_folds_hold_out_every_actor_once_with_both_sexes():
    folds = actor_folds()
    assert len(folds) == 5 and sorted(a for f in folds for a in f) == list(range(1, 21))
    assert all({a % 2 for a in fold} == {0, 1} for fold in folds)  # odd male, even female
    with pytest.raises(ValueError, match="do not split"):
        actor_folds(size=3)


def test_temperature_scaling_recovers_an_overconfident_models_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (4000, 7))
    labels = np.array([rng.choice(7, p=p) for p in softmax(true_logits)])
    overconfident = 3.0 * true_logits  # a model whose logits are three times too large
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert negative_log_likelihood(overconfident, labels, temperature) < negative_log_likelihood(overconfident, labels)
    before = expected_calibration_error(softmax(overconfident), labels)
    after = expected_calibration_error(softmax(overconfident, temperature), labels)
    assert after < 0.03 < before


def test_expected_calibration_error_of_a_perfectly_calibrated_and_a_sure_wrong_model():
    labels = np.array([0, 1] * 50)
    assert expected_calibration_error(np.array([[0.5, 0.5]] * 100), labels) == pytest.approx(0.0, abs=1e-9)
    wrong = np.array([[0.0, 1.0], [1.0, 0.0]] * 50)  # always sure, always wrong
    assert expected_calibration_error(wrong, labels) == pytest.approx(1.0)


def test_dims_calibration_gives_a_shrunken_regressor_the_targets_mean_and_spread():
    rng = np.random.default_rng(0)
    targets = rng.uniform(0.1, 0.9, (3000, 3))
    shrunken = 0.5 + 0.4 * (targets - 0.5) + rng.normal(0, 0.03, targets.shape)  # pulled towards the middle
    affine = fit_dims_affine(shrunken, targets)
    calibrated = calibrate_dims(shrunken, affine)
    assert calibrated.mean(0) == pytest.approx(targets.mean(0), abs=0.01)
    assert calibrated.std(0) == pytest.approx(targets.std(0), rel=0.03)
    ccc = [concordance_correlation(targets[:, i], x[:, i]) for x in (shrunken, calibrated) for i in range(3)]
    assert min(ccc[3:]) > 0.93 > 0.8 > max(ccc[:3])
    assert calibrate_dims(shrunken, None) is shrunken and calibrate_dims(shrunken + 5, affine).max() == 1.0


def test_nested_dims_calibration_maps_each_fold_by_the_other_folds_only():
    targets = np.tile(np.linspace(0, 1, 10), (3, 1)).T.repeat(2, 0)  # two folds, the same targets
    folds = np.repeat([0, 1], 10)
    predicted = 0.5 * targets + np.where(folds == 0, 0.0, 0.2)[:, None]  # fold 1 runs 0.2 high
    nested = nested_dims_calibration(predicted, targets, folds)
    # Fold 0 mapped by fold 1's affine (which takes the 0.2 off), and the other way round.
    assert nested[folds == 0] == pytest.approx(np.clip(2 * predicted[folds == 0] - 0.4, 0, 1), abs=1e-3)
    assert nested[folds == 1] == pytest.approx(np.clip(2 * predicted[folds == 1], 0, 1), abs=1e-3)
    shifted = nested_dims_calibration(predicted + 1, targets, folds, fit_on=predicted)  # fitted elsewhere
    assert shifted[folds == 1] == pytest.approx(np.clip(2 * predicted[folds == 1] + 2, 0, 1), abs=1e-3)


def test_confusion_image_is_valid_svg_with_a_cell_per_pair():
    matrix = [[5, 1], [0, 4]]
    root = ElementTree.fromstring(confusion_svg(matrix, ["a", "<b>"], "t"))
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"5", "1", "0", "4", "83%", "100%", "<b>"} <= set(texts)
    assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) == 1 + 4  # background + cells


@pytest.mark.skipif(not (SHARED_DATA / "ravdess").is_dir(), reason="needs ../shared/data")
def test_cross_validation_pools_held_out_outputs_and_writes_the_report(tmp_path):
    """A tiny run (one epoch on 600 clips, two folds of ten actors): every held-out clip is
    scored once by the model that never heard its speaker; the report and image are written."""
    from ser_pipeline.training.crossval import cross_validate, to_json
    from ser_pipeline.training.cv_report import write_report
    from ser_pipeline.training.emotion import EmotionRecipe
    from ser_pipeline.training.speaker_branch import cross_validate_branch

    recipe = EmotionRecipe(
        data=SHARED_DATA, epochs=1, clips_limit=600, eval_every=100, speed_share=0.5, reverb_share=0.5
    )
    cv = cross_validate(recipe, actor_folds(size=10), jobs=1, log=lambda _: None)
    for fold in cv.folds:
        assert fold.clips and all(c.corpus == "ravdess" for c in fold.clips)
        assert {int(c.speaker.split("-")[1]) for c in fold.clips} <= set(fold.held_out)
        assert fold.predictions["emotion"].shape == (len(fold.clips), 7)
    assert cv.pooled["clips"] == sum(len(f.clips) for f in cv.folds)
    assert np.sum(cv.pooled["confusion"]) == cv.pooled["clips"]
    assert set(cv.temperatures) == {"emotion", "sentiment"} and all(t > 0 for t in cv.temperatures.values())
    document = to_json(cv, recipe, "ser-pipeline train emotion-cv")
    document["speaker_branch"] = branch = cross_validate_branch(document, SHARED_DATA)
    # The branch learns from the training actors' statistics (RAVDESS clips with network
    # outputs), so it learns something even when the one-epoch network has not.
    assert branch["scores"]["branch"]["emotion_uar"] > 0.3
    assert set(branch["scores"]) == {
        "network",
        "branch",
        "fused",
        "branch (neutral-heavy baseline)",
        "fused (neutral-heavy baseline)",
        "branch (speakers in noise)",
    }
    dims = branch["dims"]
    assert set(dims["calibration"]) == {"network", "fused"} and len(dims["calibration"]["fused"]["scale"]) == 3
    assert {"network, calibrated", "fused, calibrated", "fused, calibrated (speakers in noise)"} <= set(dims["scores"])
    # The branch regresses arousal from loudness and pitch relative to the speaker: it beats chance.
    assert dims["scores"]["branch"]["arousal_ccc"] > 0.3
    markdown, image, fused_image = write_report(document, tmp_path)
    assert np.sum(branch["fused_confusion"]) == cv.pooled["clips"] and fused_image.name in markdown.read_text()
    text = markdown.read_text()
    assert "01,02,03,04,05,06,07,08,09,10" in text and f"{cv.pooled['emotion_uar']:.3f}" in text
    assert (
        f"background noise in {recipe.noise_share:.0%} of the crops; 50% of the crops played 0.9 to 1.1 times as fast; 50% of the crops in a synthetic room)"
        in text
    )
    assert f"| branch | {branch['scores']['branch']['emotion_uar']:.3f}" in text
    assert f"| fused, calibrated | {dims['scores']['fused, calibrated']['valence_ccc']:.3f}" in text
    assert image.name in text and ElementTree.parse(image).getroot().tag.endswith("svg")


def test_the_speaker_context_recipe_trains_an_ensemble_that_round_trips_and_calibrates(tmp_path):
    """A tiny run of the default recipe's shape (two members side by side, speaker context):
    the members differ (seeds), the held-out scores say what the context is worth, the
    published file loads back to the same outputs, and the fusion calibration on the held-out
    actors gives temperatures and dims calibrations the pipeline reads."""
    import torch

    from ser_pipeline.architectures import EmotionEnsemble, EmotionNetConfig
    from ser_pipeline.registry import load_network, save_network
    from ser_pipeline.training.emotion import EmotionRecipe, train
    from ser_pipeline.training.speaker_branch import fusion_calibration, train_branch

    recipe = EmotionRecipe(
        data=SHARED_DATA,
        epochs=1,
        clips_limit=400,
        eval_every=100,
        held_out_actors=(1, 2, 3, 4),
        members=2,
        network=EmotionNetConfig(speaker_context=1),
        speed_share=0.5,  # the speaker groups' path through speed perturbation and rooms
        reverb_share=0.5,
    )
    trained = train(recipe, log=lambda _: None)
    network = trained.network
    assert isinstance(network, EmotionEnsemble) and network.config.speaker_context
    first, second = (member.emotion.weight for member in network.members)
    assert not torch.equal(first, second)
    assert set(trained.scores["context_withheld"]) == {"emotion_uar", "sentiment_uar"}
    assert trained.predictions["emotion"].shape == (len(trained.held_out_clips), 7)
    save_network(network, "emotion-net-ensemble", tmp_path / "v.safetensors")
    loaded = load_network(tmp_path / "v.safetensors")
    features, lengths = torch.randn(2, 120, 84), torch.tensor([120, 60])
    with torch.no_grad():
        assert torch.allclose(loaded(features, lengths)["emotion"], network(features, lengths)["emotion"])
    branch, clips = train_branch(SHARED_DATA, (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16), None)
    assert branch.config.network_inputs == 0 and branch.dims is not None
    assert {c.speaker for c in clips} == {"ravdess-17", "ravdess-18", "ravdess-19", "ravdess-20"}
    temperatures, calibration, scores = fusion_calibration(SHARED_DATA, (1, 2), loaded, branch, 0.3)
    assert set(temperatures) == {"emotion", "sentiment", "fused_emotion"} and min(temperatures.values()) > 0
    assert set(calibration) == {"network", "fused"} and len(calibration["fused"]["shift"]) == 3
    assert scores["clips"] == 120 and scores["fused_emotion_uar"] > 0.2  # the branch learns from 4 actors


def test_the_command_lines_held_out_actors_are_the_recipes():
    from ser_pipeline.training.commands import HELD_OUT
    from ser_pipeline.training.data import HELD_OUT_ACTORS, ravdess_voices

    assert tuple(int(a) for a in HELD_OUT.split(",")) == HELD_OUT_ACTORS
    assert "ravdess-05" in ravdess_voices(HELD_OUT_ACTORS) and len(ravdess_voices(HELD_OUT_ACTORS)) == 5
