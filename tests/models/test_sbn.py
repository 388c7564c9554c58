"""Sigmoid belief networks: normalised, ±1 inputs, particles, the output bias, the
likelihood's two forms and the hand-written Bernoulli gradient.
"""

import pytest
import torch

from tvo.evaluate import exact_log_weights
from tvo.models import SBN, GaussianVAE
from tvo.models.toy import binary_grid

TINY_SBNS = {
    "linear_2": lambda: SBN((2, 3), pixels=4),
    "non_linear": lambda: SBN((3,), pixels=4, hidden=(5, 5)),
}


@pytest.mark.parametrize("make", TINY_SBNS.values(), ids=TINY_SBNS.keys())
def test_tiny_sbn_is_normalised(make):
    torch.manual_seed(0)
    model = make().double()
    for p in model.parameters():  # away from the zero initialisation
        torch.nn.init.normal_(p)
    xs = binary_grid(4).double()  # every x
    log_p, log_q = exact_log_weights(model, xs)  # [2^latents, 16]
    torch.testing.assert_close(torch.logsumexp(log_q, 0), torch.zeros(16, dtype=torch.float64))
    total = torch.logsumexp(log_p.flatten(), 0)
    torch.testing.assert_close(total, torch.zeros((), dtype=torch.float64))


def test_sbn_maps_binary_inputs_to_plus_minus_one():
    torch.manual_seed(1)
    model = SBN((3,), pixels=4)
    for p in model.parameters():
        torch.nn.init.normal_(p)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    z = (torch.tensor([[[0.0, 1.0, 1.0]]]),)
    decoder, encoder = model.decoders[0][0], model.encoders[0][0]
    sz, sx = 2 * z[0] - 1, 2 * x - 1
    expected_p = torch.distributions.Bernoulli(logits=model.prior_logits).log_prob(z[0]).sum(
        -1
    ) + torch.distributions.Bernoulli(logits=sz @ decoder.weight.T + decoder.bias).log_prob(x).sum(
        -1
    )
    expected_q = (
        torch.distributions.Bernoulli(logits=sx @ encoder.weight.T + encoder.bias)
        .log_prob(z[0])
        .sum(-1)
    )
    torch.testing.assert_close(model.log_joint(x, z), expected_p)
    torch.testing.assert_close(model.log_guide(x, z), expected_q)


def test_sbn_particles_and_samples():
    model = SBN((6, 5, 4), pixels=7)
    x = torch.bernoulli(torch.full((3, 7), 0.3))
    z, log_q = model.sample_guide(x, 11)
    assert [v.shape for v in z] == [(11, 3, 6), (11, 3, 5), (11, 3, 4)]
    torch.testing.assert_close(log_q, model.log_guide(x, z))
    assert model.log_joint(x, z).shape == (11, 3)
    z_model, x_model = model.sample(9)
    assert [v.shape for v in z_model] == [(9, 6), (9, 5), (9, 4)] and x_model.shape == (9, 7)
    assert set(x_model.unique().tolist()) <= {0.0, 1.0}


def test_output_bias_starts_at_the_clamped_logit_of_the_data_mean():
    mean = torch.tensor([0.0, 0.5, 0.9, 1.0])
    expected = torch.logit(torch.tensor([1e-4, 0.5, 0.9, 1 - 1e-4]))
    assert torch.allclose(SBN((3,), 4, data_mean=mean).decoders[0][-1].bias, expected)
    assert torch.allclose(GaussianVAE(2, 4, (5,), data_mean=mean).decoder[-1].bias, expected)
    with pytest.raises(ValueError, match="data_mean has 3 values but the model has 4 pixels"):
        SBN((3,), 4, data_mean=torch.zeros(3))


