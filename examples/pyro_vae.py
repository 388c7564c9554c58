"""Train a VAE with binary latents, written in Pyro, with the TVO on binarized MNIST.

    model:  z ~ Bernoulli(σ(a)) (L units),   x ~ Bernoulli(σ(dec(2z − 1)))
    guide:  z ~ Bernoulli(σ(enc(2x − 1)))

``dec`` and ``enc`` are tanh MLPs with one hidden layer. The latents are discrete, so Pyro's
reparameterised objectives do not apply; ``tvo.pyro.TVO_ELBO`` trains model and guide together
with the TVO's covariance gradient, through ``pyro.infer.SVI``. The data plate subsamples the
training set, so each step's loss is the bound of the whole training set (the minibatch's
per-image bounds times N/B) and the printed bound is per image. At the end the first test
images are scored with the ELBO, TVO_L, the importance-weighted bound L̂ (VIMCO_ELBO's
estimate, the usual stand-in for log p(x)) and TVO_U, from 1000 particles each.

Run: ``python examples/pyro_vae.py`` (a few minutes on 2 CPU cores; ``--steps`` to change it).
"""

import argparse
import time

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from tqdm import trange

import tvo.data
from tvo.pyro import TVO_ELBO, VIMCO_ELBO


class BinaryVAE(nn.Module):
    """The networks; :meth:`model` and :meth:`guide` are the Pyro programs. ``index`` picks the
    minibatch of ``x`` (all of ``x`` when ``None``)."""

    def __init__(self, pixels=784, latents=50, hidden=200, data_mean=None):
        super().__init__()
        self.prior_logits = nn.Parameter(torch.zeros(latents))
        self.decoder = nn.Sequential(
            nn.Linear(latents, hidden), nn.Tanh(), nn.Linear(hidden, pixels)
        )
        self.encoder = nn.Sequential(
            nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, latents)
        )
        if data_mean is not None:  # start the pixels at their mean
            with torch.no_grad():
                self.decoder[-1].bias.copy_(torch.logit(data_mean.clamp(1e-4, 1 - 1e-4)))

    def model(self, x, index=None):
        pyro.module("vae", self)
        with pyro.plate("data", len(x), subsample=index) as i:
            z = pyro.sample("z", dist.Bernoulli(logits=self.prior_logits).to_event(1))
            logits = self.decoder(2 * z - 1)
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x[i])

    def guide(self, x, index=None):
        pyro.module("vae", self)
        with pyro.plate("data", len(x), subsample=index) as i:
            logits = self.encoder(2 * x[i] - 1)
            pyro.sample("z", dist.Bernoulli(logits=logits).to_event(1))


def evaluate(vae, images, num_particles=1000, chunk=25):
    """Per-image ELBO, TVO_L, L̂ and TVO_U (K = 5) on ``images``, ``num_particles`` each."""
    bounds = {
        "ELBO": TVO_ELBO(num_particles, K=1),
        "TVO_L": TVO_ELBO(num_particles, K=5, beta1=0.1),
        "L̂ (log p̂(x))": VIMCO_ELBO(num_particles),
        "TVO_U": TVO_ELBO(num_particles, K=5, beta1=0.1, integration="right"),
    }
    totals = dict.fromkeys(bounds, 0.0)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk]
        for name, elbo in bounds.items():
            totals[name] -= elbo.loss(vae.model, vae.guide, x)  # −loss = Σ_b bound_b
    return {name: total / len(images) for name, total in totals.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    parser.add_argument("--batch", type=int, default=100, help="images per step (default 100)")
    parser.add_argument("--particles", type=int, default=10, help="S (default 10)")
    parser.add_argument("--data", default="binarized-mnist", help="a dataset name or .npz file")
    parser.add_argument("--test-images", type=int, default=200, help="images scored at the end")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args()

    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    data = tvo.data.load(args.data)
    train = data.train
    vae = BinaryVAE(pixels=train.shape[1], data_mean=train.mean(0))
    elbo = TVO_ELBO(args.particles, K=5, beta1=0.1)
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=elbo)
    print(f"{args.data}: {len(train)} training images; {elbo!r}; batch {args.batch}")

    start = time.perf_counter()
    bar = trange(args.steps, mininterval=1.0)
    average = None
    for step in bar:
        index = torch.randint(len(train), (args.batch,))
        bound = -svi.step(train, index) / len(train)  # the per-image TVO_L of this minibatch
        average = bound if average is None else 0.99 * average + 0.01 * bound
        if step % 100 == 0 or step == args.steps - 1:
            bar.set_postfix(tvo_lower=f"{average:.2f}")
    seconds = time.perf_counter() - start
    print(f"trained {args.steps} steps in {seconds:.0f} s; training TVO_L (moving average) "
          f"{average:.2f} nats per image")  # fmt: skip

    with torch.no_grad():
        images = data.evaluation_images("test", args.test_images)
        result = evaluate(vae, images)
    print(f"first {len(images)} test images, 1000 particles each (nats per image):")
    for name, value in result.items():
        print(f"{name:>14} {value:9.2f}")


if __name__ == "__main__":
    main()
