"""Issue #25, item 11: the library's estimators refuse data outside the model's observation
support (as the command line and ``tvo.fit`` do), unless told ``validate=False``; the training
step does not check each batch."""

import pytest
import torch

import tvo
from tvo.models import SBN, LinearGaussian


@pytest.fixture
def sbn_and_x():
    torch.manual_seed(0)
    model = SBN(pixels=8, latents=(3,))
    return model, (torch.rand(5, 8) < 0.5).float()


@pytest.mark.parametrize("spoil", [lambda x: -x - 0.5, lambda x: 3 * x, lambda x: x + torch.nan])
@pytest.mark.parametrize(
    "call",
    [lambda m, x: tvo.estimate(m, x, 4), lambda m, x: tvo.ais(m, x, 3, 2),
     lambda m, x: tvo.TVO(K=2)(m, x, 4), lambda m, x: tvo.VIMCO()(m, x, 4)],
)  # fmt: skip
def test_estimators_refuse_data_outside_a_bernoulli_likelihood(sbn_and_x, spoil, call):
    model, x = sbn_and_x
    with pytest.raises(ValueError, match=r"outside what SBN observes: it needs values in \[0, 1\]"):
        call(model, spoil(x))
    # The same data pass with validate=False (what the training step does), and good data pass.
    assert call(model, x) is not None


def test_validate_false_skips_the_check_and_grey_levels_are_in_the_support(sbn_and_x):
    model, x = sbn_and_x
    assert torch.isfinite(tvo.estimate(model, 3 * x, 4, validate=False).log_px).all()
    assert torch.isfinite(tvo.ais(model, 3 * x, 3, 2, validate=False).log_px).all()
    assert torch.isfinite(tvo.TVO(K=2)(model, 3 * x, 4, validate=False).loss)
    assert torch.isfinite(tvo.estimate(model, 0.5 * x + 0.25, 4).log_px).all()


def test_a_real_likelihood_takes_any_real_values_but_not_nan():
    model = LinearGaussian(2, 3)
    x = 10 * torch.randn(4, 3)
    assert torch.isfinite(tvo.estimate(model, x, 4).log_px).all()
    with pytest.raises(ValueError, match=r"has nan"):
        tvo.estimate(model, torch.full((4, 3), torch.nan), 4)
