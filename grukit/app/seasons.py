"""A series' season and the forecaster's window, when the job's config leaves them out.

The season comes from the time stamps' spacing where they say it (the usual seasons of
each frequency, as R's ``ts`` frequencies and the M4 competition take them):

=================================================  ======
time stamps a fixed gap apart                      season
=================================================  ======
half-hours / hours                                 48 / 24 (a day)
days                                               7 (a week)
business days (Monday to Friday, no weekend rows)  5 (a week)
weeks                                              52 (a year)
months ("2001-03-01", "1987 Jan", "1987M01" ...)   12
quarters ("1959Q1", "1959 Q1", 1959.25 ...)        4
years (1959, 1959.0 ...)                           1
=================================================  ======

A season of 52 on weekly stamps is a year, which is 52.18 weeks long: ``period`` gives that
length for the Fourier terms of ARIMA's season (seasonal naive and Holt-Winters need whole
steps and keep 52).

Dates may be ISO ("2001-03-01", "2001-03-01 13:00"), numeric as spreadsheets and other
locales write them ("01/03/2001", "3/1/2001 0:00", "01.03.2001", "2001/03/01"; read_dates
tells day from month by a field above 12 or by which reading is regularly spaced), with the
month's name ("01-Mar-2001", "Mar 1, 2001") or eight digits ("20010301"). Monthly dates on
each month's last day (pandas' month-end frequency) are months apart, as those on one day of
the month are. Dates of business days (a stock price's trading days: Monday to Friday, never a
Saturday or a Sunday, a Friday followed by the Monday) are a step a business day apart: their
season is a week of 5 steps, a missing weekday (a holiday) is a skipped step, and the stamps
after the last continue on weekdays. Month labels may also put the month first ("Jan 1987",
"January-1987"); ISO week labels ("2020-W05") are weeks apart across years of 52 and 53
weeks. Decimal years (R's ``time()`` of a ``ts``: 1949.0833 for February 1949) are read by their
gap: 1/12 is monthly, 1/4 quarterly, 1/52 weekly, 1/7 daily. Without usable
time stamps the autocorrelation decides: the lag in 2 .. n/3 (at most 60) where the
autocorrelation of the series' changes is highest, when it is a clear peak (above its
neighbours and above 3/sqrt(n): with some 60 lags tried, the usual 2/sqrt(n) white-noise
band finds a season in most random walks); else no season (1).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Optional

import numpy as np

MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
# a gap in days -> the season of that frequency
_BY_DAYS = ((1 / 48, 48), (1 / 24, 24), (1, 7), (7, 52), (30.44, 12), (91.31, 4), (365.25, 1))
# a gap in decimal years -> the season
_BY_YEARS = ((1 / 365.25, 7), (1 / 52.18, 52), (1 / 12, 12), (1 / 4, 4), (1.0, 1))


def default_window(season: int, length: Optional[int] = None) -> int:
    """Two seasons of past steps, at least 10 and at most 52; for a series of ``length`` steps,
    at most a third of it (at least 3), so that a short series (a yearly one of 20 steps)
    still gives windows enough for a training, a validation and a test part."""
    window = int(max(10, min(2 * max(season, 1), 52)))
    return window if length is None else max(3, min(window, length // 3))


def _match(gap: float, table: tuple) -> Optional[int]:
    for length, season in table:
        if abs(gap - length) <= 0.08 * length:
            return season
    return None


_QUARTER = re.compile(r"(\d{4})(\s*-?\s*)[qQ]([1-4])")
_MONTH = re.compile(r"(\d{4})([\s-]+)([A-Za-z]{3})[A-Za-z]*")
_MONTH_FIRST = re.compile(r"([A-Za-z]{3}[A-Za-z]*)([\s-]+)(\d{4})")  # "Jan 1990", "January-1990"
_M_LABEL = re.compile(r"(\d{4})([mM])(\d{1,2})")  # "1990M01", "1990m1" (EViews, Eurostat)
FULL_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December"]


def _month_number(word: str) -> Optional[int]:
    """1..12 for a month's name or its first three letters or more ("Jan", "Janu", "January")."""
    number = MONTHS.get(word[:3].lower())
    return number if number and FULL_MONTHS[number - 1].lower().startswith(word.lower()) else None


