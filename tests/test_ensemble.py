"""Many runs at once (``tvo.ensemble``): each member's loss and gradients are the single run's
on the same parameters and particles (the built-in models' structures and models of the
protocol written here), the stacked Adam is torch's Adam per member, a member that diverges
leaves the others exactly as they would have been, a stopped group resumes bit for bit, and
members reach what single runs reach."""

import statistics
import unittest.mock

import pytest
import torch
from torch import nn

import tvo
from tvo.config import resolve
from tvo.ensemble import GroupStep, StackedAdam, train_group
from tvo.models.sbn import SBN, bernoulli_log_prob, signed
from tvo.models.toy import DiscreteToy, LinearGaussian
from tvo.models.vae import GaussianVAE
from tvo.runs import Run
from tvo.train import train

S, B = 6, 5


class NoisyToy(DiscreteToy):
    """The enumerable toy drawing its particles from a buffer of uniforms (so that a member of a
    group and a single run can be given the same particles)."""

    def __init__(self, seed):
        super().__init__(3, 4, seed=seed)
        self.double()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("noise", torch.rand(S, B, 3, dtype=torch.float64, generator=g))

    def sample_guide(self, x, num_particles, reparameterize=False):
        q = self.guide(x)
        z = (self.noise < q.base_dist.probs).to(x.dtype)
        return z, q.log_prob(z)


class NoisyGaussian(LinearGaussian):
    """The linear-Gaussian toy drawing its particles ``z = μ + σ ε`` from a buffer of ``ε``."""

    def __init__(self, seed):
        super().__init__(2, 4, seed=seed)
        self.double()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("noise", torch.randn(S, B, 2, dtype=torch.float64, generator=g))

    def sample_guide(self, x, num_particles, reparameterize=False):
        q = self.guide(x)
        z = q.mean + q.stddev * self.noise
        z = z if reparameterize else z.detach()
        return z, q.log_prob(z)


class NoisyVAE(GaussianVAE):
    """The built-in Gaussian VAE (small), its particles ``z = μ + σ ε`` from a buffer of ``ε``."""

    def __init__(self, seed):
        torch.manual_seed(seed)
        super().__init__(latents=3, pixels=4, hidden=(5,))
        self.double()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("noise", torch.randn(S, B, 3, dtype=torch.float64, generator=g))

    sample_guide = NoisyGaussian.sample_guide


class NoisySBN(SBN):
    """The built-in two-layer SBN (with tanh hidden layers: ``non_linear``'s structure, small),
    each layer's particles ``u < σ(logits)`` from a buffer of uniforms, as ``SBN.sample_guide``
    draws them."""

    def __init__(self, seed):
        torch.manual_seed(seed)
        super().__init__(latents=(3, 2), pixels=4, hidden=(5,))
        self.double()
        g = torch.Generator().manual_seed(seed)
        for depth, n in enumerate(self.latents):
            noise = torch.rand(S, B, n, dtype=torch.float64, generator=g)
            self.register_buffer(f"noise{depth}", noise)

    def sample_guide(self, x, num_particles, reparameterize=False):
        z, log_q, below = [], 0.0, self.guide_input(x)
        for depth, encoder in enumerate(self.encoders):
            logits = encoder(below)
            sample = (getattr(self, f"noise{depth}") < torch.sigmoid(logits)).to(logits.dtype)
            log_q = log_q + bernoulli_log_prob(logits, sample)
            z.append(sample)
            below = signed(sample)
        return tuple(z), log_q


CASES = [(NoisySBN, tvo.TVO(K=3)), (NoisySBN, tvo.VIMCO()), (NoisySBN, tvo.RWS()),
         (NoisyVAE, tvo.TVOReparam(K=3)), (NoisyVAE, tvo.DReG()),
         (NoisyToy, tvo.TVO(K=3)), (NoisyToy, tvo.ELBO()), (NoisyToy, tvo.VIMCO()),
         (NoisyToy, tvo.RWS()), (NoisyToy, tvo.Reinforce()),
         (NoisyGaussian, tvo.VAE()), (NoisyGaussian, tvo.IWAE()), (NoisyGaussian, tvo.DReG()),
         (NoisyGaussian, tvo.TVOReparam(K=3)), (NoisyGaussian, tvo.TVO(K=3)),
         (NoisyToy, tvo.OVIS(form="asymptotic")), (NoisySBN, tvo.OVIS(form="asymptotic")),
         (NoisyToy, tvo.Renyi(0.5)), (NoisyGaussian, tvo.RenyiPathwise(-1.0))]  # fmt: skip


