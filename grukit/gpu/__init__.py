"""The GPU engines: ``"cudnn"`` (PyTorch's own cuDNN GRU, for the configurations it
computes) and ``"triton"`` (fused Triton kernels with a hand-written backward, for every
option). grukit.engines chooses between them; see docs/gpu.md.

Triton is optional (``pip install grukit[triton]``): this package imports without it,
and ``grukit.gpu.recurrence`` / ``grukit.gpu.scan`` are loaded only when it is present.
"""
