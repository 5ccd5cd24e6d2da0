"""The output schema: the one place that spells table and column names.

Scripts and evaluations depend on these names (see ARCHITECTURE.md, "Output contract");
every writer builds its tables from these pyarrow schemas and nothing else.
"""

from __future__ import annotations

import pyarrow as pa

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")

EMOTION_TO_SENTIMENT: dict[str, str] = {
    "angry": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sad": "negative",
    "neutral": "neutral",
    "happy": "positive",
    "surprise": "positive",
}

EMOTION_PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{e}" for e in EMOTIONS)
# "p_neutral" is taken by the emotion class, hence the suffix on the sentiment column.
SENTIMENT_PROB_COLUMNS: tuple[str, ...] = ("p_negative", "p_neutral_sent", "p_positive")

SEGMENT_KINDS: tuple[str, ...] = ("sentence", "window", "vad")
EPISODE_STATUSES: tuple[str, ...] = ("ok", "failed")

EPISODES = pa.schema(
    [
        ("show", pa.string()),
        ("episode_id", pa.string()),
        ("title", pa.string()),
        ("published", pa.timestamp("s", tz="UTC")),
        ("audio_path", pa.string()),
        ("audio_sha256", pa.string()),
        ("duration_s", pa.float64()),
        ("segmentation", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("models", pa.string()),
        ("pipeline_version", pa.string()),
        ("run_id", pa.string()),
        ("processed_at", pa.timestamp("ms", tz="UTC")),
    ]
)

_SCORES = [(c, pa.float32()) for c in EMOTION_PROB_COLUMNS]
_SENTIMENT_SCORES = [(c, pa.float32()) for c in SENTIMENT_PROB_COLUMNS]
_DIMS = [(c, pa.float32()) for c in DIMENSIONS]

SEGMENTS = pa.schema(
    [
        ("show", pa.string()),
        ("episode_id", pa.string()),
        ("segment_id", pa.int32()),
        ("kind", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("speaker", pa.string()),
        ("text", pa.string()),
        ("emotion", pa.string()),
        *_SCORES,
        ("sentiment", pa.string()),
        *_SENTIMENT_SCORES,
        *_DIMS,
        ("laughter_prob", pa.float32()),
        # Which registry model produced each group of columns (ARCHITECTURE.md: every row
        # records its model).
        ("emotion_model", pa.string()),
        ("dims_model", pa.string()),
        ("laughter_model", pa.string()),
    ]
)

LAUGHTER_EVENTS = pa.schema(
    [
        ("show", pa.string()),
        ("episode_id", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("peak_prob", pa.float32()),
        ("mean_prob", pa.float32()),
        ("model", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "episodes": EPISODES,
    "segments": SEGMENTS,
    "laughter_events": LAUGHTER_EVENTS,
}

# The clip-level predictions file of `ser-pipeline predict`: one row per input file.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "file",
    "emotion",
    *EMOTION_PROB_COLUMNS,
    "sentiment",
    *SENTIMENT_PROB_COLUMNS,
    *DIMENSIONS,
    "laughter_prob",
)

# The per-segment scores that inference produces (everything in SEGMENTS after `text`).
SCORE_COLUMNS: tuple[str, ...] = PREDICTION_COLUMNS[1:]