@pytest.mark.parametrize(("family", "objective"), CASES, ids=lambda v: getattr(v, "name", ""))
def test_each_member_has_the_single_runs_loss_and_gradients(family, objective, device):
    """Three members with their own parameters, data, particles and partitions, against the same
    objective on each member alone: float64, to 1e-10."""
    models = [family(seed).to(device) for seed in (1, 2, 3)]
    x = torch.stack([m.sample(B)[1] for m in models])
    partitions = None
    if objective.schedule is not None:
        partitions = torch.stack([tvo.partition(3, "log", b) for b in (0.05, 0.2, 0.5)])
        partitions = partitions.to(device)
    group = GroupStep(models[0], objective, S, [1e-3] * 3)
    state = group.init(models)
    loss, estimate, _ = group.losses(state.params, state.buffers, x, partitions)
    names = list(state.params)
    grads = torch.autograd.grad(loss.sum(), [state.params[n] for n in names], allow_unused=True)
    for i, model in enumerate(models):
        partition = None if partitions is None else partitions[i]
        alone = objective(model, x[i], S, partition=partition)
        torch.testing.assert_close(loss[i], alone.loss, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(estimate[i], alone.estimate, rtol=1e-10, atol=1e-10)
        expected = torch.autograd.grad(alone.loss, list(model.parameters()), allow_unused=True)
        for name, ours, theirs in zip(names, grads, expected):
            theirs = torch.zeros_like(state.params[name][i]) if theirs is None else theirs
            ours = torch.zeros_like(theirs) if ours is None else ours[i]
            torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10, msg=name)


def test_stacked_adam_is_torchs_adam_for_each_member(device):
    """Three members, learning rates 1e-3, 1e-2 and 0.1, six steps of random gradients (one of
    them not contiguous); member 1 skips step 3 (a non-finite step): it is not updated and its
    Adam step count waits."""
    g = torch.Generator().manual_seed(0)
    shapes = {"w": (3, 4, 2), "b": (3, 2)}
    params = {k: torch.randn(*v, dtype=torch.float64, generator=g).to(device)
              for k, v in shapes.items()}  # fmt: skip
    lrs = [1e-3, 1e-2, 0.1]
    singles = [{k: nn.Parameter(v[i].clone()) for k, v in params.items()} for i in range(3)]
    optimisers = [torch.optim.Adam(list(p.values()), lr=lr, foreach=False)
                  for p, lr in zip(singles, lrs)]  # fmt: skip
    stacked = StackedAdam(lrs)
    moments = stacked.init(params)
    for step in range(6):
        grads = {k: torch.randn(*v, dtype=torch.float64, generator=g).to(device)
                 for k, v in shapes.items()}  # fmt: skip
        # a gradient as autograd gives a product's: a transposed (not contiguous) layout
        grads["w"] = torch.randn(3, 2, 4, dtype=torch.float64, generator=g).to(device).mT
        applied = torch.tensor([True, step != 3, True], device=device)
        stacked.step(params, moments, grads, applied)
        for i in range(3):
            if not applied[i]:
                continue
            for k, p in singles[i].items():
                p.grad = grads[k][i].clone()
            optimisers[i].step()
    for i in range(3):
        for k, p in singles[i].items():
            torch.testing.assert_close(params[k][i], p.detach(), rtol=1e-12, atol=1e-14)
    assert moments.step_count.tolist() == [6, 5, 6]


@pytest.mark.parametrize("objective", [tvo.TVO(K=5), tvo.VIMCO(), tvo.IWAE()],
                         ids=lambda o: o.name)  # fmt: skip
def test_a_group_step_makes_no_host_synchronisation(objective, device):
    """On a GPU, steps of a group of linear_1 SBNs (or Gaussian VAEs for IWAE) with a fixed
    partition run with ``torch.cuda.set_sync_debug_mode("error")``: an operation that waits for
    the device (``.item()``, a data-dependent branch, a copy to the host) raises."""
    if device.type != "cuda":
        pytest.skip("host synchronisation is a GPU property: TVO_TEST_DEVICE=cuda")
    from tvo.models import create

    name = "gaussian" if objective.name == "iwae" else "linear_1"
    models = [create(name, pixels=784).to(device) for _ in range(4)]
    group = GroupStep(models[0], objective, 10, [3e-4] * 4)
    state = group.init(models)
    x = torch.bernoulli(torch.full((4, 24, 784), 0.2, device=device))
    state, _ = group(state, x)  # the first step may set things up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            state, info = group(state, x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert bool(info.finite.all())


GROUP = dict(model="discrete_toy", steps=40, batch_size=8, eval_every=20, eval_images=8,
             eval_particles=20, log_every=10, checkpoint_every=20)  # fmt: skip


