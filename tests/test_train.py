"""The training loop: adaptive schedules move, log and checkpoint their partition, and every
run stopped part-way resumes to the uninterrupted result.
"""

import torch

import tvo
from tvo.config import resolve
from tvo.runs import Run
from tvo.train import Single, train

from tests.helpers import needs_compiler, train_straight_and_resumed


def test_training_with_moments_moves_logs_and_checkpoints_the_partition(tiny_data, tmp_path):
    config = resolve(data=tiny_data, schedule="moments", partitions=4, adapt_every=5, steps=40,
                     batch_size=8, eval_every=20, eval_images=8, eval_particles=20, log_every=10,
                     checkpoint_every=20)  # fmt: skip
    # the resumed run was interrupted after step 17
    straight, resumed = train_straight_and_resumed(config, tmp_path, stop_after=17)
    rows = straight.read_metrics()
    logged = [row["partition"] for row in rows]
    start = " ".join(f"{b:.6g}" for b in tvo.partition(4, "log", 0.1).tolist())
    assert all(len(p.split()) == 5 for p in logged) and logged[0] != start
    state = straight.load_checkpoint()
    assert " ".join(f"{b:.6g}" for b in state["partition"].tolist()) == logged[-1]
    # Interrupted and resumed, it ends where the uninterrupted run does.
    torch.testing.assert_close(resumed.load_checkpoint()["partition"], state["partition"],
                               rtol=0, atol=0)  # fmt: skip
    for name, tensor in state["model"].items():
        assert torch.equal(tensor, resumed.load_checkpoint()["model"][name]), name


def test_training_with_the_bandit_moves_the_partition_and_resumes_exactly(tiny_data, tmp_path):
    config = resolve(data=tiny_data, schedule="gp-bandit", partitions=3, adapt_every=4, steps=48,
                     batch_size=8, eval_every=24, eval_images=8, eval_particles=20, log_every=4,
                     checkpoint_every=24)  # fmt: skip
    # stopped at step 17, inside a round: its running sum is saved
    straight, resumed = train_straight_and_resumed(config, tmp_path, stop_after=17)
    logged = [row["partition"] for row in straight.read_metrics()]
    assert len(set(logged)) > 5, "the partition should change from round to round"
    state = straight.load_checkpoint()
    assert len(state["schedule"]["bandit"]["rewards"]) == 48 // 4 - 1
    again = resumed.load_checkpoint()
    assert again["schedule"]["bandit"] == state["schedule"]["bandit"]
    assert torch.equal(again["partition"], state["partition"])
    for name, tensor in state["model"].items():
        assert torch.equal(tensor, again["model"][name]), name


@needs_compiler
def test_compiled_run_resumes_exactly(tiny_data, tmp_path):
    config = resolve(data=tiny_data, steps=30, eval_every=15, eval_images=8, eval_particles=20,
                     log_every=5, checkpoint_every=15, batch_size=8, compile=True)  # fmt: skip
    straight, resumed = train_straight_and_resumed(config, tmp_path, stop_after=17)
    final = [run.load_checkpoint()["model"] for run in (straight, resumed)]
    for name, tensor in final[0].items():
        assert torch.equal(tensor, final[1][name]), name


def setup_config(tiny_data):
    from tvo.config import resolve

    return resolve(data=tiny_data, steps=60, eval_every=20, eval_images=8, eval_particles=20,
                   log_every=10, checkpoint_every=20, batch_size=8)  # fmt: skip


def test_rows_written_after_the_last_checkpoint_are_not_duplicated(tiny_data, tmp_path):
    run = Run.create(tmp_path / "r", setup_config(tiny_data), overwrite=False)
    train(run, quiet=True, stop_after=33)
    # A killed process may have logged rows after its last checkpoint (step 33): simulate one.
    run.append_metrics([{"step": 40, "seconds": 1.0, "train_objective": -1.0, "skipped": 0}])
    train(run, quiet=True)
    steps = [row["step"] for row in run.read_metrics()]
    assert steps == sorted(set(steps)) == list(range(10, 61, 10))


def test_how_a_run_is_evaluated_does_not_change_what_it_learns(tiny_data, tmp_path):
    """Evaluations draw from generators of their own: evaluating every 5 steps with 50
    particles, or every 20 with 5, ends with the same parameters, bit for bit."""
    finals = []
    for every, particles in ((5, 50), (20, 5)):
        config = resolve(data=tiny_data, steps=20, batch_size=8, eval_every=every, eval_images=8,
                         eval_particles=particles, log_every=5, checkpoint_every=20)  # fmt: skip
        run = Run.create(tmp_path / f"every{every}", config)
        train(run, quiet=True)
        finals.append(run.load_checkpoint()["model"])
    for name, tensor in finals[0].items():
        assert torch.equal(tensor, finals[1][name]), name


