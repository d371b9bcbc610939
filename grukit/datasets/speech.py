"""Spoken digits synthesised offline with espeak-ng, and their MFCC features.

No recordings of spoken digits can be had offline here, so the examples make
their own: espeak-ng (``apt-get install espeak-ng``) speaks "zero" .. "nine" in
English with each of its voice variants (``en+Alex``, ``en+f3``, ...) at several
speeds and pitches. Voices never heard in training make a fair test set.
MFCCs come from librosa (the examples extra).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Optional

import numpy as np

from .sources import MissingDataSource, require

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingDataSource("the spoken digits are synthesised with the program espeak-ng, which is not "
                                "installed; on Debian or Ubuntu: apt-get install espeak-ng")
    return exe


def espeak_voices() -> list[str]:
    """The names of espeak-ng's voice variants (``Alex``, ``f3``, ...), sorted."""
    out = subprocess.run([_espeak(), "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            names.append(parts[4][3:])
    return sorted(set(names))


def speak(text: str, voice: str = "", speed: int = 160, pitch: int = 50) -> tuple[np.ndarray, int]:
    """(waveform float32 in [-1, 1] with the silence at both ends cut, sample rate)."""
    name = f"en+{voice}" if voice else "en"
    proc = subprocess.run([_espeak(), "-v", name, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                          capture_output=True, check=True)
    with wave.open(io.BytesIO(proc.stdout)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    audio = pcm.astype("float32") / 32768.0
    loud = np.flatnonzero(np.abs(audio) > 0.02 * max(float(np.abs(audio).max()), 1e-9))
    if len(loud):
        audio = audio[loud[0]: loud[-1] + 1]
    return audio, rate


def synthesize_digits(voices: Iterable[str], speeds: Iterable[int] = (160,), pitches: Iterable[int] = (50,),
                      workers: Optional[int] = None) -> list[dict]:
    """Every digit in every voice x speed x pitch: dicts with voice, speed, pitch, digit
    (0-9), audio and rate, in a fixed order."""
    jobs = [(v, s, p, d) for v in voices for s in speeds for p in pitches for d in range(10)]
    _espeak()

    def one(job):
        v, s, p, d = job
        audio, rate = speak(DIGITS[d], v, s, p)
        return {"voice": v, "speed": s, "pitch": p, "digit": d, "audio": audio, "rate": rate}

    with ThreadPoolExecutor(max_workers=workers or 4) as pool:
        return list(pool.map(one, jobs))


def mfcc(audio: np.ndarray, rate: int, n_mfcc: int = 13) -> np.ndarray:
    """(frames, n_mfcc) float32 MFCCs of a waveform, 25 ms windows every 10 ms (librosa)."""
    librosa = require("librosa", "MFCC features")
    feats = librosa.feature.mfcc(y=np.asarray(audio, dtype="float32"), sr=rate, n_mfcc=n_mfcc,
                                 n_fft=int(0.025 * rate) + 1, hop_length=int(0.010 * rate))
    return np.ascontiguousarray(feats.T.astype("float32"))
