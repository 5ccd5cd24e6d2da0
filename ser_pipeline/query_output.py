"""Writing `query` results for people and for scripts: a table on a terminal; CSV, JSON or
Parquet at full precision (CSV when the output is piped or redirected and no format is named).

Several statements give several results: a table each, CSV blocks separated by a blank line,
JSON one array of row objects per statement (one statement: the array itself); Parquet holds one
result, so it takes one statement."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import shutil
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ser_pipeline.files import atomic_write

if TYPE_CHECKING:
    import pyarrow as pa


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class OutputRefused(ValueError):
    """Results that cannot be written as asked; the message says why."""


def choose_format(named: OutputFormat | None, output: Path | None, terminal: bool) -> OutputFormat:
    """The format named; else the output file's extension (.csv, .json, .parquet; .txt is a
    table); else a table on a terminal and CSV otherwise."""
    if named is not None:
        return named
    if output is not None:
        by_extension = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".txt": "table"}
        if output.suffix.lower() in by_extension:
            return OutputFormat(by_extension[output.suffix.lower()])
        return OutputFormat.csv
    return OutputFormat.table if terminal else OutputFormat.csv


def write_results(results: list[pa.Table], fmt: OutputFormat, output: Path | None, stdout: IO[str]) -> None:
    """Each result in `fmt`, to `output` (written whole or not at all) or to `stdout`."""
    if fmt is OutputFormat.parquet:
        if output is None:
            raise OutputRefused("parquet is a binary format: give --output FILE.parquet")
        if len(results) != 1:
            raise OutputRefused(f"a Parquet file holds one result; the SQL gave {len(results)} (run them apart)")
        import pyarrow.parquet as pq

        with atomic_write(output) as temporary:
            pq.write_table(results[0], temporary)
        return
    text = {OutputFormat.table: _tables, OutputFormat.csv: _csv, OutputFormat.json: _json}[fmt](results, output)
    if output is None:
        stdout.write(text)
    else:
        with atomic_write(output) as temporary:
            temporary.write_text(text, encoding="utf-8")


def _csv(results: list[pa.Table], output: Path | None) -> str:
    buffer = io.StringIO()
    for index, table in enumerate(results):
        if index:
            buffer.write("\n")
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in _rows(table):
            writer.writerow(["" if value is None else _plain(value) for value in row])
    return buffer.getvalue()


def _json(results: list[pa.Table], output: Path | None) -> str:
    documents = [[dict(zip(t.column_names, map(_json_value, row), strict=True)) for row in _rows(t)] for t in results]
    return json.dumps(documents[0] if len(documents) == 1 else documents, indent=1, allow_nan=False) + "\n"


def _tables(results: list[pa.Table], output: Path | None) -> str:
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    # On a terminal, as wide as it is; into a file, wide enough for every column.
    width = shutil.get_terminal_size().columns if output is None else 10_000
    console = Console(file=buffer, force_terminal=False, width=width)
    for table in results:
        shown = Table(*table.column_names)
        for row in _rows(table):
            shown.add_row(*("" if value is None else _short(value) for value in row))
        console.print(shown)
    return buffer.getvalue()


def _rows(table: pa.Table):
    columns = [column.to_pylist() for column in table.columns]
    return zip(*columns, strict=True) if columns else iter(())


def _plain(value) -> str:
    """Full precision: a float as its shortest exact decimal (3456.789 stays 3456.789)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _short(value) -> str:
    """For reading: floats to 4 decimal places (times keep their seconds: 3456.789)."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else str(round(value, 4))
    return _plain(value)


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return value
    return _plain(value)  # dates and times in ISO form, bytes in hex, the rest as text
