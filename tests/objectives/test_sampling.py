"""The sampling modes: which parameters each tensor's gradient reaches, and their shapes."""

import torch

from tvo.models.toy import DiscreteToy, LinearGaussian
from tvo.objectives.sampling import SAMPLING


def reaches(tensor, params) -> list[bool]:
    """For each parameter, whether ``tensor``'s gradient reaches it."""
    grads = torch.autograd.grad(tensor.sum(), params, allow_unused=True, retain_graph=True)
    return [g is not None and bool(g.abs().sum() > 0) for g in grads]


def model_and_parameters():
    torch.manual_seed(0)
    model = LinearGaussian(2, 3).double()
    theta = [model.weight, model.bias, model.log_sigma]
    phi = [model.encoder_weight, model.encoder_bias, model.encoder_log_scale]
    return model, model.sample(4)[1], theta, phi


def test_score_particles_are_detached():
    model, x, theta, phi = model_and_parameters()
    log_p, log_q = SAMPLING["score"].draw(model, x, 5)
    assert log_p.shape == log_q.shape == (5, 4)
    assert reaches(log_p, theta + phi) == [True] * 3 + [False] * 3
    assert reaches(log_q, theta + phi) == [False] * 3 + [True] * 3


def test_pathwise_particles_carry_the_guides_gradient_into_log_p():
    model, x, theta, phi = model_and_parameters()
    log_p, _ = SAMPLING["pathwise"].draw(model, x, 5)
    assert reaches(log_p, theta + phi) == [True] * 6


def test_doubly_reparameterized_terms_reach_phi_only_through_the_particles():
    """``log p(x, sg(z))`` reaches θ alone; ``ℓ`` with parameters stopped reaches φ alone, through
    ``z_φ(ε)`` (so not the guide's scale's score term: its direct gradient is stopped)."""
    model, x, theta, phi = model_and_parameters()
    log_p_theta, path = SAMPLING["doubly-reparameterized"].draw(model, x, 5)
    assert reaches(log_p_theta, theta + phi) == [True] * 3 + [False] * 3
    assert reaches(path, theta + phi) == [False] * 3 + [True] * 3
    torch.manual_seed(7)
    _, path = SAMPLING["doubly-reparameterized"].draw(model, x, 5)
    grads = torch.autograd.grad(path.sum(), phi)  # differs from the full pathwise ℓ's gradient
    torch.manual_seed(7)
    log_p, log_q = SAMPLING["pathwise"].draw(model, x, 5)
    full = torch.autograd.grad((log_p - log_q).sum(), phi)
    assert any(not torch.allclose(a, b) for a, b in zip(grads, full))


def test_model_samples_give_the_sleep_term_of_s_times_b_samples():
    torch.manual_seed(1)
    model = DiscreteToy(3, 4).double()
    x = model.sample(6)[1]
    log_p, log_q, log_q_sleep = SAMPLING["model-samples"].draw(model, x, 5)
    assert log_p.shape == log_q.shape == log_q_sleep.shape == (5, 6)
    theta = [model.prior_logits, model.decoder_weight, model.decoder_bias]
    phi = [model.encoder_weight, model.encoder_bias]
    assert reaches(log_q_sleep, theta + phi) == [False] * 3 + [True] * 2