def _month_first(t: list[str]):
    """Month-year labels ("Jan 1990", "January-1990") as label_months returns them, or None."""
    found = [_MONTH_FIRST.fullmatch(s) for s in t]
    if not all(found) or not all(_month_number(m.group(1)) for m in found):
        return None
    sep, name = found[-1].group(2), found[-1].group(1)
    names = FULL_MONTHS if len(name) > 3 else [m.capitalize() for m in MONTHS]
    style = str.upper if name.isupper() else (str.lower if name.islower() else str)
    counts = [int(m.group(3)) * 12 + _month_number(m.group(1)) - 1 for m in found]
    return counts, lambda c: f"{style(names[c % 12])}{sep}{c // 12}"


def label_months(times: list[str]):
    """Quarter labels ("1959Q1", "1959 Q1") or month labels ("1987 Jan", "Jan 1987", "January
    1987", "1987M01") as months since year 0, with a function writing a count back in the same
    style; None for other stamps."""
    t = [s.strip() for s in times]
    quarters = [_QUARTER.fullmatch(s) for s in t]
    if all(quarters):
        sep, upper = quarters[-1].group(2), "Q" in t[-1]
        counts = [int(m.group(1)) * 12 + 3 * (int(m.group(3)) - 1) for m in quarters]
        return counts, lambda c: f"{c // 12}{sep}{'Q' if upper else 'q'}{c % 12 // 3 + 1}"
    months = [_MONTH.fullmatch(s) for s in t]
    if all(months) and all(m.group(3).lower() in MONTHS for m in months):
        sep, name = months[-1].group(2), months[-1].group(3)
        names = [m.capitalize() for m in MONTHS]
        style = str.upper if name.isupper() else (str.lower if name.islower() else str)
        counts = [int(m.group(1)) * 12 + MONTHS[m.group(3).lower()] - 1 for m in months]
        return counts, lambda c: f"{c // 12}{sep}{style(names[c % 12])}"
    labels = [_M_LABEL.fullmatch(s) for s in t]
    if all(labels) and all(1 <= int(m.group(3)) <= 12 for m in labels):
        letter = labels[-1].group(2)
        width = 2 if any(m.group(3).startswith("0") for m in labels) else 1  # "1990M01" or "1990m1"
        counts = [int(m.group(1)) * 12 + int(m.group(3)) - 1 for m in labels]
        return counts, lambda c: f"{c // 12}{letter}{c % 12 + 1:0{width}d}"
    return _month_first(t)


def _from_labels(times: list[str]) -> Optional[int]:
    """Seasons from labels such as "1959Q1", "1987 Jan" (label_months), "1991 W06", "2001-03"."""
    labels = label_months(times)
    if labels is not None:
        return 4 if "q" in times[-1].lower() else 12
    t = [s.strip().lower() for s in times]
    if week_labels(times) is not None:
        return 52
    if all(re.fullmatch(r"\d{4}-\d{2}", s) for s in t):
        return 12
    return None


def _numbers(times: list[str]) -> Optional[np.ndarray]:
    """The stamps as numbers (years, decimal years, an index), or None (also for dates written
    as eight digits, "20150131": read_dates reads those)."""
    if _compact_dates([s.strip() for s in times]) is not None:
        return None
    try:
        return np.array([float(s) for s in times])
    except ValueError:
        return None


