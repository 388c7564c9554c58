import math

import pytest
import torch

import tvo
from tvo.partitions import partition


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


def test_tvo_objective_validates_its_settings():
    with pytest.raises(ValueError, match="integer ≥ 1, got 0"):
        tvo.TVO(K=0)
    with pytest.raises(ValueError, match="unknown integration 'middle'"):
        tvo.TVO(K=2, integration="middle")
