"""torch.jit.script on models that hold gk.GRU and gk.GRUCell, as on models that hold torch's
(grukit/scripting.py)."""

import io
import itertools

import pytest
import torch

import grukit as gk
from grukit.modules import ScriptableGRU, ScriptableGRUCell

# torch 2.13 deprecates TorchScript but still runs it, and models that hold torch's GRU script
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


class Tagger(torch.nn.Module):
    """A model as a torch user writes it: a recurrent layer, then a head."""

    def __init__(self, rnn: torch.nn.Module, width: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = torch.nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


class Decoder(torch.nn.Module):
    """A step-by-step loop over a cell, as in a seq2seq decoder."""

    def __init__(self, cell: torch.nn.Module) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], 5)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return h


def _saved_and_loaded(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def test_a_model_holding_gk_modules_scripts_as_one_holding_torchs():
    """The two models torch users script (a tagger over a GRU, a decoder loop over a cell), with
    grukit's modules in torch's places: the scripted model computes what torch's does, saves and
    loads; the eager model keeps computing as before, with grukit's arguments (lengths)."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5)
    for gk_rnn, torch_rnn in [(gk.GRU(5, 5, batch_first=True), torch.nn.GRU(5, 5, batch_first=True)),
                              (gk.GRU(5, 5, num_layers=2, bidirectional=True, batch_first=True),
                               torch.nn.GRU(5, 5, num_layers=2, bidirectional=True, batch_first=True))]:
        torch_rnn.load_state_dict(gk_rnn.state_dict())
        ours = Tagger(gk_rnn, 5 * (1 + gk_rnn.bidirectional))
        theirs = Tagger(torch_rnn, 5 * (1 + gk_rnn.bidirectional))
        theirs.head.load_state_dict(ours.head.state_dict())
        expected = torch.jit.script(theirs)(x)
        scripted = torch.jit.script(ours)
        torch.testing.assert_close(scripted(x), expected)
        torch.testing.assert_close(_saved_and_loaded(scripted)(x), expected)
        # the eager model: torch.jit.script wrote the scriptable copy into it, a gk.GRU with the same
        # parameters that runs grukit's engines
        assert isinstance(ours.rnn, gk.GRU) and isinstance(ours.rnn, ScriptableGRU)
        assert ours.rnn.weight_ih_l0 is gk_rnn.weight_ih_l0 and repr(ours.rnn) == repr(gk_rnn)
        torch.testing.assert_close(ours(x), expected)
        assert ours.rnn.last_engine == "cpu"
        out, _ = ours.rnn(x, lengths=torch.tensor([4, 2, 3]))
        assert out[1, 2:].abs().max() == 0
    cell, torch_cell = gk.GRUCell(5, 5), torch.nn.GRUCell(5, 5)
    torch_cell.load_state_dict(cell.state_dict())
    expected = torch.jit.script(Decoder(torch_cell))(x)
    scripted = torch.jit.script(Decoder(cell))
    torch.testing.assert_close(scripted(x), expected)
    torch.testing.assert_close(_saved_and_loaded(scripted)(x), expected)
    # a model scripted again after a weight of its (now scriptable) GRU was replaced: the new weight
    model = Tagger(gk.GRU(3, 5), 5).eval()
    torch.jit.script(model)
    model.rnn.weight_hh_l0 = torch.nn.Parameter(torch.zeros(15, 5))
    xs = torch.randn(4, 2, 3)
    torch.testing.assert_close(torch.jit.script(model)(xs), model(xs))


@pytest.mark.parametrize("layers,bidirectional,reset_after,layer_norm,bias,batch_first", [
    c for c in itertools.product([1, 2], *[[False, True]] * 5) if not (c[3] and not c[2])])
def test_scripted_gru_equals_the_eager_one(layers, bidirectional, reset_after, layer_norm, bias, batch_first):
    """Every variant, scripted on its own: outputs and final states in eval mode (with h0, lengths,
    unbatched), and in training, where dropout, zoneout and recurrent dropout draw from the
    generator in the reference engine's order, the same outputs and gradients under one seed."""
    torch.manual_seed(0)
    D = 2 if bidirectional else 1
    gru = gk.GRU(3, 5, num_layers=layers, bidirectional=bidirectional, reset_after=reset_after,
                 layer_norm=layer_norm, bias=bias, batch_first=batch_first, zoneout=0.2,
                 recurrent_dropout=0.3, dropout=0.25 if layers > 1 else 0.0, engine="reference")
    if layer_norm:
        with torch.no_grad():
            for p in gru.parameters():
                p.add_(0.1 * torch.randn_like(p))
    gru.eval()
    scripted = torch.jit.script(gru)
    x = torch.randn(4, 6, 3)
    B = 4 if batch_first else 6
    h0 = torch.randn(layers * D, B, 5)
    lengths = torch.tensor([6, 2, 3, 1]) if batch_first else torch.tensor([4, 2, 3, 1, 4, 4])
    for args, kwargs in [((x,), {}), ((x, h0), {}), ((x,), {"hx": h0}), ((x,), {"lengths": lengths}),
                         ((x[0] if batch_first else x[:, 0],), {})]:
        want, got = gru(*args, **kwargs), scripted(*args, **kwargs)
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])
    # the cpu engine (the default) too
    fast = gk.GRU(3, 5, num_layers=layers, bidirectional=bidirectional, reset_after=reset_after,
                  layer_norm=layer_norm, bias=bias, batch_first=batch_first).eval()
    fast.load_state_dict(gru.state_dict())
    torch.testing.assert_close(torch.jit.script(fast)(x, h0)[0], fast(x, h0)[0])
    gru.train()
    scripted.train()
    for seed in range(3):  # TorchScript's executor optimises the graph after its first runs
        torch.manual_seed(seed)
        want = gru(x, h0)
        torch.manual_seed(seed)
        got = scripted(x, h0)
        torch.testing.assert_close(got[0], want[0])
        torch.testing.assert_close(got[1], want[1])
        for a, b in zip(torch.autograd.grad(want[0].sum(), list(gru.parameters())),
                        torch.autograd.grad(got[0].sum(), list(scripted.parameters())), strict=True):
            torch.testing.assert_close(b, a)
    assert not torch.equal(want[0], gru.eval()(x, h0)[0])  # training drew its masks