_NUMERIC_DATE = re.compile(  # 31/01/2015, 1/31/2015 13:00, 31.01.2015, 2015/01/31, 31-01-2015
    r"(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})(?:([ T])(\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_ORDERS = {"ymd": (0, 1, 2), "dmy": (2, 1, 0), "mdy": (2, 0, 1)}  # where the year, month, day are


def spacing(stamps: list) -> Optional[tuple[str, object]]:
    """How increasing datetimes are spaced: ("months", k) for k months apart on one day and time
    (monthly, quarterly, yearly data), ("gap", a timedelta) for a fixed time apart, else None."""
    pairs = list(zip(stamps[:-1], stamps[1:], strict=True))
    if not pairs:
        return None
    months = {(b.year - a.year) * 12 + b.month - a.month for a, b in pairs}
    if len({(d.day, d.time()) for d in stamps}) == 1 and len(months) == 1 and (k := months.pop()) > 0:
        return "months", k
    gaps = {b - a for a, b in pairs}
    if len(gaps) == 1 and (gap := gaps.pop()) > dt.timedelta(0):
        return "gap", gap
    return None


def _iso_dates(t: list[str]):
    if all(len(s) == 8 and s.isdigit() for s in t):  # Python reads "20150131" as ISO: _compact_dates
        return None
    try:
        stamps = [dt.datetime.fromisoformat(s) for s in t]
    except (ValueError, TypeError):
        return None
    if all(len(s) == 10 for s in t):  # YYYY-MM-DD
        return stamps, lambda d: d.date().isoformat()
    last = t[-1]
    sep = last[10] if len(last) > 10 else "T"
    clock = re.match(r"\d{1,2}:\d{2}(:\d{2})?", last[11:])
    spec = "auto" if clock is None else ("seconds" if clock.group(1) else "minutes")
    return stamps, lambda d: d.isoformat(sep=sep, timespec=spec)


def _numeric_dates(t: list[str]):
    found = [_NUMERIC_DATE.fullmatch(s) for s in t]
    if not all(found):
        return None
    fields = [m.group(1, 3, 4) for m in found]
    if all(len(f[0]) == 4 for f in fields):
        orders = ["ymd"]
    elif all(len(f[2]) == 4 for f in fields):
        orders = ["dmy", "mdy"]
    else:  # two-digit years: no telling the century
        return None
    readings = {}
    for order in orders:
        y, mo, d = _ORDERS[order]
        try:
            stamps = [dt.datetime(*(int(f[i]) for i in (y, mo, d)),
                                  *(int(m.group(g) or 0) for g in (6, 7, 8)))
                      for f, m in zip(fields, found, strict=True)]
        except ValueError:  # a month 13 or a 31st of February: not this order
            continue
        # ranked by: the stamps increase, then their spacing (sorted) is regular; a file out
        # of order is still read, for check_order to say so
        rank = (all(b > a for a, b in zip(stamps[:-1], stamps[1:], strict=True)),
                spacing(sorted(stamps)) is not None)
        readings[order] = (rank, stamps)
    ranks = [rank for rank, _ in readings.values()]
    chosen = [o for o, (rank, _) in readings.items() if rank == max(ranks)]
    if len(chosen) != 1:  # no valid reading, or no telling day from month
        return None
    order, stamps = chosen[0], readings[chosen[0]][1]
    last = found[-1]
    pad = [any(f[i].startswith("0") and len(f[i]) == 2 for f in fields) for i in range(3)]
    hour_pad = any((m.group(6) or "").startswith("0") and len(m.group(6)) == 2 for m in found)
    where = _ORDERS[order]

    def write(d: dt.datetime) -> str:
        parts = ["", "", ""]
        parts[where[0]] = f"{d.year:04d}"
        for i, v in ((where[1], d.month), (where[2], d.day)):
            parts[i] = f"{v:02d}" if pad[i] else str(v)
        text = last.group(2).join(parts)
        if last.group(6) is not None:
            text += last.group(5) + (f"{d.hour:02d}" if hour_pad else str(d.hour)) + f":{d.minute:02d}"
            if last.group(8) is not None:
                text += f":{d.second:02d}"
        return text
    return stamps, write


_CLOCK = r"(?:([ T])(\d{1,2}):(\d{2})(?::(\d{2}))?)?"  # an optional time of day, as in _NUMERIC_DATE
# 01-Jan-2015, 1 Jan 2015; Jan 1, 2015, January 01 2015; 2015-Jan-01
_NAMED_DAY_FIRST = re.compile(r"(\d{1,2})([-\s/.])([A-Za-z]{3,9})\2(\d{4})" + _CLOCK)
_NAMED_MONTH_FIRST = re.compile(r"([A-Za-z]{3,9})( )(\d{1,2})(,? )(\d{4})" + _CLOCK)
_NAMED_YEAR_FIRST = re.compile(r"(\d{4})([-\s/.])([A-Za-z]{3,9})\2(\d{1,2})" + _CLOCK)


def _named_dates(t: list[str]):
    """Dates whose month is a name ("01-Jan-2015", "1 Jan 2015", "Jan 1, 2015", "2015-Jan-01"; a
    spreadsheet's or a database's export), optionally with a time of day; written back in the
    column's style (the month's name as long and in the case the last stamp has it)."""
    for pattern, (day, name, year) in ((_NAMED_DAY_FIRST, (1, 3, 4)), (_NAMED_MONTH_FIRST, (3, 1, 5)),
                                       (_NAMED_YEAR_FIRST, (4, 3, 1))):
        found = [pattern.fullmatch(s) for s in t]
        if all(found):
            return _named_reading(found, day, name, year, pattern.groups - 3)
    return None


def _named_reading(found: list, day: int, name: int, year: int, clock: int):
    """_named_dates' reading of one layout's matches: day, name, year and clock are the groups of
    the day, the month's name, the year and the clock's separator."""
    months = [_month_number(m.group(name)) for m in found]
    if not all(months):
        return None
    try:
        stamps = [dt.datetime(int(m.group(year)), month, int(m.group(day)),
                              *(int(m.group(g) or 0) for g in (clock + 1, clock + 2, clock + 3)))
                  for m, month in zip(found, months, strict=True)]
    except ValueError:  # a 31st of February
        return None
    last = found[-1]
    word = last.group(name)
    full = any(len(m.group(name)) > 3 for m in found)  # "May" is both
    names = FULL_MONTHS if full else [m.capitalize() for m in MONTHS]
    style = str.upper if word.isupper() else (str.lower if word.islower() else str)
    pad = any(m.group(day).startswith("0") and len(m.group(day)) == 2 for m in found)
    spans = {g: last.span(g) for g in (day, name, year)}
    hour_pad = any((m.group(clock + 1) or "").startswith("0") and len(m.group(clock + 1)) == 2
                   for m in found)

    def write(d: dt.datetime) -> str:
        fields = {day: f"{d.day:02d}" if pad else str(d.day), name: style(names[d.month - 1]),
                  year: f"{d.year:04d}"}
        text, at = "", 0
        for g in sorted(fields, key=lambda g: spans[g][0]):  # the last stamp's separators between
            text += last.string[at:spans[g][0]] + fields[g]
            at = spans[g][1]
        if last.group(clock) is not None:
            hour = f"{d.hour:02d}" if hour_pad else str(d.hour)
            text += last.group(clock) + hour + f":{d.minute:02d}"
            if last.group(clock + 3) is not None:
                text += f":{d.second:02d}"
        return text
    return stamps, write


def _compact_dates(t: list[str]):
    """Dates written as eight digits, year, month, day ("20150131"), or None."""
    if not all(len(s) == 8 and s.isdigit() for s in t):
        return None
    try:
        stamps = [dt.datetime(int(s[:4]), int(s[4:6]), int(s[6:])) for s in t]
    except ValueError:
        return None
    if not all(1000 <= d.year <= 3000 for d in stamps):
        return None
    return stamps, lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}"


