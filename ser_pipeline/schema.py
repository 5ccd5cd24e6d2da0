"""The output schema: the one place that spells table and column names.

Scripts and evaluations depend on these names (see ARCHITECTURE.md, "Output contract");
every writer builds its tables from these pyarrow schemas and nothing else.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ser_pipeline.scoring_version import PIPELINE_VERSION

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

# (7, 3): which sentiment each emotion belongs to (emotion probabilities @ this = sentiment's).
SENTIMENT_OF_EMOTION = np.array(
    [[float(EMOTION_TO_SENTIMENT[e] == s) for s in SENTIMENTS] for e in EMOTIONS], np.float32
)

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
        # Beyond the contract: what the rows were computed from (see pipeline.fingerprint), so an
        # unchanged episode is skipped; the audio file's size:mtime lets its hash be reused.
        ("fingerprint", pa.string()),
        ("audio_stat", pa.string()),
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
        ("speaker_source", pa.string()),
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

# The per-segment scores that inference produces (everything in SEGMENTS after `text`).
SCORE_COLUMNS: tuple[str, ...] = (
    "emotion",
    *EMOTION_PROB_COLUMNS,
    "sentiment",
    *SENTIMENT_PROB_COLUMNS,
    *DIMENSIONS,
    "laughter_prob",
)

# The clip-level predictions file of `ser-pipeline predict`: one row per input file; a file
# that could not be scored has empty scores and the reason in `error`.
PREDICTION_COLUMNS: tuple[str, ...] = ("file", *SCORE_COLUMNS, "error")

DESCRIPTIONS: dict[str, str] = {
    "show": "show name (the feed's title, else the show folder's name)",
    "episode_id": "the feed item's guid, else the audio file's stem",
    "title": "episode title (feed), else the file stem",
    "published": "the feed's pubDate (UTC), if any",
    "audio_path": "the decoded audio file",
    "audio_sha256": "sha256 of the audio file's bytes",
    "duration_s": "decoded duration in seconds",
    "segmentation": "how the episode was cut: sentence, vad, or window:<window>/<hop>",
    "status": "'ok' or 'failed'",
    "error": "for failed episodes the reason; for ok ones the warnings, if any",
    "models": "JSON object: the registry model behind each group of columns",
    "pipeline_version": f"ser-pipeline version and scoring version that wrote the rows (`{PIPELINE_VERSION}`)",
    "run_id": "the Prefect flow run that wrote the rows",
    "processed_at": "when the rows were written (UTC)",
    "fingerprint": "sha256 over the audio and transcript hashes, segmentation, models with their weights' "
    "sha256, operating point and pipeline version: a re-run skips the episode while it is unchanged "
    "(empty for transient failures, which are retried)",
    "audio_stat": "the audio file's size:mtime_ns when hashed; while unchanged the hash is reused",
    "segment_id": "0-based index of the segment within the episode",
    "kind": "'sentence' (transcript), 'window' (fixed windows) or 'vad' (voice activity)",
    "start_s": "seconds from the start of the episode's audio",
    "end_s": "seconds from the start of the episode's audio",
    "speaker": "speaker named by the transcript, else by the diarizer if one ran (`S1`, `S2`, ... per "
    "episode from the embedded one)",
    "speaker_source": "where `speaker` came from: 'transcript', 'embedded' (the embedded diarizer) or "
    "'pyannote'; empty without a speaker",
    "text": "the transcript sentence, if any",
    "emotion": "most probable of the 7 emotion classes",
    "sentiment": "most probable of negative, neutral, positive",
    "valence": "0 (negative) .. 1 (positive)",
    "arousal": "0 (calm) .. 1 (excited)",
    "dominance": "0 (submissive) .. 1 (dominant)",
    "laughter_prob": "highest smoothed laughter probability inside the segment",
    "emotion_model": "registry id of the model behind emotion and sentiment columns",
    "dims_model": "registry id of the model behind valence, arousal, dominance",
    "laughter_model": "registry id@operating point behind laughter_prob",
    "duration_s@laughter_events": "event length in seconds",
    "peak_prob": "highest frame probability inside the event",
    "mean_prob": "mean frame probability inside the event",
    "model": "registry id@operating point of the detector",
}
DESCRIPTIONS.update({c: f"probability of {c[2:]} (the 7 sum to 1)" for c in EMOTION_PROB_COLUMNS})
DESCRIPTIONS.update(
    {c: f"probability of {s} sentiment (the 3 sum to 1)" for c, s in zip(SENTIMENT_PROB_COLUMNS, SENTIMENTS)}
)


def schema_markdown() -> str:
    """The schema reference (docs/schema.md), generated from the schemas above."""
    parts = [
        "# Warehouse schema\n\nGenerated from `ser_pipeline/schema.py` (`python -m ser_pipeline.schema > docs/schema.md`).\n"
        "DuckDB file `<warehouse>/podcasts.duckdb`; one view per table over "
        "`<warehouse>/<table>/<show key>/<episode key>.parquet` (keys: bounded names with a hash; the show "
        "is a column in every file, so `pandas.read_parquet('<warehouse>/segments')` reads these columns). "
        "The views resolve relative to the database file: the folder can be copied or moved. Derived views: "
        "`episode_laughter` (laughs and laughs per 10 minutes per episode) and `episode_summary` "
        "(`warehouse/views.sql`).\n"
    ]
    for name, table in TABLES.items():
        parts.append(f"\n## `{name}`\n\n| column | type | meaning |\n|---|---|---|\n")
        for f in table:
            meaning = DESCRIPTIONS.get(f"{f.name}@{name}", DESCRIPTIONS[f.name])
            parts.append(f"| `{f.name}` | {f.type} | {meaning} |\n")
    parts.append(
        "\n## `predict` CSV\n\nOne row per file: `"
        + "`, `".join(PREDICTION_COLUMNS)
        + "`; `file` exactly as given; `error` empty unless the file could not be scored.\n"
    )
    return "".join(parts)


if __name__ == "__main__":
    print(schema_markdown(), end="")
