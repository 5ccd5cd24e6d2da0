"""Laughter false alarms on laughter-free speech, speaker by speaker, for several detectors at once.

Each speaker's clips of one kind (expressive: angry, happy, fearful, surprised; or calm: the
rest) are strung together in a seeded order with short, lightly noisy gaps (as
`evaluate --false-alarm-minutes` strings speech) and scored by every detector twice: as they are,
and with white noise at the shared episodes' level under all of it. Every event counts as a false
alarm: there is no laughter in these clips. A group's rate is its events over its hours; its 95%
interval, and the paired interval of two detectors' difference, come from a bootstrap over
speakers (a drawn speaker's strings count for both detectors), so one speaker whom a detector
happens to fire on shows as a wide interval rather than as a rate.

The groups say whose voices they are, so a reader can tell an unheard voice from a trained one:
nEMO's final-test speakers (Polish) are outside every recipe's training; the RAVDESS actors the
emotion recipes hold out (1, 2, 5, 8, 11) are outside the laughter recipe's scenes when it holds
them out too (`held_out_actors`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ser_pipeline.clip_evaluation import in_split, percentile_interval, speaker_draws
from ser_pipeline.evaluation import EPISODE_NOISE_RMS, strung_speech
from ser_pipeline.laughter import LaughterEvent
from ser_pipeline.training.data import HELD_OUT_ACTORS, nemo_clips, ravdess_clips, ravdess_voices, tess_clips
from ser_pipeline.training.laughter import EXPRESSIVE_EMOTIONS

# A detector: the laughter events it finds in 16 kHz mono samples.
Detector = Callable[[np.ndarray], list[LaughterEvent]]


@dataclass(frozen=True)
class SpeakerCounts:
    """One speaker's string of one kind of speech: its length and each detector's events."""

    speaker: str
    hours: float
    events: dict[str, int]  # detector -> events, as recorded
    events_in_noise: dict[str, int]  # detector -> events, the episodes' noise under the speech


@dataclass(frozen=True)
class GroupFalseAlarms:
    """The false alarms of several detectors on one group's speakers."""

    group: str
    kind: str  # "expressive" or "calm"
    speakers: list[SpeakerCounts] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return sum(s.hours for s in self.speakers)

    def per_hour(self, detector: str, noisy: bool = False) -> float:
        return _rate(self.speakers, detector, noisy)

    def interval(self, detector: str, noisy: bool = False, rounds: int = 1000) -> tuple[float, float]:
        """95% bootstrap interval over speakers of `per_hour`."""
        return percentile_interval([_rate(drawn, detector, noisy) for drawn in self._draws(rounds)])

    def difference_interval(
        self, first: str, second: str, noisy: bool = False, rounds: int = 1000
    ) -> tuple[float, float]:
        """95% paired interval of per_hour(first) - per_hour(second), over speakers."""
        return percentile_interval(
            [_rate(drawn, first, noisy) - _rate(drawn, second, noisy) for drawn in self._draws(rounds)]
        )

    def _draws(self, rounds: int):
        names = [s.speaker for s in self.speakers]
        for rows in speaker_draws(names, rounds, seed=0):
            yield [self.speakers[i] for i in rows]

    def summary(self, detectors: list[str]) -> dict:
        return {
            "group": self.group,
            "kind": self.kind,
            "speakers": len(self.speakers),
            "hours": round(self.hours, 3),
            **{
                name: {
                    "per_hour": round(self.per_hour(name), 1),
                    "interval": self.interval(name),
                    "per_hour_in_noise": round(self.per_hour(name, noisy=True), 1),
                    "interval_in_noise": self.interval(name, noisy=True),
                }
                for name in detectors
            },
        }


def _rate(speakers: list[SpeakerCounts], detector: str, noisy: bool) -> float:
    hours = sum(s.hours for s in speakers)
    events = sum((s.events_in_noise if noisy else s.events)[detector] for s in speakers)
    return events / hours if hours else 0.0


FINAL_TEST_GROUP = "nemo final (Polish, unheard)"