def read_dates(times: list[str]):
    """Dates and date-times as datetimes, with a function writing one back in the column's style;
    None for stamps that are not dates. ISO ("2015-01-31", "2015-01-31 13:00", with a time zone)
    and numeric dates with "/", "." or "-" in any of the usual orders ("31/01/2015", "1/31/2015
    0:00" as spreadsheets write them, "31.01.2015", "2015/01/31"), dates with the month's name
    ("31-Jan-2015", "31 January 2015", "Jan 31, 2015", "2015-Jan-31") and eight-digit dates
    ("20150131"). Day and month are told apart by
    a field above 12, or else by which reading gives stamps that increase at a regular spacing;
    where neither tells (a few stamps, all days 12 or less), the stamps are not read as dates."""
    t = [s.strip() for s in times]
    if not t:
        return None
    return _iso_dates(t) or _numeric_dates(t) or _named_dates(t) or _compact_dates(t)


def _seconds(times: list[str]) -> Optional[np.ndarray]:
    """Dates and date-times (read_dates) as seconds after the first, or None."""
    read = read_dates(times)
    if read is None:
        return None
    stamps = read[0]
    try:
        return np.array([(s - stamps[0]).total_seconds() for s in stamps])
    except TypeError:  # time zones mixed with naive stamps
        return None


def _from_stamps(times: list[str]) -> Optional[int]:
    if len(times) < 3:
        return None
    season = _from_labels(times)
    if season is not None:
        return season
    nums = _numbers(times)
    if nums is not None:
        gaps = np.diff(nums)
        if (gaps <= 0).any():
            return None
        gap = float(np.median(gaps))
        if all(s.strip().lstrip("-").isdigit() for s in times):  # 1959, 1960, ...: years (or an index)
            return 1 if 1000 <= nums.min() and nums.max() <= 3000 and gap == 1 else None
        if 1000 <= nums.min() and nums.max() <= 3000:  # decimal years
            return _match(gap, _BY_YEARS)
        return None
    if business_days(times):
        return 5
    seconds = _seconds(times)
    if seconds is None or (np.diff(seconds) <= 0).any():
        return None
    return _match(float(np.median(np.diff(seconds))) / 86400, _BY_DAYS)


def business_days(times: list[str]) -> bool:
    """Whether the stamps are dates of business days (read_dates, then weekdays_apart)."""
    read = read_dates(times) if len(times) >= 10 else None
    return read is not None and weekdays_apart(read[0])


