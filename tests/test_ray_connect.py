"""Issue #25, item 9: ``tvo sweep --executor ray`` fails fast and clearly, before any folder is
created, for an address that is not a Ray head and for tasks that no node can hold."""

import socket

import pytest

from tvo.cli import main
from tvo.sweep import ray as ray_executor

from tests.helpers import write_sweep

pytest.importorskip("ray")


@pytest.fixture
def sweep_file(tmp_path, tiny_data):
    return write_sweep(tmp_path, tiny_data, '[[experiment]]\nname = "a"\n')


@pytest.mark.parametrize(
    ("address", "message"),
    [("garbage", "expected auto or HOST:PORT"), ("127.0.0.1:1", "nothing answers there"),
     ("nohost.invalid:6379", "unknown host 'nohost.invalid'"),
     ("127.0.0.1:99999", "expected auto or HOST:PORT")],
)  # fmt: skip
def test_an_address_that_is_no_ray_head_exits_2_at_once(sweep_file, tmp_path, address, message,
                                                        capsys):  # fmt: skip
    out = tmp_path / "runs"
    assert main(["sweep", str(sweep_file), "--executor", "ray", "--address", address,
                 "--out", str(out)]) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert error.startswith("tvo sweep: error: --address") and message in error, error
    assert not out.exists()


def test_a_port_that_answers_but_is_not_ray_is_refused_after_the_probe(
    sweep_file, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(ray_executor, "PROBE_TIMEOUT", 4.0)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        out = tmp_path / "runs"
        assert main(["sweep", str(sweep_file), "--executor", "ray", "--address", address,
                     "--out", str(out)]) == 2  # fmt: skip
    assert "Ray did not connect within 4 s" in capsys.readouterr().err
    assert not out.exists()


def test_tasks_that_no_node_can_hold_are_refused_even_with_jobs(sweep_file, tmp_path,
                                                                ray_cluster, capsys):  # fmt: skip
    out = tmp_path / "runs"
    assert main(["sweep", str(sweep_file), "--executor", "ray", "--gpus-per-task", "1",
                 "--jobs", "1", "--out", str(out)]) == 2  # fmt: skip
    assert "more than the Ray cluster has" in capsys.readouterr().err
    assert not out.exists()