def group_runs(tiny_data, folder, lrs=(3e-4, 3e-4, 3e-4), seeds=(0, 1, 2), **settings):
    return [
        Run.create(
            folder / f"m{i}", resolve(data=tiny_data, **{**GROUP, **settings}, seed=seed, lr=lr)
        )
        for i, (seed, lr) in enumerate(zip(seeds, lrs))
    ]


def finals(runs):
    return [Run.open(r.path).load_checkpoint() for r in runs]


@pytest.mark.parametrize("schedule", ["log", "moments"])
def test_a_stopped_group_resumes_to_the_uninterrupted_group(tiny_data, tmp_path, schedule):
    extra = {"schedule": schedule, "adapt_every": 5} if schedule == "moments" else {}
    straight = group_runs(tiny_data, tmp_path / "straight", **extra)
    train_group(straight, quiet=True)
    resumed = group_runs(tiny_data, tmp_path / "resumed", **extra)
    summaries = train_group(resumed, quiet=True, stop_after=17)
    assert [s["steps"] for s in summaries] == [17, 17, 17]
    torch.manual_seed(999)  # the generators come from the checkpoints
    train_group([Run.open(r.path) for r in resumed], quiet=True)
    for a, b in zip(finals(straight), finals(resumed)):
        assert a["step"] == b["step"] == 40
        for name, tensor in a["model"].items():
            assert torch.equal(tensor, b["model"][name]), name
        assert torch.equal(a["partition"], b["partition"])
    for a, b in zip(straight, resumed):
        rows = [
            {k: v for k, v in r.items() if k != "seconds"} for r in Run.open(a.path).read_metrics()
        ]
        again = [
            {k: v for k, v in r.items() if k != "seconds"} for r in Run.open(b.path).read_metrics()
        ]
        assert rows == again


def test_a_member_that_diverges_leaves_the_others_as_they_would_have_been(tiny_data, tmp_path):
    """The same group twice, member 1 with a learning rate of 1e300 the second time: its first
    update overflows, and it leaves the group with a message; members 0 and 2 end bit for bit
    as in the first group."""
    calm = group_runs(tiny_data, tmp_path / "calm")
    train_group(calm, quiet=True)
    wild = group_runs(tiny_data, tmp_path / "wild", lrs=(3e-4, 1e300, 3e-4))
    summaries = train_group(wild, quiet=True)
    assert summaries[1]["stopped"].startswith("step 1: its parameters were no longer finite")
    assert "a learning rate of 1e+300 may be too large" in summaries[1]["stopped"]
    assert summaries[0]["stopped"] is None and summaries[2]["stopped"] is None
    assert not (wild[1].path / "summary.json").exists() and (wild[0].path / "summary.json").exists()
    for i in (0, 2):
        a, b = finals(calm)[i], finals(wild)[i]
        for name, tensor in a["model"].items():
            assert torch.equal(tensor, b["model"][name]), (i, name)


def test_members_are_normal_runs_and_learn_what_single_runs_learn(tiny_data, tmp_path):
    """Three seeds as a group and as three single runs, 300 steps: the group's mean final
    validation log p̂(x) lies within two standard errors of the difference of the two means
    (their seed spread; measured: 0.0 to 0.3 of that over data seeds)."""
    settings = {"steps": 300, "eval_every": 300, "eval_particles": 200, "eval_images": 16}
    members = group_runs(tiny_data, tmp_path / "group", lrs=(3e-3,) * 3, **settings)
    train_group(members, quiet=True)
    singles = group_runs(tiny_data, tmp_path / "single", lrs=(3e-3,) * 3, **settings)
    for run in singles:
        train(run, quiet=True)
    group = [Run.open(r.path).summary()["log_px"] for r in members]
    single = [Run.open(r.path).summary()["log_px"] for r in singles]
    se = (statistics.variance(group) / 3 + statistics.variance(single) / 3) ** 0.5
    assert abs(statistics.fmean(group) - statistics.fmean(single)) < 2 * se + 0.05, (group, single)
    untrained = Run.open(members[0].path).read_metrics()
    assert [r["step"] for r in untrained][-1] == 300
    assert {p.name for p in members[0].path.iterdir()} >= {
        "config.json",
        "metrics.csv",
        "summary.json",
        "checkpoints",
        "events",
    }


ITEM_MODEL = """
from tvo.models.toy import DiscreteToy


class Branchy(DiscreteToy):
    '''The toy with a data-dependent branch (a host read, which vmap cannot batch).'''

    def __init__(self, pixels, data_mean=None):
        super().__init__(3, pixels, seed=0)

    def log_joint(self, x, z):
        log_p = super().log_joint(x, z)
        return log_p if log_p.max().item() < 1e9 else log_p * 0
"""