def weekdays_apart(stamps: list) -> bool:
    """Whether datetimes are business days: at least 10, all at one time of day, none on a Saturday
    or a Sunday, increasing, most of them (the median gap) one business day after the one before.
    Daily data with its weekends (a gap of one calendar day from Friday to Saturday) is not."""
    if len(stamps) < 10 or len({d.time() for d in stamps}) != 1 or any(d.weekday() >= 5 for d in stamps):
        return False
    days = np.array([d.date() for d in stamps], dtype="datetime64[D]")
    if (np.diff(days) <= np.timedelta64(0, "D")).any():
        return False
    return bool(np.median(np.busday_count(days[:-1], days[1:])) == 1)


def positions(times: list[str]) -> Optional[np.ndarray]:
    """The time stamps as numbers that keep their order (grid's positions: month counts for
    quarter and month labels and monthly dates, the numbers themselves, seconds for other dates
    and date-times); None for stamps that are none of these (or mix them)."""
    found = grid(times)
    return None if found is None else found[0]


def month_ends(stamps: list) -> bool:
    """Whether datetimes are each the last day of its month, at one time of day (what pandas'
    month- and quarter-end frequencies write: 2015-01-31, 2015-02-28, ...): months apart, as
    dates on one day of the month are."""
    return len(stamps) >= 2 and len({d.time() for d in stamps}) == 1 and all(
        d.day == calendar.monthrange(d.year, d.month)[1] for d in stamps)


_WEEK = re.compile(r"(\d{4})(\s*-?\s*)([wW])(\d{1,2})")  # ISO weeks: "2020-W05", "1991 W06", "2020w5"


def week_labels(times: list[str]):
    """ISO week labels as week counts (the Monday of each week over 7), with a function writing a
    count back in the column's style; None for other stamps or a week its year lacks (W53)."""
    found = [_WEEK.fullmatch(s.strip()) for s in times]
    if not found or not all(found):
        return None
    try:
        counts = [(dt.date.fromisocalendar(int(m.group(1)), int(m.group(4)), 1).toordinal() - 1) // 7
                  for m in found]
    except ValueError:
        return None
    last = found[-1]
    width = 2 if any(m.group(4).startswith("0") for m in found) else 1

    def write(c: int) -> str:
        year, week, _ = dt.date.fromordinal(c * 7 + 1).isocalendar()
        return f"{year}{last.group(2)}{last.group(3)}{week:0{width}d}"
    return counts, write


def grid(times: list[str]):
    """The stamps as positions on the axis their spacing is regular on, with a function writing
    the stamp at a position back in the column's style: month counts for quarter and month
    labels and for dates on one day of the month, or on the last day of each month (month_ends),
    and one time of day (monthly, quarterly, yearly dates); week counts for ISO week labels
    ("2020-W05", week_labels); the numbers themselves (years, decimal years, an index); business
    days after the first for dates of business days (weekdays_apart); seconds after the first for
    other dates and date-times; None for stamps that are none of these."""
    labels = label_months(times) or week_labels(times)
    if labels is not None:
        counts, write = labels
        return np.array(counts, dtype=np.float64), lambda p: write(int(round(p)))
    nums = _numbers(times)
    if nums is not None:
        if all(s.strip().lstrip("-").isdigit() for s in times):
            return nums, lambda p: str(int(round(p)))
        return nums, lambda p: f"{p:.10g}"
    read = read_dates(times)
    if read is None:
        return None
    stamps, fmt = read
    first = stamps[0]
    if weekdays_apart(stamps):  # business days after the first
        start = np.datetime64(first.date(), "D")

        def weekday(p: float) -> str:
            day = np.busday_offset(start, int(round(p)), roll="forward").astype(dt.date)
            return fmt(dt.datetime.combine(day, first.time(), tzinfo=first.tzinfo))
        days = np.array([d.date() for d in stamps], dtype="datetime64[D]")
        return np.busday_count(start, days).astype(np.float64), weekday
    ends = month_ends(stamps)
    if ends or len({(d.day, d.time()) for d in stamps}) == 1:  # months apart

        def month(p: float) -> str:  # "" for a day that month lacks (the 30th of a February)
            c = int(round(p))
            year, number = c // 12, c % 12 + 1
            try:
                day = calendar.monthrange(year, number)[1] if ends else first.day
                return fmt(first.replace(year=year, month=number, day=day))
            except ValueError:
                return ""
        return np.array([d.year * 12 + d.month - 1 for d in stamps], dtype=np.float64), month
    try:
        seconds = np.array([(d - first).total_seconds() for d in stamps])
    except TypeError:  # time zones mixed with naive stamps
        return None
    return seconds, lambda p: fmt(first + dt.timedelta(seconds=float(p)))


