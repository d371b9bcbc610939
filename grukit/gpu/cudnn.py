"""``engine="cudnn"``: PyTorch's own GRU function (``torch._VF.gru``, which runs cuDNN
on CUDA), for the configurations it computes: reset_after=True without layer norm,
zoneout, recurrent dropout or resets. It is the function torch.nn.GRU calls, so its
speed is torch.nn.GRU's; grukit's contract (lengths on a padded batch, lengths of 0,
h_n at each row's last valid step) is kept around it.

On another device the same function runs torch's native kernels (the CPU tests use
that to check this plumbing against the reference engine).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence


def flatten(weights: list[Tensor], has_bias: bool, input_size: int, hidden_size: int, num_layers: int,
            bidirectional: bool) -> None:
    """Make the parameters views of one buffer, laid out as cuDNN wants them (what
    torch.nn.GRU.flatten_parameters does), so that cuDNN does not copy them per call.
    A no-op unless they are all CUDA tensors of one dtype that cuDNN accepts."""
    if not weights or not all(w.is_cuda and w.dtype == weights[0].dtype for w in weights):
        return
    if not torch.backends.cudnn.is_acceptable(weights[0]):
        return
    if len({w.data_ptr() for w in weights}) != len(weights):
        return
    import torch.backends.cudnn.rnn as rnn

    with torch.cuda.device_of(weights[0]), torch.no_grad():
        if torch._use_cudnn_rnn_flatten_weight():
            torch._cudnn_rnn_flatten_weight(weights, 4 if has_bias else 2, input_size,
                                            rnn.get_cudnn_mode("GRU"),
                                            hidden_size, 0, num_layers, False, bidirectional)


def gru_stack(x: Tensor, h0: Tensor, weights: list[Tensor], has_bias: bool, num_layers: int,
              bidirectional: bool, lengths: Optional[Tensor], dropout: float, training: bool,
              ) -> tuple[Tensor, Tensor]:
    """All layers and directions: x (T, B, I), h0 (L*D, B, H), weights flat in torch's
    parameter order -> (T, B, D*H), (L*D, B, H)."""
    if lengths is None:
        out, h_n = torch._VF.gru(x, h0, weights, has_bias, num_layers, dropout, training, bidirectional,
                                 False)
        return out, h_n
    T = x.shape[0]
    lens = lengths.to("cpu", torch.int64)
    empty = lens == 0  # rows with no step: PackedSequence cannot hold them
    packed = pack_padded_sequence(x, lens.clamp(min=1), enforce_sorted=False)
    h0_sorted = h0.index_select(1, packed.sorted_indices)
    data, h_n = torch._VF.gru(packed.data, packed.batch_sizes, h0_sorted, weights, has_bias, num_layers,
                              dropout, training, bidirectional)
    h_n = h_n.index_select(1, packed.unsorted_indices)
    out = torch.nn.utils.rnn.pad_packed_sequence(
        torch.nn.utils.rnn.PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                                          packed.unsorted_indices), total_length=T)[0]
    if bool(empty.any()):
        keep = (~empty).to(x.device)
        out = out * keep.view(1, -1, 1).to(out.dtype)
        h_n = torch.where(keep.view(1, -1, 1), h_n, h0)
    return out, h_n
