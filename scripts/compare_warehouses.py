"""Do two warehouses hold the same scores? For a change that must not change an output (a
refactor, a library swap): run the same archive before and after, then

    .venv/bin/python scripts/compare_warehouses.py BEFORE_WAREHOUSE AFTER_WAREHOUSE

compares the `segments` and `laughter_events` tables row by row (ordered by show, episode and
time), every column, exactly. Exit 0 when they are equal, 1 with the first difference otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ORDER = {"segments": ["show", "episode_id", "start_s", "end_s"], "laughter_events": ["show", "episode_id", "start_s"]}


def table(warehouse: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(warehouse / name).sort_values(ORDER[name]).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    for name in ORDER:
        before, after = table(args.before, name), table(args.after, name)
        try:
            pd.testing.assert_frame_equal(before, after, check_exact=True)
        except AssertionError as difference:
            print(f"{name}: differ\n{difference}")
            return 1
        print(f"{name}: {len(before)} rows, equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
