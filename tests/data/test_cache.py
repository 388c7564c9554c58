"""The cache: a corrupt entry is rebuilt, an interrupted write leaves the old one."""

import warnings

import pytest

from tvo.data import cache as cache_module
from tvo.data import load


def test_corrupt_or_truncated_cache_is_rebuilt(fake_wheel, private_cache):
    original = load("binarized-mnist")
    entry = private_cache / "binarized-mnist.npz"
    raw = bytearray(entry.read_bytes())
    position = len(raw) // 2
    raw[position] ^= 0xFF  # flip bits inside the array data
    entry.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="binarized-mnist.npz (fails its checksum|is unreadable)"):
        rebuilt = load("binarized-mnist")
    assert rebuilt.checksum == original.checksum
    entry.write_bytes(entry.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="is unreadable; rebuilding"):
        assert load("binarized-mnist").checksum == original.checksum
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good entry loads without a word
        load("binarized-mnist")


def test_an_interrupted_write_leaves_the_old_entry_intact(fake_wheel, private_cache, monkeypatch):
    load("binarized-mnist")
    entry = private_cache / "binarized-mnist.npz"
    before = entry.read_bytes()

    def interrupted(handle, **arrays):
        handle.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache_module.write_atomic(entry, lambda tmp: interrupted(open(tmp, "wb")))
    assert entry.read_bytes() == before
    assert sorted(p.name for p in private_cache.iterdir()) == sorted(
        ["binarized-mnist.npz", "mnist-grey.npz"]
    )
