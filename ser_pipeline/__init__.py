"""ser-pipeline: emotion, valence/arousal/dominance and laughter analytics for podcast archives."""

__version__ = "0.1.0"
