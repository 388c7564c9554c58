"""Shared helpers for the statistical tests.

A Monte Carlo test compares the mean of ``R`` independent draws of an estimator with an exact
answer: each component must lie within ``z`` standard errors plus a small allowance for the
estimator's known bias (self-normalised estimators are biased at ``O(1/S)``). Each test also runs
a wrong estimator through the same check and requires it to fail, so the check can fail."""

import hashlib
import itertools
import os
import shutil
import struct
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Independent

import tvo
from tvo.evaluate import exact_log_weights
from tvo.models.toy import DiscreteToy


def flat_grad(scalar: torch.Tensor, params) -> torch.Tensor:
    """The gradient of ``scalar`` w.r.t. ``params``, flattened into one vector."""
    grads = torch.autograd.grad(scalar, list(params), allow_unused=True)
    return torch.cat(
        [torch.zeros_like(p).flatten() if g is None else g.flatten() for g, p in zip(grads, params)]
    )


def deviation(draws: torch.Tensor, exact: torch.Tensor, atol: float) -> float:
    """The largest ``|mean − exact| / (SE + atol)`` over components; ``draws`` is ``[R, P]``."""
    mean = draws.mean(0)
    standard_error = draws.std(0) / draws.shape[0] ** 0.5
    return ((mean - exact).abs() / (standard_error + atol)).max().item()


def assert_unbiased(draws, exact, atol: float, z: float = 4.0) -> None:
    """Mean of ``draws`` within ``z`` standard errors (+ ``atol``) of ``exact``, per component."""
    score = deviation(draws, exact, atol)
    assert score < z, f"estimator mean is {score:.1f} (SE + atol) from the exact answer (limit {z})"


def assert_biased(draws, exact, atol: float, z: float = 4.0) -> None:
    """The negative control: a wrong estimator must fail :func:`assert_unbiased`."""
    score = deviation(draws, exact, atol)
    assert score > z, f"the check could not tell a wrong estimator apart ({score:.1f} ≤ {z})"


def train_straight_and_resumed(config, tmp_path, stop_after: int):
    """Train ``config`` uninterrupted in ``tmp_path/straight``, and again in ``tmp_path/resumed``
    stopped after step ``stop_after`` then resumed. Returns both runs."""
    from tvo.runs import Run
    from tvo.train import train

    straight = Run.create(tmp_path / "straight", config)
    train(straight, quiet=True)
    resumed = Run.create(tmp_path / "resumed", config)
    train(resumed, quiet=True, stop_after=stop_after)
    train(Run.open(resumed.path), quiet=True)
    return straight, resumed


def leaves(S=6, B=3, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    log_p = (scale * torch.randn(S, B, dtype=torch.float64, generator=g)).requires_grad_()
    log_q = (scale * torch.randn(S, B, dtype=torch.float64, generator=g)).requires_grad_()
    return log_p, log_q


def grads(surrogate, *inputs):
    return torch.autograd.grad(surrogate.sum(), inputs)


def toy(seed=0, num_latents=3, num_observed=4):
    return DiscreteToy(num_latents, num_observed, seed=seed).double()


def data(model, n, seed=1):
    torch.manual_seed(seed)
    return model.sample(n)[1]


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_amat(path, images):
    path.write_text("".join(" ".join(str(int(v)) for v in row) + "\n" for row in images))


def toy_and_data(seed):
    model = DiscreteToy(3, 5, seed=seed).double()
    torch.manual_seed(seed)
    return model, model.sample(6)[1]


def tuple_log_weights(model, x, num_particles):
    """``log p`` and ``log q`` at every ``S``-tuple of latent values, each ``[S, N^S, B]``."""
    log_p_all, log_q_all = exact_log_weights(model, x)  # [N, B]
    N = log_p_all.shape[0]
    tuples = torch.tensor(list(itertools.product(range(N), repeat=num_particles))).T  # [S, T]
    return log_p_all[tuples], log_q_all[tuples]


def expected_estimator_gradient(model, x, num_particles, fn):
    """``E_{z_1..z_S ~ q}[∇ surrogate]``, exactly: a sum over all ``N^S`` tuples of latents."""
    log_p, log_q = tuple_log_weights(model, x, num_particles)
    probability = log_q.detach().sum(0).exp()  # q(z_1..z_S | x), [T, B]
    S, T, B = log_p.shape
    surrogate = fn(log_p.reshape(S, T * B), log_q.reshape(S, T * B)).surrogate.reshape(T, B)
    expected_loss = -(probability * surrogate).sum(0).mean()
    return flat_grad(expected_loss, list(model.parameters()))


def exact_expected_iwae_gradient(model, x, num_particles):
    """``∇ E_q[L̂_S]``: autograd through the exact probability-weighted sum over tuples."""
    log_p, log_q = tuple_log_weights(model, x, num_particles)
    bound = (log_q.sum(0).exp() * tvo.ops.logmeanexp(log_p - log_q)).sum(0)
    return flat_grad(-bound.mean(), list(model.parameters()))


def train(model, objective, x, steps=300, batch=50, lr=0.05):
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)  # one optimiser, θ and φ together
    for _ in range(steps):
        optimiser.zero_grad()
        objective(model, x[torch.randint(0, len(x), (batch,))], 10).loss.backward()
        optimiser.step()


SETTINGS = """
[evaluation]
particles = 40
[defaults]
data = "{data}"
model = "discrete_toy"
steps = 20
eval_every = 10
eval_particles = 5
log_every = 10
checkpoint_every = 10
batch_size = 8
"""

EXPERIMENTS = """
[[experiment]]
name = "sbn"
seeds = [0, 1]
grid = [{objective = "tvo", partitions = 2}, {objective = ["vimco", "rws"]}]
[[experiment]]
name = "sbn-grid"
seeds = [0, 1]
grid = [{objective = "tvo", partitions = [2, 3]}]
[[experiment]]
name = "continuous"
seeds = [0, 1]
grid = [{model = "linear_gaussian", objective = ["tvo", "vae", "iwae"]}]
[report.bounds]
run = "discrete_toy-tvo-S10-K2-log-b0.1-tiny-seed0"
partitions = [2, 4]
beta1 = [0.1]
particles = 500
iwae = [10]
"""


def write_sweep(tmp_path, data, body, name="sweep.toml"):
    """A sweep file of SETTINGS (on ``data``) and ``body``."""
    path = tmp_path / name
    path.write_text(SETTINGS.format(data=data) + textwrap.dedent(body))
    return path


# torch.compile's CPU kernels need a C++ compiler
needs_compiler = pytest.mark.skipif(
    not (os.environ.get("CXX") or shutil.which("g++")), reason="no C++ compiler"
)


class TinySBN(tvo.Model):
    """The README's model: binary latents over binary pixels, every distribution Independent."""

    def __init__(self, latents=4, pixels=8):
        super().__init__()
        self.prior_logits = torch.nn.Parameter(torch.zeros(latents))
        self.decoder = torch.nn.Linear(latents, pixels)
        self.encoder = torch.nn.Linear(pixels, latents)

    def prior(self):
        return Independent(Bernoulli(logits=self.prior_logits), 1)

    def likelihood(self, z):
        return Independent(Bernoulli(logits=self.decoder(z)), 1)

    def guide(self, x):
        return Independent(Bernoulli(logits=self.encoder(x)), 1)


def tree_digest(folder) -> str:
    """A digest of every file's name and bytes below ``folder``: equal digests, an unchanged
    folder."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()
