"""The IMDB loader on a small archive in the Stanford layout that the test writes itself."""

import io
import tarfile

import pytest

from grukit.datasets import imdb

REVIEWS = {
    "train/pos/0_9.txt": "A great film, great acting.<br />Great!",
    "train/pos/1_8.txt": "great story and a fine cast",
    "train/neg/0_2.txt": "a dull film; dull and long",
    "train/neg/1_1.txt": "long, dull, bad",
    "test/pos/0_10.txt": "great fun",
    "test/neg/0_3.txt": "bad and unseenword",
}


def _archive(tmp_path, reviews=REVIEWS):
    path = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in reviews.items():
            data = text.encode()
            info = tarfile.TarInfo(f"aclImdb/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("aclImdb/README")  # other members are ignored
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return path, imdb.sha256_of(str(path))


def test_load_data_in_keras_shape(tmp_path):
    path, digest = _archive(tmp_path)
    (x_train, y_train), (x_test, y_test) = imdb.load_data(path=str(path), sha256=digest)
    assert x_train.dtype == object and len(x_train) == 4 and len(x_test) == 2
    assert sorted(y_train.tolist()) == [0, 0, 1, 1] and sorted(y_test.tolist()) == [0, 1]
    index = imdb.get_word_index(str(path), sha256=digest)
    # ranked by training frequency: great x4, then a and dull x3 (ties in order of appearance)
    assert (index["great"], index["a"], index["dull"]) == (1, 2, 3)
    test_pos = list(x_test[y_test.tolist().index(1)])
    assert test_pos == [1, index["great"] + 3, index["fun"] + 3 if "fun" in index else 2]
    test_neg = list(x_test[y_test.tolist().index(0)])
    assert test_neg[0] == 1 and test_neg[-1] == 2  # start_char, then an unseen word -> oov_char
    # num_words: ids >= num_words become oov_char; maxlen drops longer reviews
    (x_small, _), _ = imdb.load_data(num_words=5, path=str(path), sha256=digest)
    assert all(w < 5 for x in x_small for w in x)
    (x_short, y_short), _ = imdb.load_data(maxlen=5, path=str(path), sha256=digest)
    assert all(len(x) <= 5 for x in x_short) and len(x_short) < 4 and len(y_short) == len(x_short)
    # the shuffle follows the seed
    (a, _), _ = imdb.load_data(seed=1, path=str(path), sha256=digest)
    (b, _), _ = imdb.load_data(seed=1, path=str(path), sha256=digest)
    assert [list(x) for x in a] == [list(x) for x in b]


def test_fetch_downloads_into_the_cache_and_checks_the_checksum(tmp_path, monkeypatch):
    path, digest = _archive(tmp_path)
    cache = tmp_path / "cache"
    got = imdb.fetch(url=path.as_uri(), sha256=digest, folder=str(cache))
    assert got == str(cache / imdb.FILENAME) and imdb.sha256_of(got) == digest
    assert [p.name for p in cache.iterdir()] == [imdb.FILENAME]  # no temporary left behind
    assert imdb.fetch(url="file:///nonexistent", sha256=digest, folder=str(cache)) == got  # cached
    with pytest.raises(ValueError, match="expected 0+: truncated or not the published file"):
        imdb.fetch(url=path.as_uri(), sha256="0" * 64, folder=str(tmp_path / "other"))
    with pytest.raises(OSError, match="could not download .* copy aclImdb_v1.tar.gz to"):
        imdb.fetch(url=(tmp_path / "missing.tar.gz").as_uri(), folder=str(tmp_path / "third"))
    monkeypatch.setenv("GRUKIT_DATA", str(tmp_path / "env"))
    assert imdb.cache_dir() == str(tmp_path / "env")


def test_bad_archives_and_arguments(tmp_path):
    path, digest = _archive(tmp_path)
    with pytest.raises(ValueError, match="SHA-256"):
        imdb.load_data(path=str(path))  # not the published archive's checksum
    with pytest.raises(ValueError, match="num_words must be a positive int"):
        imdb.load_data(num_words=0, path=str(path), sha256=digest)
    (tmp_path / "empty").mkdir()
    empty, empty_digest = _archive(tmp_path / "empty", {})
    with pytest.raises(ValueError, match="no aclImdb/train and aclImdb/test reviews"):
        imdb.load_data(path=str(empty), sha256=empty_digest)
    with pytest.raises(FileNotFoundError):
        imdb.load_data(path=str(tmp_path / "nope.tar.gz"))
    assert imdb.tokenize("It's a <br />TEST, 2nd") == ["it's", "a", "test", "2nd"]
