"""Laughter false alarms per hour on expressive speech without laughter, per corpus and emotion
group: the angry, happy, fearful and surprised clips of RAVDESS and TESS (English) and of nEMO
(Polish, a language the detector never heard), strung together as `evaluate
--false-alarm-minutes` strings speech (short lightly noisy gaps), scored as they are and under
the episodes' noise level. The issue's bar: at most 6 an hour in any language.

Usage: .venv/bin/python research/laughter_expressive_false_alarms.py [--minutes 30] [--laughter-model ID]
"""

from __future__ import annotations

import argparse
import json

EXPRESSIVE = ("angry", "happy", "fear", "surprise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="speech strung together per group")
    parser.add_argument("--laughter-model", default=None, help="registry id (default: the registry's)")
    args = parser.parse_args()

    from ser_pipeline.evaluation import laughter_false_alarms
    from ser_pipeline.inference import Analyzer
    from ser_pipeline.training.data import nemo_clips, ravdess_clips, shared_data_dir, tess_clips

    data = shared_data_dir()
    analyzer = Analyzer(
        device="cpu", emotion_model="ser-crnn-v3", dims_model="ser-crnn-v3", laughter_model=args.laughter_model
    )
    corpora = {"ravdess": ravdess_clips(data), "tess": tess_clips(data), "nemo": nemo_clips(data)}
    results = {"laughter": analyzer.models.ids["laughter"]}
    for corpus, clips in corpora.items():
        for group in ("expressive", "neutral"):
            chosen = [c.path for c in clips if (c.label in EXPRESSIVE) == (group == "expressive")]
            clean, noisy = laughter_false_alarms(analyzer, chosen, args.minutes)
            results[f"{corpus} {group}"] = {
                "hours": clean["speech_hours"],
                "per_hour": round(clean["false_alarms_per_hour"], 1),
                "per_hour_in_noise": round(noisy["false_alarms_per_hour"], 1),
            }
            print(corpus, group, results[f"{corpus} {group}"], flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
