"""The model protocol: shapes, and what a model without reparameterisable latents refuses."""

import pytest
import torch

from tvo.models import GenerativeModel
from tvo.models.toy import DiscreteToy


def test_shapes_of_the_protocol():
    model = DiscreteToy(3, 4)
    assert isinstance(model, GenerativeModel)
    x = model.sample(5)[1]
    z, log_q = model.sample_guide(x, 7)
    assert z.shape == (7, 5, 3) and log_q.shape == (7, 5)
    assert model.log_joint(x, z).shape == (7, 5)
    assert not z.requires_grad
    z_model, x_model = model.sample(9)
    assert z_model.shape == (9, 3) and x_model.shape == (9, 4)
    assert model.log_guide(x_model, z_model).shape == (9,)


def test_discrete_latents_cannot_be_reparameterised():
    model = DiscreteToy()
    with pytest.raises(ValueError, match="DiscreteToy has no reparameterisable latents"):
        model.sample_guide(torch.zeros(2, 4), 3, reparameterize=True)
