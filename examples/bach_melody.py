"""Melody generation from the Bach chorales: a GRU writes a soprano line, saved as MIDI and a piano roll.

    pip install -e .[examples]        # music21: the chorales, read offline
    python examples/bach_melody.py [--chorales 410] [--steps 1200] [--out runs/bach]

Each chorale's soprano line, moved to C major / A minor, becomes one token per
sixteenth note: a new note of some pitch, "hold" (the note goes on) or rest.
The GRU learns to predict the next token; it is scored on chorales it never saw
(bits per token and next-token accuracy) next to a first-order Markov chain
(the next token from the current one, add-one smoothed). Then it continues the
first two bars of a held-out chorale for eight bars, sampling one token at a
time; the result is written as ``melody.mid`` and drawn as ``piano_roll.png``.
"""

import argparse
import math
import os
import time

import numpy as np
import torch
from torch import nn

import grukit as gk
from grukit import datasets

REST, HOLD = 0, 1


def tokens(pitch, onset, low):
    """One token per step: REST, HOLD, or 2 + (pitch - low) for a note that starts there."""
    t = np.where(pitch < 0, REST, np.where(onset, 2 + pitch - low, HOLD))
    return t.astype("int64")


def to_pitches(toks, low):
    """Back to (pitch per step, onset per step); a HOLD after a rest stays a rest."""
    pitch, onset, current = [], [], -1
    for t in toks:
        if t == REST:
            current = -1
        elif t >= 2:
            current = int(t) - 2 + low
        pitch.append(current)
        onset.append(bool(t >= 2))
    return np.array(pitch), np.array(onset)


class MelodyModel(nn.Module):
    def __init__(self, vocab, hidden):
        super().__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.gru = gk.GRU(32, hidden, num_layers=2, batch_first=True, dropout=0.2)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids, state=None):
        y, state = self.gru(self.embed(ids), state)
        return self.out(y), state


def markov_scores(train_seqs, test_seqs, vocab):
    counts = np.ones((vocab, vocab))
    for s in train_seqs:
        np.add.at(counts, (s[:-1], s[1:]), 1)
    probs = counts / counts.sum(1, keepdims=True)
    prev = np.concatenate([s[:-1] for s in test_seqs])
    nxt = np.concatenate([s[1:] for s in test_seqs])
    return float(-np.log2(probs[prev, nxt]).mean()), float((probs[prev].argmax(1) == nxt).mean())


@torch.no_grad()
def model_scores(model, seqs):
    model.eval()
    bits, hits, n = 0.0, 0, 0
    for s in seqs:
        x = torch.from_numpy(s)[None]
        logits, _ = model(x[:, :-1])
        bits += nn.functional.cross_entropy(logits[0], x[0, 1:], reduction="sum").item() / math.log(2)
        hits += int((logits[0].argmax(1) == x[0, 1:]).sum())
        n += len(s) - 1
    return bits / n, hits / n


@torch.no_grad()
def continue_melody(model, prompt, steps, temperature, generator):
    model.eval()
    logits, state = model(torch.from_numpy(prompt)[None])
    out = list(prompt)
    for _ in range(steps):
        probs = torch.softmax(logits[0, -1] / temperature, dim=-1)
        nxt = int(torch.multinomial(probs, 1, generator=generator))
        out.append(nxt)
        logits, state = model(torch.tensor([[nxt]]), state)
    return np.array(out)


def write_midi(path, pitch, onset, steps_per_quarter):
    from music21 import meter, note, stream, tempo

    part = stream.Part([tempo.MetronomeMark(number=80), meter.TimeSignature("4/4")])
    i = 0
    while i < len(pitch):
        j = i + 1
        while j < len(pitch) and pitch[j] == pitch[i] and not onset[j]:
            j += 1
        length = (j - i) / steps_per_quarter
        part.append(note.Rest(quarterLength=length) if pitch[i] < 0 else
                    note.Note(int(pitch[i]), quarterLength=length))
        i = j
    part.write("midi", fp=path)