def test_a_users_model_trains_as_a_group(tiny_data, tmp_path):
    """A mixture of Bernoullis with categorical latents, from a file, through ``tvo sweep
    --group 3``: every member is done, evaluated, and moved away from its initial parameters."""
    import textwrap

    from tvo.cli import main

    from tests.helpers import write_sweep
    from tests.models.test_user import MODULE

    (tmp_path / "mymodels.py").write_text(textwrap.dedent(MODULE))
    model = f"{tmp_path}/mymodels.py:MixBern"
    grid = f'grid = [{{model = "{model}", steps = 60, eval_every = 30}}]\n'
    body = f'[[experiment]]\nname = "a"\nseeds = [0, 1, 2]\n{grid}'
    path = write_sweep(tmp_path, tiny_data, body)
    assert main(["sweep", str(path), "--out", str(tmp_path / "runs"), "--group", "3"]) == 0
    folders = sorted((tmp_path / "runs").iterdir())
    assert len([f for f in folders if f.is_dir()]) == 3
    from tvo.build import build_run

    for folder in (f for f in folders if f.is_dir()):
        run = Run.open(folder)
        rows = [r for r in run.read_metrics() if r.get("log_px") is not None]
        assert [r["step"] for r in rows] == [30, 60] and (folder / "final.json").exists()
        assert "(a group: " in run.log_file.read_text()
        initial, trained = build_run(run).model.state_dict(), run.load_checkpoint()["model"]
        assert all(not torch.equal(initial[k], trained[k]) for k in ("means", "encoder.weight"))


def test_a_model_that_vmap_cannot_batch_is_trained_one_run_at_a_time(tiny_data, tmp_path):
    """``train_group`` names the failure and writes nothing; the sweep's worker then trains the
    runs one at a time, to what single runs give."""
    from tvo.ensemble import GroupError
    from tvo.sweep.worker import work

    (tmp_path / "branchy.py").write_text(ITEM_MODEL)
    spec = f"{tmp_path}/branchy.py:Branchy"
    runs = group_runs(tiny_data, tmp_path / "g", model=spec, steps=20)
    before = {r.path: sorted(p.name for p in r.path.iterdir()) for r in runs}
    with pytest.raises(GroupError, match=r"cannot be trained in a group.*\.item\(\).*--group 1"):
        train_group(runs, quiet=True)
    assert before == {r.path: sorted(p.name for p in r.path.iterdir()) for r in runs}
    evaluation = {"split": "test", "particles": 10, "images": 4, "chunk_size": None}
    assert work([r.path for r in runs], evaluation) == 0
    alone = group_runs(tiny_data, tmp_path / "alone", model=spec, steps=20)
    for a, b in zip(runs, alone):
        train(b, quiet=True)
        ours, theirs = Run.open(a.path).load_checkpoint(), Run.open(b.path).load_checkpoint()
        for name, tensor in ours["model"].items():
            assert torch.equal(tensor, theirs["model"][name]), name
        assert (a.path / "final.json").exists()


def test_a_group_whose_members_stopped_at_different_steps_resumes_from_the_step_they_share(
    tiny_data, tmp_path
):
    """Issue #25's reproduction: a group of 4 stopped (after step 17, checkpoints at 10 and 17),
    then the newest checkpoint of two members deleted (as a kill while the group wrote them
    leaves it) and that of a third made unreadable. The rerun resumes every member from step
    10, the step all four can read, and ends bit for bit as the uninterrupted group, metrics
    included."""
    settings = dict(checkpoint_every=10, log_every=5)
    seeds = (0, 1, 2, 3)
    straight = group_runs(tiny_data, tmp_path / "straight", lrs=(3e-4,) * 4, seeds=seeds,
                          **settings)  # fmt: skip
    train_group(straight, quiet=True)
    resumed = group_runs(tiny_data, tmp_path / "resumed", lrs=(3e-4,) * 4, seeds=seeds,
                         **settings)  # fmt: skip
    train_group(resumed, quiet=True, stop_after=17)
    for r in resumed[1:3]:
        r.checkpoints()[-1].unlink()
    resumed[3].checkpoints()[-1].write_bytes(b"cut short")
    assert sorted({r.latest_step() for r in resumed}) == [10, 17]
    with pytest.warns(UserWarning, match="is corrupt"):
        summaries = train_group([Run.open(r.path) for r in resumed], quiet=True)
    assert [s["steps"] for s in summaries] == [40] * 4
    for a, b in zip(finals(straight), finals(resumed)):
        for name, tensor in a["model"].items():
            assert torch.equal(tensor, b["model"][name]), name
    for a, b in zip(straight, resumed):
        rows = [
            {k: v for k, v in r.items() if k != "seconds"} for r in Run.open(a.path).read_metrics()
        ]
        again = [
            {k: v for k, v in r.items() if k != "seconds"} for r in Run.open(b.path).read_metrics()
        ]
        assert rows == again
        assert [p.name for p in Run.open(b.path).checkpoints()] == [
            p.name for p in Run.open(a.path).checkpoints()]  # fmt: skip


