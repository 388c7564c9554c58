"""Train a sigmoid belief network of your own with the TVO, then compare it with the ELBO.

Data: 8×8 "bars" images (each of the 8 rows and 8 columns is on with probability 0.2), made
here, so nothing is downloaded. Run: ``make demo`` or ``python examples/quickstart.py``.
"""

import argparse
import time

import torch
from torch import nn
from torch.distributions import Bernoulli, Independent
from tqdm import trange

import tvo


class SBN(tvo.Model):
    """One layer of binary latents over binary pixels; the guide mirrors it."""

    def __init__(self, latents=16, pixels=64):
        super().__init__()
        self.prior_logits = nn.Parameter(torch.zeros(latents))
        self.decoder = nn.Linear(latents, pixels)
        self.encoder = nn.Linear(pixels, latents)

    def prior(self):
        return Independent(Bernoulli(logits=self.prior_logits), 1)

    def likelihood(self, z):
        return Independent(Bernoulli(logits=self.decoder(z)), 1)

    def guide(self, x):
        return Independent(Bernoulli(logits=self.encoder(x)), 1)


def bars(n, generator):
    rows, cols = torch.rand(2, n, 8, 1, generator=generator) < 0.2
    return (rows | cols.transpose(1, 2)).flatten(1).float()


def train(objective, data, steps, seed, quiet=False):
    torch.manual_seed(seed)
    model = SBN()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    bar = trange(steps, desc=f"{objective!r:.40}", disable=quiet, mininterval=0.5)
    for step in bar:
        x = data[torch.randint(len(data), (64,))]
        out = objective(model, x, num_particles=10)
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
        if step % 100 == 0:
            bar.set_postfix(estimate=f"{out.estimate.mean():.2f}")
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(args.seed)
    train_data, test_data = bars(10_000, generator), bars(500, generator)
    print("Training one SBN with TVO (K = 5, log schedule, β1 = 0.1) and one with the ELBO, S = 10")
    rows = []
    for objective in (tvo.TVO(K=5, beta1=0.1), tvo.ELBO()):
        start = time.perf_counter()
        model = train(objective, train_data, args.steps, args.seed)
        seconds = time.perf_counter() - start
        torch.manual_seed(args.seed)
        result = tvo.estimate(model, test_data, num_particles=5000, partition=tvo.partition(5))
        rows.append((objective.name, seconds, *(t.mean().item() for t in result)))
    print(f"\nTest set, 500 images, 5000 particles, {args.steps} steps of batch 64:")
    print(f"{'objective':>9} {'seconds':>8} {'log p(x)':>9} {'KL(q|p)':>8} {'ELBO':>8}")
    for name, seconds, log_px, kl, elbo, *_ in rows:
        print(f"{name:>9} {seconds:8.1f} {log_px:9.2f} {kl:8.2f} {elbo:8.2f}")


if __name__ == "__main__":
    main()
