"""Forecasting two real series with a GRU, next to seasonal naive and ARIMA.

    pip install -e .[examples]        # statsmodels: ARIMA and the sunspots series
    python examples/forecast_arima.py --series co2        # weekly Mauna Loa CO2, one week ahead
    python examples/forecast_arima.py --series sunspots   # yearly sunspot numbers, one year ahead

Each model forecasts one step ahead over the same test stretch (the last 20% of
the series, in time order). The GRU sees a window of past values taken relative
to its last value and scaled on the training part only (as ``grukit train``
does; the validation part only stops its training early). ARIMA is fitted once
on everything before the test stretch (training and validation parts) and then,
with those parameters, filters the whole series: its one-step forecasts use the
same past as the GRU's. CO2's ARIMA gets the yearly cycle as Fourier terms.
"""

import argparse
import time

import numpy as np
import torch

import grukit as gk
from grukit import datasets, layers
from grukit.app.forecast import windows

SERIES = {  # window, season (the baseline's lag), ARIMA order, Fourier harmonics of the season
    "co2": dict(window=52, season=52, order=(2, 1, 1), harmonics=3, period=365.25 / 7),
    "sunspots": dict(window=22, season=11, order=(9, 0, 0), harmonics=0, period=11),
}


def load(name):
    if name == "co2":
        return datasets.load_co2()
    return datasets.load_sunspots()


def rmse_mae(pred, truth):
    err = np.asarray(pred).ravel() - np.asarray(truth).ravel()
    return {"rmse": float(np.sqrt((err**2).mean())), "mae": float(np.abs(err).mean())}


def arima_one_step(series, n_fit, order, harmonics, period):
    """One-step forecasts of every step after the first n_fit, from an ARIMA fitted on them."""
    from statsmodels.tsa.arima.model import ARIMA

    t = np.arange(len(series))
    exog = None
    if harmonics:
        exog = np.column_stack([f(2 * np.pi * k * t / period) for k in range(1, harmonics + 1)
                                for f in (np.sin, np.cos)])
    fitted = ARIMA(series[:n_fit], exog=None if exog is None else exog[:n_fit], order=order,
                   trend="c" if order[1] == 0 else "t").fit()
    full = fitted.apply(series, exog=exog)
    return full.get_prediction(start=n_fit).predicted_mean


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", choices=sorted(SERIES), default="co2")
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cfg = SERIES[args.series]
    torch.manual_seed(args.seed)

    times, values = load(args.series)
    x, y, origins = windows(values, cfg["window"], 1)
    y, target_at = y[:, 0], origins + 1  # one step ahead
    n = len(x)
    n_test = int(0.2 * n)
    n_val = int(0.1 * n)
    n_train = n - n_val - n_test
    last = x[:, -1]
    scale = (y[:n_train] - last[:n_train]).std(0)
    x_rel = ((x - last[:, None]) / scale).astype("float32")
    y_rel = ((y - last) / scale).astype("float32")

    start = time.perf_counter()
    model = gk.Sequential([layers.GRU(args.units), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", learning_rate=0.003)
    stop = gk.callbacks.EarlyStopping(monitor="val_loss", patience=11, restore_best_weights=True)
    model.fit(x_rel[:n_train], y_rel[:n_train], epochs=args.epochs, batch_size=32, verbose=0,
              validation_data=(x_rel[n_train:n_train + n_val], y_rel[n_train:n_train + n_val]),
              callbacks=[stop])
    test = slice(n_train + n_val, n)
    gru = last[test] + model.predict(x_rel[test]) * scale
    gru_seconds = time.perf_counter() - start

    truth = y[test]
    naive = values[target_at[test] - cfg["season"]]
    start = time.perf_counter()
    first_test = int(target_at[test][0])  # ARIMA is fitted on everything before the test stretch
    arima = arima_one_step(values[:, 0], first_test, cfg["order"], cfg["harmonics"], cfg["period"])
    arima_seconds = time.perf_counter() - start

    res = {"series": args.series, "test_steps": len(truth),
           "test_span": f"{times[target_at[test][0]]} .. {times[target_at[test][-1]]}",
           "gru": rmse_mae(gru, truth), "seasonal_naive": rmse_mae(naive, truth),
           "arima": rmse_mae(arima, truth), "gru_seconds": round(gru_seconds, 1),
           "arima_seconds": round(arima_seconds, 1), "arima_order": cfg["order"]}
    print(f"{args.series}: one step ahead over {res['test_steps']} test steps ({res['test_span']})")
    print(f"  {'':<16}{'RMSE':>9}{'MAE':>9}")
    for name in ("gru", "arima", "seasonal_naive"):
        print(f"  {name:<16}{res[name]['rmse']:>9.3f}{res[name]['mae']:>9.3f}")
    print(f"  GRU trained in {gru_seconds:.1f} s; ARIMA{cfg['order']} fitted in {arima_seconds:.1f} s")
    return res


if __name__ == "__main__":
    main()