def speech_groups(data, final_test: bool = True) -> dict[str, list]:
    """The laughter-free speech the check reads, by group (name -> clips); without `final_test`,
    not nEMO's final-test speakers (what a recipe is chosen on)."""
    held_out = ravdess_voices(HELD_OUT_ACTORS)
    nemo, ravdess = nemo_clips(data), ravdess_clips(data)
    final = {FINAL_TEST_GROUP: [c for c in nemo if in_split(c, "final")]} if final_test else {}
    return {
        **final,
        "nemo development": [c for c in nemo if in_split(c, "dev")],
        "ravdess actors 1, 2, 5, 8, 11": [c for c in ravdess if c.speaker in held_out],
        "ravdess other actors": [c for c in ravdess if c.speaker not in held_out],
        "tess": tess_clips(data),
    }


def unheard_groups(recipe) -> dict[str, list]:
    """The groups of `speech_groups` whose voices `recipe` never trains on: nEMO's final test, and
    the held-out RAVDESS actors when the recipe holds them out. The figures a model card leads with."""
    groups = speech_groups(recipe.data)
    unheard = [FINAL_TEST_GROUP]
    if set(HELD_OUT_ACTORS) <= set(recipe.held_out_actors):
        unheard.append("ravdess actors 1, 2, 5, 8, 11")
    return {name: groups[name] for name in unheard}


def count_false_alarms(
    detectors: dict[str, Detector],
    groups: dict[str, list],
    seed: int = 0,
    noise_rms: float = EPISODE_NOISE_RMS,
    log: Callable[[str], None] = print,
) -> list[GroupFalseAlarms]:
    """Every detector on every speaker's expressive and calm strings of every group (one string
    in memory at a time)."""
    from ser_pipeline.audio import SAMPLE_RATE

    results = []
    for group, clips in groups.items():
        for kind in ("expressive", "calm"):
            counted = GroupFalseAlarms(group, kind)
            for speaker in sorted({c.speaker for c in clips}):
                files = [
                    c.path
                    for c in clips
                    if c.speaker == speaker and (c.label in EXPRESSIVE_EMOTIONS) == (kind == "expressive")
                ]
                if not files:
                    continue
                rng = np.random.default_rng([seed, len(counted.speakers)])
                samples = strung_speech(files, rng)
                noisy = samples + rng.standard_normal(len(samples)).astype(np.float32) * noise_rms
                counted.speakers.append(
                    SpeakerCounts(
                        speaker,
                        len(samples) / SAMPLE_RATE / 3600,
                        {name: len(detect(samples)) for name, detect in detectors.items()},
                        {name: len(detect(noisy)) for name, detect in detectors.items()},
                    )
                )
            log(
                f"{group}, {kind}: {counted.hours:.2f} h, "
                + ", ".join(f"{name} {counted.per_hour(name):.1f}/h" for name in detectors)
            )
            results.append(counted)
    return results


def network_detector(network, point) -> Detector:
    """One of our laughter networks (or ensembles) at an operating point, on the CPU."""
    import torch

    from ser_pipeline.features import FrontEndConfig, LogMel
    from ser_pipeline.laughter import detect_events
    from ser_pipeline.training.laughter import score_frames

    front_end = LogMel(FrontEndConfig())
    fps = front_end.config.frames_per_second

    def detect(samples: np.ndarray) -> list[LaughterEvent]:
        return detect_events(score_frames(network, front_end.episode(samples, torch.device("cpu"))), fps, point)

    return detect


def registry_detector(model_id: str, operating_point: str = "balanced") -> Detector:
    """A laughter model of the registry (with `SER_REGISTRY`'s extra files; ours, not the Gillick ResNet)."""
    from ser_pipeline.laughter import OperatingPoint
    from ser_pipeline.registry import Registry, load_network, resolve_weights

    spec = Registry.load().get(model_id)
    network = load_network(resolve_weights(spec), spec.architecture).eval()
    return network_detector(network, OperatingPoint(**spec.operating_points[operating_point]))
