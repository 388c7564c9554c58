"""The functional layer under ``torch.func``: every function of ``tvo.functional`` gives, under
``vmap`` over independent problems, what it gives on each alone, and ``torch.func.grad`` of its
surrogate equals autograd's gradient. (The functions' values against MATH.md and exact answers
are tested per family in tests/objectives/.)"""

import pytest
import torch
from torch.func import grad, vmap

from tvo import functional as F
from tvo.partitions import partition

BETA = partition(4, "log", 0.1)

# Each takes the tensors of its sampling mode: two [S, B] tensors, or three for the sleep family.
FUNCTIONS = {
    "elbo": F.elbo,
    "vae": F.vae,
    "iwae": F.iwae,
    "reinforce": F.reinforce,
    "vimco": F.vimco,
    "rws": F.rws,
    "dreg": F.dreg,
    "tvo": lambda p, q: F.tvo(p, q, BETA),
    "tvo-right": lambda p, q: F.tvo(p, q, BETA, "right"),
    "tvo_reparam": lambda p, q: F.tvo_reparam(p, q, BETA),
    "ovis_mc": F.ovis_mc,  # the third tensor: auxiliary log-weights, [M, B] (here M = S)
    "ovis_asymptotic": lambda p, q: F.ovis_asymptotic(p, q, 0.5),
    "renyi": lambda p, q: F.renyi(p, q, 0.5),
    "renyi-negative": lambda p, q: F.renyi(p, q, -1.0),
    "renyi_pathwise": lambda p, q: F.renyi_pathwise(p, q, 0.5),
    "wake_sleep": F.wake_sleep,
    "inference_compilation": F.inference_compilation,
}
THREE = ("wake_sleep", "inference_compilation", "ovis_mc")


def problems(name, M=3, S=6, B=4, seed=0):
    """``M`` independent problems: a tuple of ``[M, S, B]`` tensors."""
    g = torch.Generator().manual_seed(seed)
    count = 3 if name in THREE else 2
    return tuple(3 * torch.randn(M, S, B, dtype=torch.float64, generator=g) for _ in range(count))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_every_function_under_vmap_equals_each_problem_alone(name):
    fn, tensors = FUNCTIONS[name], problems(name)
    batched = vmap(fn)(*tensors)
    for i in range(3):
        alone = fn(*(t[i] for t in tensors))
        for ours, theirs in zip(batched, alone):
            torch.testing.assert_close(ours[i], theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_torch_func_grad_of_every_surrogate_equals_autograd(name):
    fn, tensors = FUNCTIONS[name], problems(name)
    argnums = tuple(range(len(tensors)))
    per_problem = vmap(grad(lambda *t: fn(*t).surrogate.sum(), argnums=argnums))(*tensors)
    for i in range(3):
        leaves = [t[i].clone().requires_grad_() for t in tensors]
        expected = torch.autograd.grad(fn(*leaves).surrogate.sum(), leaves, allow_unused=True)
        for ours, theirs in zip(per_problem, expected):
            theirs = torch.zeros_like(leaves[0]) if theirs is None else theirs
            torch.testing.assert_close(ours[i], theirs, rtol=1e-12, atol=1e-12)
