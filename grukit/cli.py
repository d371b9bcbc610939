"""The ``grukit`` command."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Optional, Sequence


def _info(_: argparse.Namespace) -> int:
    import numpy
    import torch

    import grukit

    info = grukit.engine_info()
    print(f"grukit   {grukit.__version__}")
    print(f"python   {platform.python_version()} ({sys.executable})")
    print(f"torch    {torch.__version__}")
    print(f"numpy    {numpy.__version__}")
    print(f"machine  {platform.machine()}, {platform.system()}")
    print(f"threads  {info['threads']} (torch.get_num_threads)")
    print("engines:")
    for name, e in info["engines"].items():
        mark = "built" if e["built"] else "missing"
        print(f"  {name:<10} {mark:<8} {e['runs']}")
    print(f"  auto       runs {info['auto']}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grukit", description="Gated Recurrent Unit networks on PyTorch."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_info = sub.add_parser("info", help="versions, engines, threads")
    p_info.set_defaults(func=_info)
    sub.add_parser("bench", help="grukit vs torch.nn.GRU, ONNX Runtime and Keras on this machine "
                   "(grukit bench --help)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own options: grukit bench --help
        from . import bench

        return bench.main(argv[1:])
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
