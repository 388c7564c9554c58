"""The GP-bandit schedule: it finds the best partition of a known reward, follows a reward that
moves, proposes valid partitions, and a trained run resumes to the uninterrupted result."""

import numpy as np
import pytest
import torch

import tvo
from tvo.bandit import GPBandit, GPBanditSchedule


def play(bandit: GPBandit, rounds: int, best, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """Play ``rounds`` rounds of ``−‖u − best(t)‖² + noise``; the arms, ``[rounds, K−1]``."""
    rng = np.random.default_rng(seed)
    arms = []
    for t in range(rounds):
        partition = bandit.propose()
        u = bandit.to_unit(partition)
        bandit.observe(partition, -((u - best(t)) ** 2).sum() + noise * rng.standard_normal())
        arms.append(u)
    return np.asarray(arms)


def test_the_bandit_finds_the_best_partition_of_a_known_reward():
    """K = 3 (two inner points), optimum u* = (0.3, 0.7), noise sd 0.02. After 30 rounds the
    last 5 arms lie within 0.1 of u* on average; random arms (a bandit that never stops
    exploring) lie about 0.3 away, so the check fails without the GP."""
    target = np.array([0.3, 0.7])
    found = play(GPBandit(3, seed=1), 30, lambda t: target)
    random = play(GPBandit(3, seed=1, initial=10**9), 30, lambda t: target)
    distance = np.linalg.norm(found[-5:] - target, axis=1).mean()
    random_distance = np.linalg.norm(random[-5:] - target, axis=1).mean()
    assert distance < 0.1, f"GP-UCB ended {distance:.3f} from the optimum"
    assert random_distance > 0.2, f"random arms ended {random_distance:.3f} from the optimum"


def test_the_bandit_leaves_an_optimum_that_has_moved():
    """The optimum jumps from (0.2, 0.4) to (0.6, 0.9) at round 30 (the model learns, rewards
    drift). Before the jump the arms sit within 0.1 of the first optimum (median of rounds
    20–29); in rounds 45–59 their median distance to it exceeds 0.5 (the two optima are 0.64
    apart) and to the new one is below 0.35: the rewards of old rounds do not pin the bandit."""
    before, after = np.array([0.2, 0.4]), np.array([0.6, 0.9])
    arms = play(GPBandit(3, seed=2), 60, lambda t: before if t < 30 else after)
    assert np.median(np.linalg.norm(arms[20:30] - before, axis=1)) < 0.1
    assert np.median(np.linalg.norm(arms[45:] - before, axis=1)) > 0.5
    assert np.median(np.linalg.norm(arms[45:] - after, axis=1)) < 0.35


def test_proposals_are_valid_partitions_inside_the_search_range():
    bandit = GPBandit(6, seed=0, initial=3)
    arms = play(bandit, 12, lambda t: np.linspace(0.1, 0.9, 5))
    assert arms.shape == (12, 5)
    beta = bandit.propose()
    assert beta[0] == 0 and beta[-1] == 1 and bool((beta[1:] > beta[:-1]).all())
    assert bandit.beta_min <= beta[1] and beta[-2] <= bandit.beta_max
    torch.testing.assert_close(bandit.to_partition(bandit.to_unit(beta)), beta)


def test_a_bandit_restored_from_its_state_proposes_the_same_partition():
    bandit = GPBandit(4, seed=3, initial=4)
    play(bandit, 9, lambda t: np.array([0.5, 0.6, 0.7]))
    copy = GPBandit(4, seed=3, initial=4)
    copy.load_state_dict(bandit.state_dict())
    assert torch.equal(copy.propose(), bandit.propose())


def test_the_round_reward_is_the_improvement_of_the_log_likelihood_estimate():
    first = tvo.partition(3, "log", 0.1)
    schedule = GPBanditSchedule(3, first, every=2, seed=0)  # rounds of two steps
    constant = lambda value: torch.full((4, 2), value)  # noqa: E731  L̂ of equal weights
    state = schedule.init()
    assert torch.equal(state.partition, first)
    state = schedule.update(state, constant(-10.0))
    assert torch.equal(state.partition, first)  # mid-round: no move
    state = schedule.update(state, constant(-8.0))  # round 1: mean L̂ −9, no reward
    second = state.partition
    assert list(state.rewards) == [] and not torch.equal(second, first)
    state = schedule.update(state, constant(-5.0))
    state = schedule.update(state, constant(-5.0))  # round 2 (with `second`): mean −5, +4
    assert list(state.rewards) == [pytest.approx(4.0)]
    arm = schedule.bandit.to_unit(second).tolist()
    assert [list(a) for a in state.arms] == [pytest.approx(arm)]
