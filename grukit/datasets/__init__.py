"""Data for grukit's jobs and examples.

``load_co2()`` returns the weekly Mauna Loa CO2 series shipped in the package
(public domain, see datasets/README.md); ``read_series(path, ...)`` reads a user's
CSV. Both fill gaps by linear interpolation and return plain NumPy arrays.
``grukit.datasets.imdb.load_data`` reads the IMDB reviews in Keras' shape from the
Stanford archive (downloaded once into a cache folder, checksum verified).

The examples' other sources are read offline from optional packages (the
``examples`` extra); their loaders, re-exported here, are in ``sources.py``
(sunspots, reviews, JapaneseVowels, Shakespeare, Bach chorales, ECG) and
``speech.py`` (spoken digits synthesised with espeak-ng, MFCCs). A missing
package raises ``MissingDataSource`` (an ImportError) naming the extra.
"""

from __future__ import annotations

import csv
import os
from typing import Optional, Sequence

import numpy as np

HERE = os.path.dirname(__file__)


class MissingColumn(ValueError):
    """A column asked for is not in a CSV's header (``column``, ``header``, ``path``)."""

    def __init__(self, message: str, column: str, header: list[str], path: str):
        super().__init__(message)
        self.column, self.header, self.path = column, header, path


class NotANumber(ValueError):
    """A cell of a column read as numbers holds something else (``path``, ``line``, ``column``)."""

    def __init__(self, message: str, path: str, line: int, column: str):
        super().__init__(message)
        self.path, self.line, self.column = path, line, column


def interpolate_gaps(values: np.ndarray) -> np.ndarray:
    """Fill NaNs linearly between known neighbours (and with the nearest at the ends)."""
    values = np.array(values, dtype="float64")
    for j in range(values.shape[1]):
        col = values[:, j]
        known = ~np.isnan(col)
        if not known.any():
            raise ValueError(f"column {j} has no values at all")
        col[~known] = np.interp(np.flatnonzero(~known), np.flatnonzero(known), col[known])
    return values


def read_csv(path: str, columns: Sequence[str], header_only: bool = False
             ) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and the rows (the line a row starts on, {column: cell}) of a CSV file in
    UTF-8 (a byte-order mark, as spreadsheets write, is dropped), checked: every one of
    ``columns`` is in the header (else an error listing the header, with a hint where the
    file is separated by something other than commas), and every row has as many cells as
    the header (an unquoted comma inside a value, such as "1,234.5", would otherwise shift
    or drop cells unnoticed). Blank lines are skipped. ``header_only``: the header and no
    rows, the rest of the file unread."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file {path!r} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            for col in columns:
                if col not in header:
                    other = next((s for s in (";", "\t", "|") if len(header) == 1 and s in header[0]), None)
                    hint = (f" (the file looks separated by {other!r}; grukit reads comma-separated files)"
                            if other else "")
                    raise MissingColumn(f"column {col!r} is not in {path!r}; its columns are {header}{hint}",
                                        col, header, path)
            if header_only:
                return header, []
            rows, end = [], reader.line_num
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path!r} line {start}: {len(row)} cells where the header has "
                                     f"{len(header)} ({header}); a value holding a comma must be quoted")
                rows.append((start, dict(zip(header, row, strict=True))))
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.start + 1]
        raise ValueError(f"{path!r} is not UTF-8 text (byte {bad!r}: {exc.reason}); save the CSV as UTF-8"
                         ) from None
    return header, rows


# cells that mark a missing value (pandas.read_csv's defaults: R's write.csv writes NA,
# spreadsheets #N/A, databases NULL)
MISSING = frozenset({"", "NA", "N/A", "n/a", "#N/A", "#N/A N/A", "#NA", "<NA>", "NULL", "null", "None",
                     "NaN", "nan", "-NaN", "-nan", "1.#IND", "-1.#IND", "1.#QNAN", "-1.#QNAN"})


def read_series(path: str, time_column: Optional[str], target_columns: Sequence[str]
                ) -> tuple[list[str], np.ndarray]:
    """(times, values (N, len(target_columns))) from a CSV with a header row.

    Empty cells and the usual marks of a missing value (``MISSING``: NA, N/A, NULL, NaN ...)
    are gaps (interpolated); anything else that is not a number is an error naming the
    file, line and column.
    """
    _, table = read_csv(path, [*([time_column] if time_column else []), *target_columns])
    times, rows = [], []
    for line, row in table:
        times.append(row[time_column] if time_column else str(len(times)))
        values = []
        for col in target_columns:
            cell = row[col].strip()
            try:
                values.append(float("nan") if cell in MISSING else float(cell))
            except ValueError:
                raise NotANumber(f"{path!r} line {line}, column {col!r}: {cell!r} is not a number",
                                 path, line, col) from None
        rows.append(values)
    if not rows:
        raise ValueError(f"data file {path!r} has a header but no rows")
    values = np.array(rows, dtype="float64")
    if not np.isfinite(values[~np.isnan(values)]).all():
        raise ValueError(f"{path!r} holds infinite values")
    return times, interpolate_gaps(values)


def load_co2() -> tuple[list[str], np.ndarray]:
    """Weekly Mauna Loa CO2 (ppm), 1958-2001: (dates, values (2284, 1)), gaps interpolated."""
    return read_series(os.path.join(HERE, "co2_weekly.csv"), "date", ["co2"])


from .sources import (  # noqa: E402  (after the helpers above, which they do not need)
    MissingDataSource,
    load_bach_melodies,
    load_ecg,
    load_japanese_vowels,
    load_reviews,
    load_shakespeare,
    load_sunspots,
    load_tweets,
)
from .speech import espeak_voices, mfcc, synthesize_digits  # noqa: E402

__all__ = [
    "MissingDataSource", "espeak_voices", "interpolate_gaps", "load_bach_melodies", "load_co2",
    "load_ecg", "load_japanese_vowels", "load_reviews", "load_shakespeare", "load_sunspots", "load_tweets",
    "mfcc", "read_csv", "read_series", "synthesize_digits",
]