def test_a_huge_but_finite_update_is_the_same_alone_and_in_a_group(tiny_data, tmp_path):
    """Issue #25: a member with a learning rate of 1e30 left its group at step 1 as "no longer
    finite" (the float32 2-norm of its finite parameters overflowed) while the same run alone
    trained on. One rule now (every element finite): it trains to the end in both."""
    alone = Run.create(tmp_path / "alone", resolve(data=tiny_data, **GROUP, seed=1, lr=1e30))
    assert train(alone, quiet=True)["steps"] == 40
    group = group_runs(tiny_data, tmp_path / "group", lrs=(3e-4, 1e30, 3e-4))
    summaries = train_group(group, quiet=True)
    assert [s["stopped"] for s in summaries] == [None, None, None]
    assert [s["steps"] for s in summaries] == [40, 40, 40]


def test_a_member_sees_its_single_runs_batches_and_a_group_repeats_itself(tiny_data, tmp_path):
    """What the README claims of a member against its single run: the same batches (its own data
    generator), not the same particles (the group draws all members' in one call from its own
    generator), so equal in distribution, not bit for bit; and a group of the same members,
    seeds and threads gives the same numbers bit for bit, whatever the process drew before."""
    from tvo.data import Dataset

    seen: dict = {}
    original = Dataset.sample_batch

    def recorded(self, batch_size, generator):
        x = original(self, batch_size, generator)
        seen.setdefault(id(generator), []).append(x)
        return x

    with unittest.mock.patch.object(Dataset, "sample_batch", recorded):
        train_group(group_runs(tiny_data, tmp_path / "g"), quiet=True)
        group_batches = [seen[k] for k in list(seen)]
        seen.clear()
        for i, seed in enumerate((0, 1, 2)):
            train(Run.create(tmp_path / f"alone{i}", resolve(data=tiny_data, **GROUP, seed=seed)),
                  quiet=True)  # fmt: skip
        alone_batches = [seen[k] for k in list(seen)]
    assert len(group_batches) == len(alone_batches) == 3
    for ours, theirs in zip(group_batches, alone_batches):
        assert len(ours) == len(theirs) == 40
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    torch.manual_seed(12345)
    torch.rand(77)
    train_group(group_runs(tiny_data, tmp_path / "again"), quiet=True)
    first = finals([Run(tmp_path / "g" / f"m{i}") for i in range(3)])
    again = finals([Run(tmp_path / "again" / f"m{i}") for i in range(3)])
    for a, b in zip(first, again):
        for name, tensor in a["model"].items():
            assert torch.equal(tensor, b["model"][name]), name


@pytest.mark.parametrize("objective", [tvo.VAE(), tvo.IWAE(), tvo.DReG(), tvo.TVOReparam(K=3)],
                         ids=lambda o: o.name)  # fmt: skip
def test_reparameterised_objectives_draw_each_members_own_particles(objective):
    """The built-in Gaussian VAE's reparameterised draws under ``vmap`` (``Normal.rsample`` fills
    a tensor in place, which ``vmap`` refused, so these objectives could not train as a group):
    two members with the same parameters and data draw different particles, hence different
    losses, and the same generator state draws the same ones again."""
    torch.manual_seed(0)
    models = [GaussianVAE(latents=3, pixels=4, hidden=(5,)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    x = (torch.rand(1, B, 4) < 0.5).float().expand(2, B, 4)
    partitions = None
    if objective.schedule is not None:
        partitions = torch.stack([tvo.partition(3, "log", 0.1)] * 2)
    group = GroupStep(models[0], objective, S, [1e-3] * 2)
    state = group.init(models)
    torch.manual_seed(1)
    loss, _, _ = group.losses(state.params, state.buffers, x, partitions)
    assert torch.isfinite(loss).all() and loss[0] != loss[1]
    torch.manual_seed(1)
    again, _, _ = group.losses(state.params, state.buffers, x, partitions)
    torch.testing.assert_close(again, loss, rtol=0, atol=0)
