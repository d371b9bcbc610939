"""R-keras-style forecasting of a noisy sine wave: windows, fit with validation, predict, plot.

    python examples/sine_forecast.py [--epochs 20] [--window 20] [--out runs/sine]

The series is sin(t) plus Gaussian noise (sd 0.1) on 2000 points; each sample is a
window of the last ``window`` values and the target the next one. The last 20%
(in time order) is the validation set. Prints the validation MSE next to a
naive last-value forecast and writes forecast.png and learning_curves.png.
"""

import argparse
import os

import numpy as np
import torch

import grukit as gk
from grukit import layers


def windows(series: np.ndarray, width: int):
    idx = np.arange(width)[None, :] + np.arange(len(series) - width)[:, None]
    return series[idx][..., None].astype("float32"), series[width:, None].astype("float32")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--points", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/sine")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)

    t = np.linspace(0, 100, args.points)
    series = np.sin(t) + rng.normal(0, 0.1, size=t.shape)
    x, y = windows(series, args.window)
    cut = int(0.8 * len(x))
    x_train, y_train, x_val, y_val = x[:cut], y[:cut], x[cut:], y[cut:]

    model = gk.Sequential([layers.GRU(args.units), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32,
                        validation_data=(x_val, y_val), verbose=2)
    val_mse, val_mae = model.evaluate(x_val, y_val)
    naive_mse = float(((x_val[:, -1] - y_val) ** 2).mean())
    print(f"validation mse {val_mse:.5f} (mae {val_mae:.4f}); naive last-value mse {naive_mse:.5f}; "
          "the R-keras tutorial reports 0.04849")

    os.makedirs(args.out, exist_ok=True)
    pred = model.predict(x_val)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.plot(t[args.window:][cut:], y_val[:, 0], label="truth", lw=1)
    ax.plot(t[args.window:][cut:], pred[:, 0], label="GRU forecast", lw=1)
    ax.set_xlabel("t")
    ax.legend()
    ax.set_title(f"one-step forecast, validation mse {val_mse:.4f}")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "forecast.png"), dpi=110)
    plt.close(fig)
    history.plot(os.path.join(args.out, "learning_curves.png"))
    return {"val_mse": val_mse, "naive_mse": naive_mse}


if __name__ == "__main__":
    main()
