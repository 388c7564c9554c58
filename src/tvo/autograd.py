"""The base of the library's custom autograd functions (the TVO surrogate, the SBN's Bernoulli
log-density).

They are written in the ``setup_context`` form, so that ``torch.func`` (``vmap``, ``grad``) can
transform them, each with a ``vmap`` rule that calls the function itself once on the batched
tensors (``batch_dims_first``): the generated rule (``generate_vmap_rule``) runs the forward
and the backward through functorch's Python layers, which made a group step of ``linear_1``
(``tvo.ensemble``) 2.8 ms slower per step, more than the single run's whole step costs
above its matrix products. In that form ``torch.autograd.Function``
binds the forward's signature with ``inspect`` at every call, which cost about 35 µs a call
(measured: 187 against 154 µs for the Bernoulli log-density's forward and backward on
``[10, 24, 200]`` logits, 2 CPU threads); a ``linear_1`` step makes four such calls. Our
forwards take no default arguments, so ``Function`` skips that binding whenever no
``torch.func`` transform is active and goes straight to autograd's own ``apply``.
"""

from __future__ import annotations

import torch


class Function(torch.autograd.Function):
    """``torch.autograd.Function`` for forwards in the ``setup_context`` form without default
    arguments: ``apply`` costs what the old form's did. A subclass gives its ``vmap`` rule."""

    @classmethod
    def apply(cls, *args):
        if torch._C._are_functorch_transforms_active():
            return super().apply(*args)
        return super(torch.autograd.Function, cls).apply(*args)  # autograd's C++ apply


def batch_dims_first(in_dims, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """For a ``vmap`` rule: each tensor with its batch dimension first (``in_dims``; ``None``:
    not batched, then a leading dimension of 1, which broadcasts), and singleton dimensions
    inserted after it so that all have the same number of dimensions (the logical shapes
    broadcast against each other from the right, as without ``vmap``)."""
    physical = [t.unsqueeze(0) if d is None else t.movedim(d, 0) for t, d in zip(tensors, in_dims)]
    ndim = max(t.dim() for t in physical)
    return [t.reshape(t.shape[:1] + (1,) * (ndim - t.dim()) + t.shape[1:]) for t in physical]
