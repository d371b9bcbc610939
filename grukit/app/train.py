"""``grukit train`` and ``grukit predict``: the job skeleton, then the job its task names."""

from __future__ import annotations

import os
from typing import Any, Optional

import torch

from ..seeding import set_seed
from ..training import distributed, placement
from ..training.loading import load
from . import anomaly, classify, forecast, text
from .job import JobConfig, quiet

JOBS = {"forecast": forecast, "classify": classify, "text": text, "anomaly": anomaly}


def run(job: JobConfig, log=print, resume: Optional[str] = None) -> dict[str, Any]:
    """Train, evaluate against the baselines, write the outputs; returns the metrics.

    ``resume``: the run folder's checkpoint.grukit (written after every epoch): training
    goes on from its last epoch, into the same folder unless ``job.output.dir`` says
    otherwise. Under ``torchrun`` every process trains its part of each batch and only
    process 0 prints and writes.
    """
    if resume is not None and not os.path.isfile(resume):
        raise FileNotFoundError(f"--resume {resume!r} is not a file")
    # every process draws the same shuffles, a resumed run repeats them; the CPU ops a job runs
    # are deterministic as they are, so torch's global deterministic switch stays as the caller set it
    set_seed(job.train.seed, deterministic=torch.are_deterministic_algorithms_enabled())
    device = placement.resolve(placement.check("train.device", job.train.device), "train.device")
    if distributed.context(device) is not None and not distributed.is_main():
        log = quiet
    return JOBS[job.data.task].run(job, log, resume)


def predict(model_path: str, input_path: str, output_path: Optional[str] = None, log=print,
            device: str = "auto", steps: Optional[int] = None) -> str:
    """Forecasts for every complete window of a CSV series (or, for a classifier, a label for
    every sequence of a long-format CSV), written to a CSV; the model runs on ``device``.
    ``steps`` (forecasters): the next N steps after the series' end instead, with 90%
    intervals, and a plot beside the CSV."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    model = load(model_path, device=device)
    info = getattr(model, "extra", None) or {}
    if info.get("kind") not in JOBS:
        raise ValueError(f"model {model_path!r} was not written by `grukit train` (no job settings)")
    if info["kind"] != "forecast":
        if steps is not None:
            raise ValueError(f"steps is for forecasting models; {model_path!r} is a {info['kind']} model")
        return JOBS[info["kind"]].predict(model, info, input_path, output_path, log)
    return forecast.predict(model, info, input_path, output_path, log, steps=steps)
