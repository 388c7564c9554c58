"""Models of your own by name: ``module:Name`` (imported with the current folder on the path,
or from beside the file a run recorded) and ``file.py:Name``, with their keyword arguments."""

import sys
import textwrap

import pytest
import torch

from tvo.models import ModelError, check_arguments, create, model_class, source_of

MODULE = '''
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal
import tvo


class MixBern(tvo.Model):
    """A mixture of Bernoullis: one categorical latent (as {components} one-hot units)."""

    def __init__(self, pixels, components=3, data_mean=None):
        super().__init__()
        self.components, self.saw_mean = components, data_mean is not None
        self.prior_logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(torch.randn(components, pixels))
        self.encoder = nn.Linear(pixels, components)

    def prior(self):
        return torch.distributions.OneHotCategorical(logits=self.prior_logits)

    def likelihood(self, z):
        return Independent(Bernoulli(logits=z @ self.means), 1)

    def guide(self, x):
        return torch.distributions.OneHotCategorical(logits=self.encoder(x))


def make_gaussian(pixels, latents=2):
    from tvo.models.toy import LinearGaussian

    return LinearGaussian(latent_dim=latents, obs_dim=pixels)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``mymodels.py`` in a folder of its own, which is the working directory."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "mymodels.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.chdir(folder)
    yield folder
    sys.modules.pop("mymodels", None)


def test_a_model_by_module_and_name_gets_the_datas_size_and_mean(user_module):
    model = create("mymodels:MixBern", pixels=6, data_mean=torch.full((6,), 0.5),
                   model_args={"components": 4})  # fmt: skip
    assert model.components == 4 and model.means.shape == (4, 6) and model.saw_mean
    factory = create("mymodels:make_gaussian", pixels=5)  # a factory function works too
    assert factory.obs_dim == 5 and factory.has_rsample
    assert source_of("mymodels:MixBern") == str(user_module / "mymodels.py")


def test_a_model_by_file_path(user_module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = create(f"{user_module}/mymodels.py:MixBern", pixels=3)
    assert model.means.shape == (3, 3)


def test_a_run_finds_its_model_beside_the_recorded_file(user_module, tmp_path, monkeypatch):
    source = source_of("mymodels:MixBern")
    sys.modules.pop("mymodels")
    monkeypatch.chdir(tmp_path)  # another folder: not importable by name from here
    with pytest.raises(ModelError, match=r"cannot import module 'mymodels'.*PYTHONPATH"):
        model_class("mymodels:MixBern")
    assert model_class("mymodels:MixBern", source).__name__ == "MixBern"
    sys.modules.pop("mymodels")
    (user_module / "mymodels.py").unlink()  # the file is gone too: the error names it
    with pytest.raises(ModelError, match=r"this run's model was imported from .*mymodels.py"):
        model_class("mymodels:MixBern", source)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("mymodels:MixBern", {"colours": 3}, r"MixBern\(pixels, components=3, data_mean=None\) "
                                             r"cannot be called with.*colours"),
        ("mymodels:Missing", None, r"mymodels has no 'Missing' \(it has: .*MixBern"),
        ("mymodels", None, r"unknown model 'mymodels'.*package.module:Name or path/to/file.py"),
        ("nowhere.py:X", None, r"nowhere.py: no such file"),
        ("linear_1", {"latent": 3}, r"SBN\(.*\) cannot be called with.*latent"),
        ("linear_9", None, r"unknown model 'linear_9'.*package.module:Name"),
    ],
)  # fmt: skip
def test_bad_models_and_arguments_are_named(user_module, name, args, message):
    with pytest.raises(ModelError, match=message):
        check_arguments(name, args)


def test_a_registered_model_takes_keyword_arguments():
    model = create("linear_1", pixels=6, model_args={"latents": (3,)})
    assert model.latents == (3,) and model.pixels == 6
