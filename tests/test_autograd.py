"""The library's custom autograd functions (``tvo.autograd.Function``): hand-written backwards
against finite differences (``torch.autograd.gradcheck``), and their ``vmap`` rules against a
loop over the batch, under ``vmap`` alone and ``vmap`` of ``grad``."""

import pytest
import torch
from torch.func import grad, vmap

from tvo.autograd import Function, batch_dims_first
from tvo.models.sbn import _BernoulliLogProb, bernoulli_log_prob
from tvo.objectives.tvo import _Surrogate


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def test_batch_dims_first_moves_the_batch_dimension_first_and_aligns_the_rest():
    a, b, c = randn(3, 4, 5), randn(4, 5), randn(4, 7)
    moved = batch_dims_first((1, None, 0), a, b, c)
    assert [t.shape for t in moved] == [(4, 3, 5), (1, 4, 5), (4, 1, 7)]
    torch.testing.assert_close(moved[0], a.movedim(1, 0))
    torch.testing.assert_close(moved[1][0], b)


def test_the_bernoulli_log_density_backward_matches_finite_differences():
    """Logits ``[B, D]`` broadcast against particles ``[S, B, D]`` (the guide's case) and the
    reverse (the likelihood's), both inputs differentiable (values need not be 0/1 here)."""
    logits, value = randn(3, 4), randn(2, 3, 4, seed=1)
    for a, b in ((logits, value), (value, logits)):
        a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(_BernoulliLogProb.apply, (a, b))
    bernoulli = torch.distributions.Bernoulli(logits=logits)  # an independent reference
    binary = (value > 0).double()
    torch.testing.assert_close(
        bernoulli_log_prob(logits, binary), bernoulli.log_prob(binary).sum(-1)
    )


def test_the_surrogate_backward_is_its_coefficients():
    log_p, log_q = randn(5, 3).requires_grad_(True), randn(5, 3, seed=1).requires_grad_(True)
    coef_p, coef_q = randn(5, 3, seed=2), randn(5, 3, seed=3)
    assert torch.autograd.gradcheck(lambda p, q: _Surrogate.apply(p, q, coef_p, coef_q),
                                    (log_p, log_q))  # fmt: skip


class WrongBackward(Function):
    """A wrong variant: the Bernoulli log-density with the sign of its logits' gradient
    flipped. gradcheck must reject it (else the tests above could not fail)."""

    @staticmethod
    def forward(logits, value):
        return (logits * value).sum(-1) - torch.nn.functional.softplus(logits).sum(-1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        logits, value = ctx.saved_tensors
        return (torch.sigmoid(logits) - value) * g.unsqueeze(-1), logits * g.unsqueeze(-1)


def test_gradcheck_rejects_a_wrong_backward():
    logits, value = randn(3, 4).requires_grad_(True), randn(3, 4, seed=1).requires_grad_(True)
    assert not torch.autograd.gradcheck(WrongBackward.apply, (logits, value),
                                        raise_exception=False)  # fmt: skip


@pytest.mark.parametrize("in_dims", [(0, None), (None, 0), (0, 0), (1, 2)])
def test_vmap_of_the_bernoulli_log_density_is_the_loop(in_dims):
    """``M = 3`` members; logits ``[B, D]`` = ``[4, 5]`` per member, values ``[S, B, D]``."""
    logits, value = randn(3, 4, 5), randn(3, 2, 4, 5, seed=1)
    logits = logits if in_dims[0] != 1 else logits.movedim(0, 1)
    value = value if in_dims[1] != 2 else value.movedim(0, 2)
    member_logits = [logits.select(in_dims[0], m) if in_dims[0] is not None else logits[0]
                     for m in range(3)]  # fmt: skip
    member_value = [value.select(in_dims[1], m) if in_dims[1] is not None else value[0]
                    for m in range(3)]  # fmt: skip
    if in_dims[0] is None:
        logits = logits[0]
    if in_dims[1] is None:
        value = value[0]
    batched = vmap(bernoulli_log_prob, in_dims=in_dims)(logits, value)
    loop = torch.stack([bernoulli_log_prob(a, b) for a, b in zip(member_logits, member_value)])
    torch.testing.assert_close(batched, loop)


def test_vmap_of_grad_through_both_functions_is_the_loop_of_autograd_gradients():
    """A member's loss ``Σ_b surrogate_b`` with ``log p`` from the Bernoulli log-density of its
    logits: the gradient in the logits under ``vmap(grad)`` equals autograd's, member by
    member (the fast path that skips ``torch.func``'s binding, and the transformed one)."""
    logits, value = randn(3, 4, 5), (randn(2, 4, 5, seed=1) > 0).double()
    log_q = randn(2, 4, seed=2)
    coef_p, coef_q = randn(3, 2, 4, seed=3), randn(3, 2, 4, seed=4)

    def loss(member_logits, a, b):
        return _Surrogate.apply(bernoulli_log_prob(member_logits, value), log_q, a, b).sum()

    batched = vmap(grad(loss))(logits, coef_p, coef_q)
    loop = []
    for m in range(3):
        leaf = logits[m].clone().requires_grad_(True)
        loss(leaf, coef_p[m], coef_q[m]).backward()
        loop.append(leaf.grad)
    torch.testing.assert_close(batched, torch.stack(loop))
    expected = (coef_p[:, :, :, None] * (value - torch.sigmoid(logits[:, None]))).sum(1)
    torch.testing.assert_close(batched, expected)  # ∂/∂l = Σ_s a_s (v − σ(l))
