"""The IMDB review set from its Stanford archive, in the shape of Keras' ``imdb.load_data``.

    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=10000, maxlen=200)

The archive (aclImdb_v1.tar.gz, 84 MB, 25,000 + 25,000 labelled reviews) is
downloaded once into a cache folder (``$GRUKIT_DATA`` or ``~/.cache/grukit``),
checked against its published SHA-256, and read straight from the tarball:
nothing is extracted to disk. Words are ranked by frequency in the training
reviews (1 = most frequent); as in Keras, each review starts with ``start_char``,
word ids are shifted by ``index_from``, ids outside [skip_top, num_words) become
``oov_char``, reviews longer than ``maxlen`` are dropped, and both sets are
shuffled with ``seed``. Labels: 1 positive, 0 negative.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import tempfile
import urllib.request
from collections import Counter
from typing import Optional

import numpy as np

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
FILENAME = "aclImdb_v1.tar.gz"
_MEMBER = re.compile(r"^aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")


def cache_dir() -> str:
    return os.environ.get("GRUKIT_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "grukit")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str = URL, sha256: str = SHA256, filename: str = FILENAME,
          folder: Optional[str] = None) -> str:
    """The cached file's path, downloading it first if needed; the checksum is always verified."""
    folder = folder or cache_dir()
    path = os.path.join(folder, filename)
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=folder)
        os.close(fd)
        try:
            urllib.request.urlretrieve(url, tmp)
        except (OSError, ValueError) as exc:
            os.unlink(tmp)
            raise OSError(f"could not download {url} ({exc}); on a machine without that network, "
                          f"copy {filename} to {path} yourself") from None
        got = sha256_of(tmp)
        if got != sha256:
            os.unlink(tmp)
            raise ValueError(f"the download of {url} has SHA-256 {got}, expected {sha256}: "
                             "truncated or not the published file")
        os.replace(tmp, path)
    got = sha256_of(path)
    if got != sha256:
        raise ValueError(f"{path} has SHA-256 {got}, expected {sha256}: delete it and download again")
    return path


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("<br />", " "))


def _read(path: str) -> dict[str, tuple[list[list[str]], list[int]]]:
    found: dict[str, list[tuple[str, list[str], int]]] = {"train": [], "test": []}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            m = _MEMBER.match(member.name)
            if not m or not member.isfile():
                continue
            text = archive.extractfile(member).read().decode("utf-8", errors="replace")
            found[m.group(1)].append((member.name, tokenize(text), int(m.group(2) == "pos")))
    if not found["train"] or not found["test"]:
        raise ValueError(f"{path} holds no aclImdb/train and aclImdb/test reviews")
    return {part: ([w for _, w, _ in sorted(items)], [y for _, _, y in sorted(items)])
            for part, items in found.items()}


def get_word_index(path: Optional[str] = None, sha256: str = SHA256) -> dict[str, int]:
    """word -> rank by frequency in the training reviews (1 = most frequent)."""
    words, _ = _read(path or fetch(sha256=sha256))["train"]
    return _word_index(words)


def _word_index(docs: list[list[str]]) -> dict[str, int]:
    counts = Counter(w for doc in docs for w in doc)
    return {w: rank for rank, (w, _) in enumerate(counts.most_common(), start=1)}


def load_data(num_words: Optional[int] = None, skip_top: int = 0, maxlen: Optional[int] = None,
              seed: int = 113, start_char: int = 1, oov_char: int = 2, index_from: int = 3,
              path: Optional[str] = None, sha256: str = SHA256):
    """((x_train, y_train), (x_test, y_test)): x are object arrays of int lists, y int64 arrays.

    ``path`` reads a local copy of the archive instead of the cache (its checksum is
    still verified against ``sha256``)."""
    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path {path!r} is not a file")
        got = sha256_of(path)
        if got != sha256:
            raise ValueError(f"{path} has SHA-256 {got}, expected {sha256}")
    else:
        path = fetch(sha256=sha256)
    for name, value in (("num_words", num_words), ("maxlen", maxlen)):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    parts = _read(path)
    index = _word_index(parts["train"][0])
    result = []
    for i, part in enumerate(("train", "test")):
        docs, labels = parts[part]
        xs = [[start_char] + [index.get(w, oov_char - index_from) + index_from for w in doc] for doc in docs]
        if num_words is not None or skip_top:
            top = num_words if num_words is not None else max(max(x) for x in xs) + 1
            xs = [[w if (skip_top <= w < top or w == start_char) else oov_char for w in x] for x in xs]
        ys = list(labels)
        if maxlen is not None:
            keep = [j for j, x in enumerate(xs) if len(x) <= maxlen]
            xs, ys = [xs[j] for j in keep], [ys[j] for j in keep]
        order = np.random.RandomState(seed * (i + 1)).permutation(len(xs))
        x_arr = np.empty(len(xs), dtype=object)
        x_arr[:] = [xs[j] for j in order]
        result.append((x_arr, np.asarray(ys, dtype="int64")[order]))
    return tuple(result)
