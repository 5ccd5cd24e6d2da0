"""Clip-level predictions (`ser-pipeline predict`): each file one segment, read alone, or with the
other files of its speaker strung together as the sentences of an episode, so that the speaker
context and the speaker branch read each clip against that speaker's others."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_pipeline.schema import SCORE_COLUMNS

SPEAKER_SOURCES = ("folder", "prefix", "csv:PATH")


@dataclass
class Prediction:
    file: str  # exactly as given
    scores: dict = field(default_factory=dict)  # SCORE_COLUMNS -> value; empty when it failed
    error: str | None = None

    def row(self) -> dict:
        return {"file": self.file, **self.scores, "error": self.error}


def speaker_of(source: str) -> Callable[[Path], str | None]:
    """Who speaks in a file, by `source`: `folder` (the file's folder name), `prefix` (its name up
    to the first `_` or `-`, as nEMO's and TESS's files), or `csv:PATH` (a CSV with `file` and
    `speaker` columns; `file` as given on the command line). ValueError for anything else."""
    if source == "folder":
        return lambda path: path.parent.name or None
    if source == "prefix":
        return lambda path: path.stem.replace("-", "_").split("_")[0] or None
    if source.startswith("csv:"):
        table = Path(source.removeprefix("csv:"))
        try:
            with table.open(newline="", encoding="utf-8") as handle:
                speakers = {row["file"]: row["speaker"] or None for row in csv.DictReader(handle)}
        except (OSError, KeyError, csv.Error) as error:
            raise ValueError(f"{table}: a CSV with file and speaker columns is needed ({error})") from None
        return lambda path: speakers.get(str(path))
    raise ValueError(f"{source!r}: choose {' | '.join(SPEAKER_SOURCES)}")


def predict_files(analyzer, files: list[Path], speaker: Callable[[Path], str | None] | None = None) -> list[Prediction]:
    """One prediction per file, in the order given. Without `speaker`, or for files whose speaker
    is unknown, each file alone; otherwise a speaker's files together. A file that cannot be read
    or scored gets its reason and no scores; the others are scored."""
    from ser_pipeline.audio import decode
    from ser_pipeline.evaluation import clips_together_columns

    predictions = [Prediction(str(file)) for file in files]
    samples: dict[int, np.ndarray] = {}
    for index, file in enumerate(files):
        try:
            if not file.is_file():
                raise FileNotFoundError("no such file")
            samples[index] = decode(file).samples
        except Exception as error:  # noqa: BLE001 - one bad file costs its row, not the batch
            predictions[index].error = " ".join(str(error).split()) or type(error).__name__
    groups: dict[str | None, list[int]] = {}
    for index in samples:
        who = speaker(files[index]) if speaker else None
        groups.setdefault(who, []).append(index)
    for who, indices in groups.items():
        batches = [[i] for i in indices] if who is None else [indices]
        for batch in batches:
            try:
                if who is None:
                    columns = analyzer.analyze_whole(samples[batch[0]]).columns
                else:
                    columns = clips_together_columns(analyzer, [samples[i] for i in batch], who)
            except Exception as error:  # noqa: BLE001 - as above, for the files of this batch
                for i in batch:
                    predictions[i].error = " ".join(str(error).split()) or type(error).__name__
                continue
            for row, i in enumerate(batch):
                predictions[i].scores = {c: columns[c][row] for c in SCORE_COLUMNS}
    return predictions
