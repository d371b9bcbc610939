"""The ``grukit`` command."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Optional, Sequence

import numpy
import torch

from .. import __version__
from ..engines import engine_info
from . import bench, job, train


def _info(_: argparse.Namespace) -> int:
    info = engine_info()
    print(f"grukit   {__version__}")
    print(f"python   {platform.python_version()} ({sys.executable})")
    print(f"torch    {torch.__version__}")
    print(f"numpy    {numpy.__version__}")
    print(f"machine  {platform.machine()}, {platform.system()}")
    print(f"threads  {info['threads']} (torch.get_num_threads)")
    print("engines:")
    for name, e in info["engines"].items():
        mark = "built" if e["built"] else "missing"
        print(f"  {name:<10} {mark:<8} {e['runs']}")
    on_cuda = f"; on CUDA {info['auto_cuda']}" if info["auto_cuda"] else ""
    print(f"  auto       runs {info['auto']} on the CPU{on_cuda}")
    print(f"gpu      {info['device'] or 'none (torch sees no CUDA device)'}")
    isas = info["isas"]
    print(f"isa      {info['isa'] or '-'} (built: {', '.join(isas['built']) or 'none'}; this CPU runs: "
          f"{', '.join(isas['runnable'])}; GRUKIT_ISA=avx2|base forces a lower one)")
    if isas["note"]:
        print(f"         {isas['note']}")
    return 0


def _train(args: argparse.Namespace) -> int:
    if args.print_config:
        print(job.template(), end="")
        return 0
    config = job.load_config(args.config, args.resume)
    if args.out:
        config.output.dir = args.out
    if args.epochs is not None:
        if args.epochs <= 0:
            raise ValueError(f"--epochs must be positive, got {args.epochs}")
        config.train.epochs = args.epochs
    if args.tensorboard:
        config.train.tensorboard = True
    if args.device is not None:
        config.train.device = args.device
    train.run(config, resume=args.resume)
    return 0


def _predict(args: argparse.Namespace) -> int:
    train.predict(args.model, args.input, args.output, device=args.device, steps=args.steps)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grukit", description="Gated Recurrent Unit networks on PyTorch."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="versions, engines, threads")
    p_info.set_defaults(func=_info)
    p_train = sub.add_parser("train", help="train a GRU forecaster or sequence classifier "
                             "(default: the shipped CO2 series)")
    p_train.add_argument("config", nargs="?", help="a TOML job config (every field, its default and "
                         "meaning: grukit train --print-config)")
    p_train.add_argument("--tensorboard", action="store_true",
                         help="write TensorBoard logs to the run folder's tensorboard/ (train.tensorboard)")
    p_train.add_argument("--device", help="where to train: auto (a GPU when there is one; the default), "
                         "cpu, cuda or cuda:N (train.device)")
    p_train.add_argument("--print-config", action="store_true",
                         help="print a commented TOML template of every config field, then exit")
    p_train.add_argument("--out", help="output folder (default: runs/train-<date>-<time>)")
    p_train.add_argument("--epochs", type=int, help="override train.epochs")
    p_train.add_argument("--resume", metavar="PATH", help="go on from a run's checkpoint.grukit (its "
                         "job.json is the config unless one is given; output in its folder unless --out)")
    p_train.set_defaults(func=_train)
    p_pred = sub.add_parser("predict", help="forecasts (or labels) from a trained model for a CSV")
    p_pred.add_argument("model", help="model.grukit written by grukit train")
    p_pred.add_argument("input", help="CSV with the columns the model was trained on")
    p_pred.add_argument("--output", help="output CSV (default: INPUT.forecast.csv or INPUT.labels.csv)")
    p_pred.add_argument("--steps", type=int, help="forecasters: the N steps after the series' end, with 90%% "
                        "intervals (recursively past the trained horizon), and a plot beside the CSV")
    p_pred.add_argument("--device", default="auto", help="where the model runs: auto (default), cpu, cuda, "
                        "cuda:N")
    p_pred.set_defaults(func=_predict)
    sub.add_parser("bench", help="grukit vs torch.nn.GRU, ONNX Runtime and Keras on this machine "
                   "(grukit bench --help)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own options: grukit bench --help
        return bench.main(argv[1:])
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ValueError, TypeError, FileNotFoundError) as exc:  # a user's mistake: say it plainly
        print(f"grukit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
