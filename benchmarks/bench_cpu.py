"""`make bench`: grukit's CPU engine against torch.nn.GRU, ONNX Runtime and Keras 3.

    python benchmarks/bench_cpu.py [--threads 2] [--quick] [--rivals torch,onnx,keras]

The logic lives in grukit/app/bench.py so that `grukit bench` runs the same thing.
"""

import sys

from grukit.app.bench import main

if __name__ == "__main__":
    sys.exit(main())
