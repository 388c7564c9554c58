"""Every data test writes its cache into its own folder."""

import pytest


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TVO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