@pytest.mark.parametrize("reset_after,bias", [(True, True), (False, True), (False, False)])
def test_scripted_cell_equals_the_eager_one(reset_after, bias):
    torch.manual_seed(1)
    cell = gk.GRUCell(3, 5, bias=bias, reset_after=reset_after)
    scripted = torch.jit.script(cell)
    x, h = torch.randn(4, 3), torch.randn(4, 5)
    torch.testing.assert_close(scripted(x, h), cell(x, h))
    torch.testing.assert_close(scripted(x), cell(x))
    torch.testing.assert_close(scripted(x[0], h[0]), cell(x[0], h[0]))  # unbatched
    ref = torch.autograd.grad(cell(x, h).sum(), list(cell.parameters()))
    for _ in range(3):  # TorchScript's executor optimises the graph after its first runs
        got = torch.autograd.grad(scripted(x, h).sum(), list(scripted.parameters()))
        for a, b in zip(ref, got, strict=True):
            torch.testing.assert_close(b, a)
    assert isinstance(cell.__prepare_scriptable__(), ScriptableGRUCell)


def test_what_a_scripted_gru_refuses_and_what_cannot_be_scripted():
    gru = torch.jit.script(gk.GRU(3, 5))
    x = torch.randn(4, 2, 3)
    with pytest.raises(torch.jit.Error, match="resets are not available in a scripted gk.GRU"):
        gru(x, resets=torch.zeros(4, 2, dtype=torch.bool))
    with pytest.raises(torch.jit.Error, match="input_size features"):
        gru(torch.randn(4, 2, 7))
    with pytest.raises(TypeError, match="torch.jit.script cannot compile gk.MinGRU.*torch.jit.trace"):
        torch.jit.script(Tagger(gk.MinGRU(3, 5), 5))
    quantized = gk.quantize(torch.nn.Sequential(gk.GRU(3, 5)))
    with pytest.raises(TypeError, match="torch.jit.script cannot compile gk.QuantizedGRU.*torch.jit.trace"):
        torch.jit.script(quantized)
