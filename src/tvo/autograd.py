"""The base of the library's custom autograd functions (the TVO surrogate, the SBN's Bernoulli
log-density).

They are written in the ``setup_context`` form with ``generate_vmap_rule``, so that
``torch.func`` (``vmap``, ``grad``) can transform them. In that form ``torch.autograd.Function``
binds the forward's signature with :mod:`inspect` at every call, which cost about 35 µs a call
(measured: 187 against 154 µs for the Bernoulli log-density's forward and backward on
``[10, 24, 200]`` logits, 2 CPU threads); a ``linear_1`` step makes four such calls. Our
forwards take no default arguments, so :class:`Function` skips that binding whenever no
``torch.func`` transform is active and goes straight to autograd's own ``apply``.
"""

from __future__ import annotations

import torch


class Function(torch.autograd.Function):
    """``torch.autograd.Function`` for forwards in the ``setup_context`` form without default
    arguments: the vmap rule is generated, and ``apply`` costs what the old form's did."""

    generate_vmap_rule = True

    @classmethod
    def apply(cls, *args):
        if torch._C._are_functorch_transforms_active():
            return super().apply(*args)
        return super(torch.autograd.Function, cls).apply(*args)  # autograd's C++ apply
