"""Building a run's objects from its settings."""

from tvo.build import build as setup


def test_setup_uses_the_datas_size(tiny_data):
    from tvo.config import resolve

    prepared = setup(resolve(data=tiny_data, batch_size=8))
    assert prepared.dataset.pixels == 16 and prepared.model.pixels == 16
