"""Partitions, Riemann sums and the schedules; the moments schedule places the points where
its definition says.
"""

import math

import pytest
import torch

import tvo
from tvo.evaluate import (
    exact_integrand,
    exact_log_weights,
)
from tvo.models.toy import DiscreteToy
from tvo.partitions import (
    Fixed,
    Moments,
    invert_integrand,
    moments,
    partition,
    riemann_sum,
    schedule,
)


def test_linear_schedule():
    torch.testing.assert_close(
        partition(4, "linear"), torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=torch.float64)
    )


def test_log_schedule_is_log_spaced_from_beta1_to_one():
    torch.testing.assert_close(
        partition(3, "log", beta1=0.01), torch.tensor([0, 0.01, 0.1, 1], dtype=torch.float64)
    )
    points = partition(6, "log", beta1=0.05)
    ratios = points[2:] / points[1:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 0.05 ** (-1 / 5)))


@pytest.mark.parametrize("schedule", ["log", "linear"])
def test_one_interval_is_zero_one(schedule):
    torch.testing.assert_close(
        partition(1, schedule), torch.tensor([0.0, 1.0], dtype=torch.float64)
    )


def test_user_partition_is_accepted():
    torch.testing.assert_close(
        partition([0, 0.3, 1]), torch.tensor([0, 0.3, 1], dtype=torch.float64)
    )
    torch.testing.assert_close(partition(torch.tensor([0.0, 1.0])), partition(1))
    assert tvo.TVO(partition=[0, 0.5, 1]).K == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"K": 0}, "integer ≥ 1, got 0"),
        ({"K": -3}, "integer ≥ 1, got -3"),
        ({"K": 2.5}, "integer ≥ 1, got 2.5"),
        ({"K": 3, "schedule": "cubic"}, "unknown schedule 'cubic'"),
        ({"K": 3, "beta1": 0.0}, "beta1 must lie strictly between 0 and 1, got 0.0"),
        ({"K": 3, "beta1": 1.0}, "beta1 must lie strictly between 0 and 1, got 1.0"),
        ({"K": 3, "beta1": 1.5}, "got 1.5"),
        ({"K": 3, "beta1": math.nan}, "got nan"),
        ({"K": [0.1, 1]}, "must start at 0, got first point 0.1"),
        ({"K": [0, 0.5]}, "must end at 1, got last point 0.5"),
        ({"K": [0, 0.5, 0.5, 1]}, "strictly increasing, got β_1 = 0.5 followed by β_2 = 0.5"),
        ({"K": [0, 0.7, 0.3, 1]}, "strictly increasing, got β_1 = 0.7 followed by β_2 = 0.3"),
        ({"K": [0, math.nan, 1]}, "must be finite"),
        ({"K": [[0, 1]]}, "1-D sequence of at least 2 points"),
        ({"K": [0]}, "1-D sequence of at least 2 points"),
        ({"K": ["a", "b"]}, "sequence of numbers"),
    ],
)
def test_bad_partitions_raise_naming_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        partition(**kwargs)


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


# --- Riemann sums and schedules -------------------------------------------------------------------


def test_riemann_sums_of_a_known_integrand():
    """g(β) = β² on [0, 0.5, 1]: left 0.5·0 + 0.5·0.25 = 0.125, right 0.5·0.25 + 0.5·1 = 0.625."""
    beta = partition([0.0, 0.5, 1.0])
    g = beta**2
    assert riemann_sum(g, beta, "left").item() == pytest.approx(0.125)
    assert riemann_sum(g, beta, "right").item() == pytest.approx(0.625)
    assert riemann_sum(g, beta, "trapz").item() == pytest.approx(0.375)
    per_point = torch.stack([g, 2 * g], 1)  # [K + 1, B]
    torch.testing.assert_close(riemann_sum(per_point, beta), torch.tensor([0.125, 0.25]).double())


def test_a_fixed_schedule_never_moves():
    schedule = Fixed(partition(4, "log", 0.1))
    state = schedule.init()
    assert schedule.update(state, torch.randn(10, 3)) is state
    assert schedule.state_dict(state) is None and not schedule.adaptive


def test_the_moments_schedule_moves_every_few_updates_to_the_moments_partition():
    schedule = Moments(K=3, beta1=0.1, every=3)
    state = schedule.init()
    torch.testing.assert_close(state.partition, partition(3, "log", 0.1))
    g = torch.Generator().manual_seed(0)
    for count in (1, 2):
        state = schedule.update(state, torch.randn(50, 4, generator=g))
        assert state.count == count and torch.equal(state.partition, partition(3, "log", 0.1))
    log_weight = 3 * torch.randn(50, 4, generator=g)
    state = schedule.update(state, log_weight)
    assert state.count == 0
    torch.testing.assert_close(state.partition, moments(log_weight, 3), rtol=0, atol=0)
    restored = schedule.load_state_dict(state.partition, schedule.state_dict(state))
    assert restored.count == state.count and torch.equal(restored.partition, state.partition)
    # a checkpoint written before the schedule had a state: tests/test_runs.py (its migration)


@pytest.mark.parametrize(
    ("name", "kind"), [("log", Fixed), ("linear", Fixed), ("moments", Moments)]
)
def test_schedules_by_name(name, kind):
    assert isinstance(schedule(name, 4, 0.1, 10), kind)
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        schedule("cosine", 4)
    with pytest.raises(ValueError, match="adapt_every must be an integer ≥ 1, got 0"):
        Moments(4, every=0)


def test_beta1_may_be_a_numpy_or_torch_scalar():
    """Like K, beta1 given as np.float32 or a 0-d tensor is the number it holds (issue #15's
    class of scalar types), not 'must lie strictly between 0 and 1'."""
    import numpy as np

    expected = partition(4, "log", 0.25)
    assert torch.allclose(partition(4, "log", np.float32(0.25)), expected)
    assert torch.allclose(partition(4, "log", torch.tensor(0.25)), expected)
    with pytest.raises(ValueError, match="got True"):
        partition(4, "log", True)