# --- numbers that depend on settings, seed and threads only (issue #23) -------------------------

SMALL = dict(steps=30, batch_size=8, eval_every=15, eval_images=8, eval_particles=10,
             log_every=5, checkpoint_every=10)  # fmt: skip


def test_a_resumed_run_trains_with_the_threads_it_recorded(tiny_data, tmp_path, monkeypatch):
    """Trained with one thread (recorded in config.json), stopped, and resumed by ``tvo train
    --resume`` on a machine whose idle cores are now two (``auto`` would say 2): the resumed
    steps run with one thread and end bit for bit where the uninterrupted run does."""
    from tvo import runtime
    from tvo.cli import main

    seen = []
    original = Single.__call__

    def watched(self, state, x):
        seen.append(torch.get_num_threads())
        return original(self, state, x)

    monkeypatch.setattr(Single, "__call__", watched)
    flags = ["--data", tiny_data, "--steps", "30", "--batch-size", "8", "--eval-every", "15",
             "--eval-images", "8", "--eval-particles", "10", "--checkpoint-every", "10",
             "--quiet", "--threads", "1"]  # fmt: skip
    assert main(["train", *flags, "--out", str(tmp_path / "straight")]) == 0
    resumed = tmp_path / "resumed"
    assert main(["train", *flags, "--out", str(resumed)]) == 0
    assert Run.open(resumed).config.threads == 1
    for newest in Run.open(resumed).checkpoints()[-1:]:
        newest.unlink()  # back to step 20
    seen.clear()
    monkeypatch.setattr(runtime, "auto_threads", lambda: 2)
    torch.set_num_threads(2)
    assert main(["train", "--resume", str(resumed), "--quiet"]) == 0
    assert seen == [1] * 10
    a, b = Run.open(tmp_path / "straight").load_checkpoint(), Run.open(resumed).load_checkpoint()
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


def test_threads_given_on_resume_are_used_and_said_to_break_bit_identity(tiny_data, tmp_path,
                                                                          capsys):  # fmt: skip
    config = resolve(data=tiny_data, threads=1, **SMALL)
    run = Run.create(tmp_path / "r", config)
    train(run, quiet=True, stop_after=10)
    summary = train(Run.open(run.path), quiet=True, threads=2)
    assert summary["steps"] == 30
    assert "training with 2 thread(s) where the run recorded 1: the continuation will not be " \
        "bit-identical" in capsys.readouterr().err  # fmt: skip
    assert Run.open(run.path).config.threads == 1  # the record stays


def test_fit_gives_the_same_numbers_whatever_the_process_drew_before(tmp_path):
    """The particles come from the run's own generator: draws of other code before ``tvo.fit``
    (and between its steps: none here, but the same mechanism) change nothing, and the
    process's generator is where it was, as if the run had drawn nothing from it."""
    data = (torch.rand(200, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float()

    def fitted(folder):
        result = tvo.fit("linear_1", data, tvo.TVO(K=3), out=tmp_path / folder, steps=20,
                         batch_size=8, eval_every=10, eval_images=8, eval_particles=10,
                         checkpoint_every=10, quiet=True, device="cpu")  # fmt: skip
        return result.run.load_checkpoint()["model"]

    torch.manual_seed(1)
    first = fitted("a")
    torch.manual_seed(2)
    torch.rand(1000)
    before = torch.get_rng_state()
    second = fitted("b")
    assert torch.equal(torch.get_rng_state(), before)
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


def test_a_step_draws_its_particles_from_the_runs_generator():
    """:func:`tvo.step.drawing_from`: what the block draws comes from (and advances) the given
    generator; the default one is left as it was."""
    from tvo.step import drawing_from

    mine = torch.Generator().manual_seed(5)
    expected = torch.rand(3, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    outside = torch.get_rng_state()
    with drawing_from(mine):
        drawn = torch.rand(3)
    assert torch.equal(drawn, expected)
    assert torch.equal(torch.get_rng_state(), outside)
    follow = torch.Generator().manual_seed(5)
    torch.rand(3, generator=follow)
    assert torch.equal(mine.get_state(), follow.get_state())