def plot_piano_roll(path, pitch, onset, prompt_steps, steps_per_quarter):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.6))
    i = 0
    while i < len(pitch):
        j = i + 1
        while j < len(pitch) and pitch[j] == pitch[i] and not onset[j]:
            j += 1
        if pitch[i] >= 0:
            color = "tab:gray" if i < prompt_steps else "tab:blue"
            ax.add_patch(plt.Rectangle((i / steps_per_quarter, pitch[i] - 0.4), (j - i) / steps_per_quarter,
                                       0.8, color=color))
        i = j
    notes = pitch[pitch >= 0]
    ax.set_xlim(0, len(pitch) / steps_per_quarter)
    ax.set_ylim(notes.min() - 2, notes.max() + 2)
    ax.axvline(prompt_steps / steps_per_quarter, color="k", lw=0.8, ls="--")
    ax.set_xlabel("quarter notes (grey: the held-out chorale's opening; blue: the GRU's continuation)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title("GRU melody in the style of the Bach chorales (soprano, in C)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chorales", type=int, default=None, help="use only the first N chorales")
    p.add_argument("--steps", type=int, default=1200, help="training batches")
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--seq", type=int, default=64, help="sixteenths per training slice")
    p.add_argument("--out", default=os.path.join("runs", "bach"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    spq = 4

    start = time.perf_counter()
    melodies = datasets.load_bach_melodies(limit=args.chorales, steps_per_quarter=spq)
    load_seconds = time.perf_counter() - start
    low = min(int(p[p >= 0].min()) for _, p, _ in melodies)
    high = max(int(p.max()) for _, p, _ in melodies)
    vocab = 2 + high - low + 1
    seqs = [tokens(p, o, low) for _, p, o in melodies]
    order = rng.permutation(len(seqs))
    n_test = max(2, len(seqs) // 8)
    test = [seqs[i] for i in order[:n_test]]
    train = [seqs[i] for i in order[n_test:]]
    stream_ = np.concatenate([np.concatenate([s, np.full(8, REST)]) for s in train])

    model = MelodyModel(vocab, args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    data = torch.from_numpy(stream_)
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train()
        idx = torch.from_numpy(rng.integers(0, len(stream_) - args.seq - 1, 32))[:, None] + torch.arange(
            args.seq + 1)
        batch = data[idx]
        logits, _ = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    train_seconds = time.perf_counter() - start

    bits, acc = model_scores(model, test)
    markov_bits, markov_acc = markov_scores(train, test, vocab)
    prompt = test[0][: 8 * spq]  # the first two bars
    gen = continue_melody(model, prompt, 32 * spq, 0.9, torch.Generator().manual_seed(args.seed))
    pitch, onset = to_pitches(gen, low)
    os.makedirs(args.out, exist_ok=True)
    write_midi(os.path.join(args.out, "melody.mid"), pitch, onset, spq)
    plot_piano_roll(os.path.join(args.out, "piano_roll.png"), pitch, onset, len(prompt), spq)
    notes_played = int(onset[len(prompt):].sum())
    res = {"bits_per_token": bits, "accuracy": acc, "markov_bits": markov_bits, "markov_accuracy": markov_acc,
           "chorales": len(seqs), "test_chorales": n_test, "load_seconds": round(load_seconds, 1),
           "train_seconds": round(train_seconds, 1), "generated_notes": notes_played, "out": args.out}
    print(f"{len(seqs)} chorales ({n_test} held out), parsed in {load_seconds:.0f} s, trained in "
          f"{train_seconds:.0f} s; held-out next sixteenth:")
    print(f"  GRU     {bits:.3f} bits/token, accuracy {acc:.4f}")
    print(f"  Markov  {markov_bits:.3f} bits/token, accuracy {markov_acc:.4f}")
    print(f"wrote {args.out}/melody.mid ({notes_played} generated notes) and {args.out}/piano_roll.png")
    return res


if __name__ == "__main__":
    main()
