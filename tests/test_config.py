"""Settings: precedence, presets, and what each objective takes."""

import pytest

from tvo.config import ConfigError, resolve
from tvo.objectives import TVO, TVOReparam


def test_config_precedence_and_presets(tmp_path):
    from tvo.config import resolve

    file = tmp_path / "run.toml"
    file.write_text('objective = "vimco"\nparticles = 50\nlr = 0.01\n')
    config = resolve("sbn", file, lr=0.002)
    assert (config.objective, config.particles, config.lr) == ("vimco", 50, 0.002)
    # vimco has no partition, so the preset's TVO settings do not apply to it
    assert config.batch_size == 24 and config.beta1 is None and config.partitions is None
    assert resolve("sbn", particles=50).beta1 == 0.3  # the paper's β1 for S = 50
    assert resolve("sbn", particles=5).beta1 == 0.05
    continuous = resolve("continuous")
    assert (continuous.model, continuous.batch_size, continuous.lr, continuous.partitions) == (
        "gaussian", 1000, 1e-3, 5)  # fmt: skip
    assert resolve(epochs=2.0).steps is None


def test_compile_refuses_a_moving_partition():
    with pytest.raises(ConfigError, match="needs a fixed partition, but schedule 'moments'"):
        resolve(schedule="moments", compile=True)


def test_gp_bandit_needs_two_intervals():
    with pytest.raises(ConfigError, match=r"gp-bandit schedule needs partitions \(K\) ≥ 2, got 1"):
        resolve(schedule="gp-bandit", partitions=1)
    with pytest.raises(ValueError, match="needs K ≥ 2 intervals, got 1"):
        TVO(K=1, schedule="gp-bandit")


# --- each objective declares its settings --------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"objective": "vimco", "partitions": 5}, "partitions does not apply to objective 'vimco'"),
        ({"objective": "vimco", "schedule": "moments"}, "schedule does not apply to objective"),
        ({"objective": "rws", "schedule": "gp-bandit"}, "schedule does not apply to objective"),
        ({"objective": "vimco", "integration": "right"}, "integration does not apply to objective"),
        ({"objective": "elbo", "beta1": 0.3}, "beta1 does not apply to objective 'elbo'"),
        ({"schedule": "linear", "beta1": 0.5}, "beta1 does not apply to schedule 'linear'"),
        ({"schedule": "log", "adapt_every": 50}, "adapt_every does not apply to schedule 'log'"),
        ({"schedule": "simpson"}, "unknown schedule 'simpson'"),
    ],
)  # fmt: skip
def test_a_setting_the_objective_does_not_use_is_an_error(settings, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        resolve(**settings)
    file = tmp_path / "run.toml"  # the same in a config file
    file.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items()))
    with pytest.raises(ConfigError, match=message):
        resolve(file=file)


def test_settings_that_apply_get_the_objectives_defaults_and_the_others_none():
    config = resolve(objective="vimco")
    assert (config.partitions, config.schedule, config.beta1, config.integration,
            config.adapt_every) == (None, None, None, None, None)  # fmt: skip
    assert (resolve().partitions, resolve().beta1, resolve().adapt_every) == (5, 0.1, None)
    linear = resolve(schedule="linear")
    assert linear.beta1 is None and linear.partitions == 5
    adaptive = resolve(schedule="moments")
    assert (adaptive.beta1, adaptive.adapt_every) == (0.1, 100)


def test_a_preset_fills_in_only_what_applies():
    config = resolve("sbn", objective="vimco")
    assert (config.batch_size, config.lr, config.partitions, config.beta1) == (24, 3e-4, None, None)
    linear = resolve("sbn", schedule="linear")
    assert (linear.partitions, linear.beta1) == (2, None)


def test_a_pathwise_objective_asks_the_models_has_rsample():
    with pytest.raises(ConfigError, match=r"'dreg' is pathwise .* 'linear_1' has discrete latents"):
        resolve(objective="dreg")
    assert resolve(objective="dreg", model="gaussian").objective == "dreg"

    class Discrete:
        has_rsample = False

    class Continuous:
        has_rsample = True

    assert "no reparameterisable latents" in TVOReparam.requirement_error(Discrete)
    assert TVOReparam.requirement_error(Continuous) is None
    assert TVO.requirement_error(Discrete) is None
