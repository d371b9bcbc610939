"""Neataptic-style sequence XOR: each output is the XOR of the current and previous input.

    python examples/neataptic_xor.py [--sizes 1 2 1] [--seed 0]

Trains ``gk.architect.GRU`` on the 5-step set with ``train(set, rate=0.1,
error=0.005, iterations=3000, clear=True, log=...)``, then clears the state and
replays the sequence one step at a time with ``activate``.
"""

import argparse

import torch

import grukit as gk

TRAINING_SET = [
    {"input": [0], "output": [0]},
    {"input": [1], "output": [1]},
    {"input": [1], "output": [0]},
    {"input": [0], "output": [1]},
    {"input": [0], "output": [0]},
]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 1],
                   help="inputs, hidden GRU sizes..., outputs (Neataptic's docs use 1 1 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", type=int, default=500)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    net = gk.architect.GRU(*args.sizes)
    result = net.train(TRAINING_SET, rate=0.1, error=0.005, iterations=3000, clear=True, log=args.log)
    print(f"error {result['error']:.5f} after {result['iterations']} iterations in {result['time']:.2f} s")
    net.clear()
    replay = [net.activate(step["input"])[0] for step in TRAINING_SET]
    for step, out in zip(TRAINING_SET, replay, strict=True):
        print(f"input {step['input'][0]}  target {step['output'][0]}  output {out:.3f}")
    correct = [round(o) for o in replay] == [s["output"][0] for s in TRAINING_SET]
    print("replay", "correct" if correct else "wrong")
    return {**result, "replay_correct": correct}


if __name__ == "__main__":
    main()