def complete_steps(times: list[str]) -> Optional[tuple[list[str], np.ndarray]]:
    """Where a time column is regularly spaced but skips a few steps (a CSV export that leaves
    out the rows of missing months or days): (every step's stamp, the skipped ones written in
    the column's style; each given row's index among them). None where nothing is skipped or
    the stamps are not read (grid) or not regular: at least 90% of the gaps one step, every gap
    a whole number of steps, and the steps skipped at most a tenth of the rows (two stretches of
    a series far apart are not filled in)."""
    found = grid(times) if len(times) >= 3 else None
    if found is None:
        return None
    pos, make = found
    gaps = np.diff(pos)
    if (gaps <= 0).any():
        return None
    step = float(np.median(gaps))
    k = gaps / step
    whole = np.round(k)
    if (not np.allclose(k, whole, atol=0.02) or (whole == 1).mean() < 0.9 or (whole == 1).all()
            or whole.sum() - len(gaps) > 0.1 * len(times)):
        return None
    index = np.concatenate([[0], np.cumsum(whole).astype(np.int64)])
    full = [make(pos[0] + j * step) for j in range(int(index[-1]) + 1)]
    for i, j in enumerate(index):  # the given rows keep their stamps as written
        full[j] = times[i]
    return full, index


def check_order(times: list[str], path: str, column: str) -> None:
    """A ValueError where readable time stamps go back or repeat: a series is one row per
    step, in time order (a shuffled or duplicated row would be forecast from silently)."""
    pos = positions(times)
    if pos is None or len(pos) < 2:
        return
    back = np.flatnonzero(~(np.diff(pos) > 0))
    if back.size and pos[back[0] + 1] == pos[back[0]]:
        i = int(back[0]) + 1
        raise ValueError(f"{path!r}: the time column {column!r} must increase from row to row; data row "
                         f"{i + 1} repeats {times[i]!r} (one row per step: sum, average or drop the rows of "
                         "one stamp; local clock times repeat an hour where the clocks go back, which "
                         "stamps with their UTC offset, '2020-10-25T02:00+01:00', do not)")
    if back.size:
        i = int(back[0]) + 1
        raise ValueError(f"{path!r}: the time column {column!r} must increase from row to row; data row "
                         f"{i + 1} has {times[i]!r} after {times[i - 1]!r} (sort the rows by time, one row "
                         "per step)")


def from_autocorrelation(values: np.ndarray) -> int:
    """The lag where the autocorrelation of the series' changes peaks clearly (1: none)."""
    x = np.diff(np.asarray(values, dtype=np.float64).reshape(len(values), -1)[:, 0])
    n = len(x)
    top = min(60, n // 3)
    if top < 2 or not np.isfinite(x).all() or x.std() == 0:
        return 1
    x = x - x.mean()
    acf = np.array([1.0] + [float((x[:-k] * x[k:]).sum() / (x * x).sum()) for k in range(1, top + 2)])
    peaks = [k for k in range(2, top + 1) if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1]
             and acf[k] > 3 / np.sqrt(n)]
    return max(peaks, key=lambda k: acf[k]) if peaks else 1


WEEKS_A_YEAR = 365.25 / 7


def period(times: list[str], season: int, has_times: bool) -> float:
    """The season's length in steps as the calendar has it: a year of weekly data is 52.18
    weeks, not 52 (over 40 years a 52-step season drifts by 7 weeks against the sun), so a
    season of 52 on weekly time stamps is 365.25 / 7 steps long; else the season itself. The
    Fourier terms of ARIMA's season use it (baselines.py); seasonal naive and Holt-Winters,
    whose seasons are whole steps, use the season."""
    if season == 52 and has_times and _from_stamps(times) == 52:  # weekly stamps
        return WEEKS_A_YEAR
    return float(season)


def infer_season(times: list[str], values: np.ndarray, has_times: bool) -> tuple[int, str]:
    """(the season in steps, how it was found) for a series whose config gives none."""
    season = _from_stamps(times) if has_times else None
    if season is not None:
        if season == 5:  # no spacing or label gives 5 but business days (_from_stamps)
            return season, "from the time stamps' spacing: business days, a week of 5"
        return season, "from the time stamps' spacing"
    return from_autocorrelation(values), "from the autocorrelation of the series' changes"