@pytest.mark.parametrize("hidden", [(), (5, 5)])
def test_sbn_likelihood_without_gradients_equals_the_direct_form(hidden):
    torch.manual_seed(3)
    model = SBN((6,), pixels=9, hidden=hidden).double()
    for p in model.parameters():
        torch.nn.init.normal_(p)
    x = torch.bernoulli(torch.full((4, 9), 0.4, dtype=torch.float64))
    z1 = torch.bernoulli(torch.full((7, 4, 6), 0.5, dtype=torch.float64))
    direct = model.log_likelihood(x, z1)  # gradients on: the direct form
    with torch.no_grad():
        factored = model.log_likelihood(x, z1)
    expected = torch.distributions.Bernoulli(logits=model.decoders[0](2 * z1 - 1)).log_prob(x)
    torch.testing.assert_close(direct, expected.sum(-1))
    torch.testing.assert_close(factored, direct.detach())


@pytest.mark.parametrize(
    "logit_shape, value_shape",
    [((7, 4, 9), (4, 9)), ((4, 9), (7, 4, 9)), ((9,), (7, 4, 9)), ((4, 9), (4, 9))],
    ids=["pixels", "guide", "prior", "same"],
)
def test_bernoulli_log_prob_and_its_hand_written_gradient(logit_shape, value_shape):
    # The value against torch.distributions; both gradients by finite differences (float64),
    # with the broadcasting of each use in the SBN (logits of every particle against the data's
    # pixels, the guide's per-image logits and the prior's against every particle).
    from tvo.models.sbn import bernoulli_log_prob

    torch.manual_seed(4)
    logits = (5 * torch.randn(logit_shape, dtype=torch.float64)).requires_grad_()
    value = torch.bernoulli(torch.full(value_shape, 0.4, dtype=torch.float64)).requires_grad_()
    expected = torch.distributions.Bernoulli(logits=logits, validate_args=False).log_prob(value)
    torch.testing.assert_close(bernoulli_log_prob(logits, value), expected.sum(-1))
    assert torch.autograd.gradcheck(bernoulli_log_prob, (logits, value))


@pytest.mark.parametrize("hidden", [(), (5, 5)], ids=["linear", "non_linear"])
def test_the_reference_encoder_input_is_the_same_family_as_ours(hidden):
    """``encoder_input="reference"`` feeds ``u = (x − m + 1)/2 = (2x − 1)/4 + (3/4 − m/2)`` to
    the guide's first affine layer ``W u + b``; the signed model with ``W/4`` and
    ``b + W (3/4 − m/2)`` is the same ``q(z | x)``: equal ``log q`` for every ``x`` and ``z``.
    Without the transformation the two differ (the check can fail)."""
    torch.manual_seed(0)
    mean = torch.rand(6)
    reference = SBN((3, 2), pixels=6, hidden=hidden, data_mean=mean,
                    encoder_input="reference").double()  # fmt: skip
    for p in reference.parameters():
        torch.nn.init.normal_(p)
    signed = SBN((3, 2), pixels=6, hidden=hidden, data_mean=mean).double()
    signed.load_state_dict({k: v for k, v in reference.state_dict().items() if k != "input_mean"})
    x = binary_grid(6).double()  # every x
    z, _ = reference.sample_guide(x, 4)
    assert not torch.allclose(signed.log_guide(x, z), reference.log_guide(x, z))
    first = signed.encoders[0][0]
    with torch.no_grad():
        first.bias += first.weight @ (0.75 - mean.double() / 2)
        first.weight /= 4
    torch.testing.assert_close(signed.log_guide(x, z), reference.log_guide(x, z))
    torch.testing.assert_close(signed.log_joint(x, z), reference.log_joint(x, z))  # same p


def test_the_encoder_input_option_is_checked():
    with pytest.raises(ValueError, match="unknown encoder_input 'centred': expected one of"):
        SBN((3,), pixels=4, encoder_input="centred")
    with pytest.raises(ValueError, match="needs data_mean"):
        SBN((3,), pixels=4, encoder_input="reference")
    with pytest.raises(ValueError, match="data_mean has 5 values but the model has 4 pixels"):
        SBN((3,), pixels=4, data_mean=torch.rand(5), encoder_input="reference")
    assert "input_mean" not in SBN((3,), pixels=4).state_dict()  # old checkpoints still load
