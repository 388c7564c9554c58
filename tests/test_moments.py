"""The moments schedule places the points where its definition says."""

import pytest
import torch

import tvo
from tvo.config import resolve
from tvo.evaluate import exact_integrand, exact_log_weights
from tvo.models.toy import DiscreteToy
from tvo.partitions import invert_integrand, moments

from conftest import train_straight_and_resumed


def test_inverting_a_known_integrand():
    # g(β) = β³ rises from 0 to 1: the points are (k/K)^(1/3).
    points = invert_integrand(lambda beta: beta**3, 4)
    expected = torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=torch.float64) ** (1 / 3)
    torch.testing.assert_close(points, expected, rtol=0, atol=1e-12)


def test_a_flat_integrand_gives_the_linear_schedule():
    torch.testing.assert_close(invert_integrand(lambda b: torch.zeros_like(b), 3),
                               tvo.partition(3, "linear"))  # fmt: skip


@pytest.mark.parametrize("K", [2, 5])
def test_gaussian_log_weights_give_the_linear_schedule(K):
    """If ℓ ~ N(μ, σ²) under q, tilting by e^{βℓ} gives ℓ ~ N(μ + βσ², σ²) under π_β, so
    g(β) = μ + βσ² is linear and the moments points are k/K. With 200,000 particles and σ = 1
    the points came out within 0.0014 of k/K over four seeds; tolerance 0.005."""
    torch.manual_seed(0)
    log_weight = -40.0 + torch.randn(200_000, 2, dtype=torch.float64)
    points = moments(log_weight, K)
    torch.testing.assert_close(points, tvo.partition(K, "linear"), rtol=0, atol=0.005)
    # The log schedule is far from these points: the check can tell them apart.
    assert (tvo.partition(K, "log", 0.1) - points).abs().max() > 0.05


def test_particle_moments_match_the_exactly_enumerated_points():
    torch.manual_seed(1)
    model = DiscreteToy(3, 5, seed=2).double()
    x = model.sample(4)[1]
    with torch.no_grad():
        exact = invert_integrand(lambda beta: exact_integrand(model, x, beta).mean(1), 4)
        g = exact_integrand(model, x, exact).mean(1)
        z, log_q = model.sample_guide(x, 100_000)
        estimated = moments(model.log_joint(x, z) - log_q, 4)
    # The exact points split [g(0), g(1)] evenly.
    spacing = torch.full((4,), (g[-1] - g[0]).item() / 4, dtype=torch.float64)
    torch.testing.assert_close(g[1:] - g[:-1], spacing)
    # Self-normalised, 100,000 particles over 8 latent values: within 0.0014 of the exact points
    # over four seeds; tolerance 0.005.
    torch.testing.assert_close(estimated, exact, rtol=0, atol=0.005)
    assert (tvo.partition(4, "linear") - exact).abs().max() > 0.05
    log_p, _ = exact_log_weights(model, x)
    assert torch.isfinite(log_p).all()


def test_training_with_moments_moves_logs_and_checkpoints_the_partition(tiny_data, tmp_path):
    config = resolve(data=tiny_data, schedule="moments", partitions=4, adapt_every=5, steps=40,
                     batch_size=8, eval_every=20, eval_images=8, eval_particles=20, log_every=10,
                     checkpoint_every=20)  # fmt: skip
    # the resumed run was interrupted after step 17
    straight, resumed = train_straight_and_resumed(config, tmp_path, stop_after=17)
    rows = straight.read_metrics()
    logged = [row["partition"] for row in rows]
    start = " ".join(f"{b:.6g}" for b in tvo.partition(4, "log", 0.1).tolist())
    assert all(len(p.split()) == 5 for p in logged) and logged[0] != start
    state = straight.load_checkpoint()
    assert " ".join(f"{b:.6g}" for b in state["partition"].tolist()) == logged[-1]
    # Interrupted and resumed, it ends where the uninterrupted run does.
    torch.testing.assert_close(resumed.load_checkpoint()["partition"], state["partition"],
                               rtol=0, atol=0)  # fmt: skip
    for name, tensor in state["model"].items():
        assert torch.equal(tensor, resumed.load_checkpoint()["model"][name]), name
