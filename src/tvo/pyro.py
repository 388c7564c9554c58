"""The TVO family as Pyro ELBOs: any Pyro model and guide, trained through ``pyro.infer.SVI``.

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=TVO_ELBO(num_particles=10, K=5))

``TVO_ELBO``, ``VIMCO_ELBO``, ``DReG_ELBO``, ``OVIS_ELBO`` and
``Renyi_ELBO`` subclass ``pyro.infer.ELBO``
(``loss``, ``loss_and_grads``, ``differentiable_loss``, and ``elbo(model, guide)`` for Pyro's
``ELBOModule``). Each turns the traces of a model and guide into the ``[S, B]`` tensors its
estimator takes and calls the pure function of ``tvo.functional`` on them (``tvo``,
``tvo_reparam``, ``vimco``, ``dreg``, ``ovis_mc``, ``ovis_asymptotic``, ``renyi``); nothing here
re-derives an estimator. Needs the ``pyro``
extra (``pip install 'tvo[pyro]'``, Pyro 1.9.2). docs/pyro.md is the user's guide.

Log-weights. The guide runs once inside an outer particle plate of ``S`` (or ``S`` times in
turn, ``vectorize_particles=False``), the model is replayed against it, and the log-densities of
their sample sites (observed ones and ``pyro.factor`` included) are summed into

    ℓ_{s,b} = Σ_{model sites} log p − Σ_{guide sites} log q,    [S, B]

where ``b`` runs over the *data plate*: the outermost plate that every sample site of the model
and the guide lies in. A plate declares that what happens at different ``b`` is independent, so
``log p(x) = Σ_b log p(x_b)`` and each objective is a bound per data point with its own ``S``
particles, as the functions of ``tvo.functional`` expect. A model with a site outside every
such plate (a global latent, say) has no data plate: its data points share the particles'
global values, so the log-weight is one per particle for the whole batch, ``[S, 1]`` (as in
Pyro's ``RenyiELBO``); splitting it per data point would not be a bound.

Scales. With ``pyro.plate("data", N, subsample_size=B)`` as the data plate the loss is
``−(N/B) Σ_b F(ℓ_{:,b})``: the scale multiplies each data point's objective ``F``, outside its
log-sum-exp. Every other scale (``poutine.scale``, a subsampled plate nested inside the data
plate) and every mask multiplies its site's log-density inside ``ℓ``. Without a data plate the
data plate's scale can only go inside (``ℓ_s = Σ_global + (N/B) Σ_b ℓ_{s,b}``), as Pyro does:
for ``K > 1`` or ``S > 1`` that is then not a bound in expectation over minibatches.

Gradients. ``score``: every latent is drawn without reparameterisation (its value detached as
it is drawn, so later sites see a constant), ``log_p`` differentiable in the model's parameters
and ``log_q`` in the guide's: the covariance estimator of the TVO, VIMCO. ``mixed`` (VIMCO's
default): sites with ``rsample`` are reparameterised and enter ``ℓ`` pathwise, the others get
VIMCO's score terms; ``vimco(log_p − log q_pathwise, log q_score)`` is exactly that estimator,
and with every site reparameterisable it is the IWAE's pathwise gradient.
``doubly-reparameterized`` (DReG, the reparameterised TVO): every guide site must have
``rsample``; the model and guide are evaluated a second time at the detached particles, giving
``log p(x, sg(z))`` and ``F = log p(x, sg(z)) − log q(sg(z))``, and
``ℓ|_{parameters stopped} = ℓ − F + sg(F)`` (value ``ℓ``, gradient only through ``z``).

The loss and its gradient. ``differentiable_loss`` returns ``−scale · Σ_b estimate_b`` (the
negative bound, summed over the batch like Pyro's ELBOs) whose gradient is that of
``−scale · Σ_b surrogate_b``.

Not supported (a ``ValueError`` says so): sites marked for enumeration, plates that differ
between a site's model and guide, guide sites absent from the model (mark auxiliary ones
``infer={"is_auxiliary": True}``), model latents absent from the guide, a ``num_particles``
below the objective's minimum, and ``GuideMessenger`` guides.

How traces become log-weights: docs/maths.md, "Pyro models".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.infer import ELBO
from pyro.infer.util import is_validation_enabled
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_site_shape
from torch import Tensor

from tvo import functional
from tvo.objectives import TVO, Terms, TVOReparam
from tvo.objectives.ovis import check_form
from tvo.objectives.renyi import check_alpha

PARTICLES = "_tvo_particles"  # the name of the outer particle plate
SAMPLINGS = ("score", "mixed", "doubly-reparameterized")

__all__ = [
    "OVIS_ELBO",
    "PARTICLES",
    "TVO_ELBO",
    "VIMCO_ELBO",
    "DReG_ELBO",
    "LogWeights",
    "Renyi_ELBO",
    "log_weights",
]  # fmt: skip


class _DetachParticles(Messenger):
    """Draws every latent site that has no value yet and detaches it as it is drawn, so that no
    later site of the guide sees a reparameterised path (score-function sampling)."""

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or msg["done"]:
            return
        with torch.no_grad():
            msg["value"] = msg["fn"](*msg["args"], **msg["kwargs"]).detach()


class LogWeights(NamedTuple):
    """The log-densities of one model and guide run, per particle and data point, ``[S, B]``.

    ``log_p``: the model's sites; ``log_q_pathwise``: the guide's reparameterised sites (zero
    in score sampling); ``log_q_score``: its other sites. ``scale``: the data plate's subsample
    scale ``N/B`` (1 without subsampling or without a data plate). ``data_plate``: its name, or
    ``None`` (then ``B = 1``)."""

    log_p: Tensor
    log_q_pathwise: Tensor
    log_q_score: Tensor
    scale: float
    data_plate: str | None

    @property
    def log_weight(self) -> Tensor:
        """``ℓ = log p − log q``, ``[S, B]``."""
        return self.log_p - self.log_q_pathwise - self.log_q_score


def _plates(site) -> tuple:
    """The vectorised plates of a site other than the particle plate, outermost first."""
    return tuple(f for f in site["cond_indep_stack"] if f.vectorized and f.name != PARTICLES)


def _describe(frames) -> str:
    return "[" + ", ".join(f"{f.name}(size={f.size}, dim={f.dim})" for f in frames) + "]"


def _sample_sites(trace) -> dict:
    return {name: site for name, site in trace.nodes.items() if site["type"] == "sample"}


def _enumerated(name: str, where: str, site) -> str:
    return (
        f"site {name!r} of the {where} is marked for enumeration "
        f"(infer={{'enumerate': {site['infer']['enumerate']!r}}}): tvo.pyro draws every latent "
        "as a particle from the guide; remove the mark (or config_enumerate), or use "
        "TraceEnum_ELBO"
    )


def check_traces(model_trace, guide_trace) -> None:
    """Reject what the log-weights cannot be built from, naming the sites (see the module
    docstring). The traces are pruned of subsample sites."""
    model_sites, guide_sites = _sample_sites(model_trace), _sample_sites(guide_trace)
    for name, site in guide_sites.items():
        if site["infer"].get("enumerate") is not None and not site["is_observed"]:
            raise ValueError(_enumerated(name, "guide", site))
    missing = [
        name
        for name, site in guide_sites.items()
        if not site["is_observed"]
        and not site["infer"].get("is_auxiliary")
        and name not in model_sites
    ]
    if missing:
        raise ValueError(
            f"guide sites {missing} are not in the model: every latent of the guide must be a "
            "site of the model, or be marked infer={'is_auxiliary': True}"
        )
    unguided = {
        name: site
        for name, site in model_sites.items()
        if not site["is_observed"] and name not in guide_sites
    }
    for name, site in unguided.items():
        if site["infer"].get("enumerate") is not None:
            raise ValueError(_enumerated(name, "model", site))
    if unguided:
        raise ValueError(
            f"model latents {list(unguided)} are not in the guide: the log-weights need log q "
            "of every latent, so the guide must sample each one (observed sites need obs=)"
        )
    for name, site in model_sites.items():
        if name in guide_sites and _plates(site) != _plates(guide_sites[name]):
            raise ValueError(
                f"site {name!r} lies in different plates in the model and the guide: model "
                f"{_describe(_plates(site))}, guide {_describe(_plates(guide_sites[name]))}; "
                "they must be the same plates (name, size and dim)"
            )


def find_data_plate(model_trace, guide_trace):
    """The outermost plate that every sample site of both traces lies in, or ``None``."""
    sites = [*_sample_sites(model_trace).values(), *_sample_sites(guide_trace).values()]
    if not sites:
        return None
    shared = [f for f in _plates(sites[0]) if all(f in _plates(site) for site in sites[1:])]
    return shared[0] if shared else None


def _reduce(log_prob: Tensor | float, particle_dim: int | None, data_dim: int | None) -> Tensor:
    """A site's log-density summed over every dimension but the particle and data dims (which
    are kept, in that order; absent ones are added with size 1): ``[S or 1, B or 1]``."""
    log_prob = torch.as_tensor(log_prob)
    keep = [d for d in (particle_dim, data_dim) if d is not None]
    need = max((-d for d in keep), default=0)
    if log_prob.dim() < need:
        log_prob = log_prob.reshape((1,) * (need - log_prob.dim()) + log_prob.shape)
    n = log_prob.dim()
    kept = [n + d for d in keep]
    others = tuple(i for i in range(n) if i not in kept)
    reduced = log_prob.sum(others) if others else log_prob
    if particle_dim is None:
        reduced = reduced.unsqueeze(0)
    if data_dim is None:
        reduced = reduced.unsqueeze(-1)
    return reduced


def log_weights(
    model_trace, guide_trace, particle_dim: int | None = None, detached: bool = False
) -> LogWeights:
    """``LogWeights`` of one model and guide run (traces pruned of subsample sites),
    ``[S, B]`` with ``S`` along ``particle_dim`` (``None``: one particle, ``S = 1``).
    ``detached``: the guide was run with every particle detached (score sampling), so all of
    ``log q`` goes to ``log_q_score``.

    Args:
        model_trace (pyro.poutine.Trace): the model's trace.
        guide_trace (pyro.poutine.Trace): the guide's trace.
        particle_dim: the dimension of the particles' plate (``None``: one particle).
        detached: every particle was detached.
    """
    data_plate = find_data_plate(model_trace, guide_trace)
    scale, data_dim = 1.0, None
    if data_plate is not None:
        data_dim = data_plate.dim
        if data_plate.full_size is not None and data_plate.full_size != data_plate.size:
            scale = data_plate.full_size / data_plate.size

    def summed(sites) -> Tensor | float:
        total = 0.0
        for site in sites:
            log_prob = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
            log_prob = scale_and_mask(log_prob, site["scale"] / scale, site["mask"])
            if is_validation_enabled() and isinstance(log_prob, Tensor):
                check_site_shape({**site, "log_prob": log_prob}, math.inf)
            total = total + _reduce(log_prob, particle_dim, data_dim)
        return total

    model = _sample_sites(model_trace).values()
    guide = list(_sample_sites(guide_trace).values())
    is_pathwise = [not detached and _has_rsample(site) for site in guide]
    pathwise = [site for site, path in zip(guide, is_pathwise) if path]
    score = [site for site, path in zip(guide, is_pathwise) if not path]
    parts = [summed(model), summed(pathwise), summed(score)]
    like = next(p for p in (*parts, torch.zeros(1, 1)) if isinstance(p, Tensor))
    shape = torch.broadcast_shapes(*(p.shape for p in parts if isinstance(p, Tensor)))
    log_p, log_q_pathwise, log_q_score = (
        p.expand(shape) if isinstance(p, Tensor) else like.new_zeros(shape) for p in parts
    )
    name = data_plate.name if data_plate is not None else None
    return LogWeights(log_p, log_q_pathwise, log_q_score, scale, name)


def _cat(runs: list[LogWeights]) -> LogWeights:
    """Sequential particles: the runs' ``[1, B]`` tensors stacked into ``[S, B]``."""
    first = runs[0]
    for run in runs[1:]:
        if (run.data_plate, run.scale, run.log_p.shape) != (
            first.data_plate,
            first.scale,
            first.log_p.shape,
        ):
            raise ValueError(
                "the model's plates changed between particles (data plate "
                f"{first.data_plate!r}, shape {tuple(first.log_p.shape)}, then "
                f"{run.data_plate!r}, {tuple(run.log_p.shape)}): sequential particles need the "
                "same data plate and batch in every run"
            )
    tensors = [torch.cat(parts) for parts in zip(*(r[:3] for r in runs))]
    return LogWeights(*tensors, first.scale, first.data_plate)


def _latent_sites(trace) -> dict:
    return {n: s for n, s in _sample_sites(trace).items() if not s["is_observed"]}


def _has_rsample(site) -> bool:
    return bool(getattr(site["fn"], "has_rsample", False))


def _detached_copy(trace):
    """A copy of ``trace`` whose sample values are detached (to replay the same particles)."""
    fixed = poutine.Trace()
    for name, site in trace.nodes.items():
        value = site.get("value")
        if site["type"] == "sample" and isinstance(value, Tensor):
            site = {**site, "value": value.detach()}
        fixed.add_node(name, **site)
    return fixed


class _Run(NamedTuple):
    model_trace: poutine.Trace
    guide_trace: poutine.Trace
    raw_guide_trace: poutine.Trace  # with its subsample sites, to replay


class _FamilyELBO(ELBO):
    """What the ELBOs share: the runs, the log-weights, the loss and its surrogate.

    A subclass gives ``min_particles``, ``choose`` (the sampling mode for a guide whose
    sites have or lack ``rsample``) and ``terms`` (the pure function on its tensors).
    """

    min_particles = 1
    reparameterized: bool | None = None
    _rsample_hint = ""

    def __init__(
        self,
        num_particles: int,
        vectorize_particles: bool = True,
        max_plate_nesting: float = math.inf,
        retain_graph: bool | None = None,
    ):
        if (
            not isinstance(num_particles, int)
            or isinstance(num_particles, bool)
            or num_particles < self.min_particles
        ):
            raise ValueError(
                f"{type(self).__name__} needs num_particles to be an integer ≥ "
                f"{self.min_particles}, got {num_particles!r}"
            )
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=vectorize_particles,
            retain_graph=retain_graph,
        )
        self.log_weight: Tensor | None = None  # the last call's [S, B] log-weights, detached

    @staticmethod
    def _check_reparameterized(value) -> None:
        if value not in (None, True, False):
            raise ValueError(f"reparameterized must be None, True or False, got {value!r}")

    # --- runs -------------------------------------------------------------------------------

    def _guess_max_plate_nesting(self, model, guide, args, kwargs) -> None:
        """Pyro's guess (one run of the guide and the model), leaving the random generators as
        they were: a run that is given ``max_plate_nesting`` draws the same particles."""
        state = pyro.util.get_rng_state()
        try:
            super()._guess_max_plate_nesting(model, guide, args, kwargs)
        finally:
            pyro.util.set_rng_state(state)

    def _particle_dim(self) -> int | None:
        if not self.vectorize_particles or self.num_particles == 1:
            return None
        return -self.max_plate_nesting

    def _particles(self, fn: Callable) -> Callable:
        dim = self._particle_dim()
        return fn if dim is None else pyro.plate(PARTICLES, self.num_particles, dim=dim)(fn)

    def _run(self, model, guide, args, kwargs, detach: bool) -> _Run:
        """One run of the guide (every particle detached as drawn if ``detach``) and of the
        model replayed against it, both inside the particle plate; checked."""
        if isinstance(poutine.unwrap(guide), Messenger):
            raise ValueError(
                "GuideMessenger guides (AutoGuideMessenger, …) are not supported by tvo.pyro: "
                "use a guide function or an AutoGuide"
            )
        guide = self._particles(guide)
        if detach:
            guide = _DetachParticles()(guide)
        raw = poutine.trace(guide).get_trace(*args, **kwargs)
        replayed = poutine.replay(self._particles(model), trace=raw)
        model_trace = prune_subsample_sites(poutine.trace(replayed).get_trace(*args, **kwargs))
        guide_trace = prune_subsample_sites(raw)
        check_traces(model_trace, guide_trace)
        return _Run(model_trace, guide_trace, raw)

    def _runs(self, model, guide, args, kwargs, detach: bool) -> list[_Run]:
        count = 1 if self._particle_dim() is not None else self.num_particles
        return [self._run(model, guide, args, kwargs, detach) for _ in range(count)]

    def _weights(self, runs: list[_Run], detached: bool) -> LogWeights:
        parts = [
            log_weights(r.model_trace, r.guide_trace, self._particle_dim(), detached) for r in runs
        ]
        return parts[0] if len(parts) == 1 else _cat(parts)

    def _at_detached_particles(self, model, guide, args, kwargs, runs: list[_Run]) -> LogWeights:
        """The model and the guide evaluated again at the runs' particles, detached
        (parameters live): ``log p(x, sg(z))`` and ``log q(sg(z))``."""
        parts = []
        for run in runs:
            fixed = _detached_copy(run.raw_guide_trace)
            traces = [
                poutine.trace(poutine.replay(self._particles(fn), trace=fixed)).get_trace(
                    *args, **kwargs
                )
                for fn in (model, guide)
            ]
            parts.append(
                log_weights(*map(prune_subsample_sites, traces), self._particle_dim(), False)
            )
        return parts[0] if len(parts) == 1 else _cat(parts)

    def _require_rsample(self, runs: list[_Run]) -> None:
        plain = sorted(
            {
                name
                for run in runs
                for name, site in _latent_sites(run.guide_trace).items()
                if not _has_rsample(site)
            }
        )
        if plain:
            raise ValueError(
                f"{type(self).__name__} with reparameterised gradients needs every guide site "
                f"to have rsample, but {plain} do not (discrete, or has_rsample=False)"
                + self._rsample_hint
            )

    def tensors(self, model, guide, args, kwargs) -> tuple[tuple[Tensor, ...], LogWeights]:
        """The tensors of the chosen sampling mode and the run's ``LogWeights``."""
        if self.vectorize_particles and self.max_plate_nesting == math.inf:
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        detach_first = self.reparameterized is False
        runs = self._runs(model, guide, args, kwargs, detach=detach_first)
        rsample = [_has_rsample(s) for r in runs for s in _latent_sites(r.guide_trace).values()]
        sampling = self.choose(all(rsample))
        if sampling == "doubly-reparameterized" or self.reparameterized is True:
            self._require_rsample(runs)
        if sampling == "score" and not detach_first and any(rsample):
            runs = self._runs(model, guide, args, kwargs, detach=True)  # a mixed guide
        weights = self._weights(runs, detached=sampling == "score")
        if sampling == "score":
            return (weights.log_p, weights.log_q_score), weights
        if sampling == "mixed":
            return (weights.log_p - weights.log_q_pathwise, weights.log_q_score), weights
        fixed = self._at_detached_particles(model, guide, args, kwargs, runs)
        at_fixed = fixed.log_weight  # F = log p(x, sg z) − log q(sg z), parameters live
        stopped = weights.log_weight - at_fixed + at_fixed.detach()  # value ℓ, path only
        return (fixed.log_p, stopped), weights

    # --- the objective ------------------------------------------------------------------------

    def choose(self, all_rsample: bool) -> str:
        """The sampling mode (one of ``SAMPLINGS``) for a guide whose latent sites all have
        ``rsample`` (``all_rsample``) or not.

        Args:
            all_rsample: whether every latent site of the guide has ``rsample``.
        """
        raise NotImplementedError

    def terms(self, *tensors: Tensor) -> Terms:
        """The pure function of ``tvo.functional`` on the tensors.

        Args:
            *tensors: the tensors of the sampling mode, each ``[S, B]``.
        """
        raise NotImplementedError

    def differentiable_loss(self, model, guide, *args, **kwargs) -> Tensor:
        """``−scale · Σ_b estimate_b`` (a tensor) with the gradient of
        ``−scale · Σ_b surrogate_b``: the estimator, for the model's and the guide's
        parameters at once."""
        tensors, weights = self.tensors(model, guide, args, kwargs)
        terms = self.terms(*tensors)
        self.log_weight = weights.log_weight.detach()
        surrogate = -weights.scale * terms.surrogate.sum()
        value = -weights.scale * terms.estimate.sum()
        return value + (surrogate - surrogate.detach())

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The negative bound ``−scale · Σ_b estimate_b``, as a float (no gradients)."""
        last = self.log_weight  # an evaluation leaves the last training step's log-weights
        try:
            with torch.no_grad():
                return self.differentiable_loss(model, guide, *args, **kwargs).item()
        finally:
            self.log_weight = last

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """``differentiable_loss`` with its gradient accumulated into the parameters'
        ``.grad``; returns the loss as a float."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        self.after_step()
        return loss.item()

    def after_step(self) -> None:
        """Called by ``loss_and_grads`` after the backward pass."""

    def _get_trace(self, model, guide, args, kwargs):  # abstract in pyro.infer.ELBO
        run = self._run(model, guide, args, kwargs, detach=self.reparameterized is False)
        return run.model_trace, run.guide_trace


class TVO_ELBO(_FamilyELBO):
    """The thermodynamic variational objective (Masrani, Le & Wood, 2019) as a Pyro ELBO.

    ``TVO_L = Σ_k Δ_k ĝ(β_{k−1}) ≤ log p(x)`` on the partition ``0 = β_0 < … < β_K = 1``, per
    data point of the data plate; ``K = 1`` is the ELBO.

    Args:
        num_particles: ``S ≥ 2`` particles per data point.
        K: the number of intervals of the partition.
        schedule: ``"log"``, ``"linear"``, ``"moments"`` or ``"gp-bandit"``, as ``tvo.TVO``.
        beta1: the first inner point of the schedules that start from the log schedule.
        integration: ``"left"`` (``TVO_L``), ``"right"`` (``TVO_U``, an upper bound) or
            ``"trapz"``.
        partition: points of your own instead of a schedule.
        adapt_every: updates between moves of an adaptive schedule.
        seed: the seed of the gp-bandit schedule.
        reparameterized: ``None`` (default): the reparameterised TVO gradient
            (``tvo.functional.tvo_reparam``, Brekelmans et al. 2020) when every guide site
            has ``rsample``, else the covariance estimator (``tvo.functional.tvo``) with
            every particle detached; ``True``: demand the former; ``False``: always the latter.
        vectorize_particles: draw the particles in one run inside an outer plate (default), or
            in ``S`` runs in turn (``False``: for models whose structure depends on values).
        max_plate_nesting: as Pyro's; guessed from one run when not given.
        retain_graph: as Pyro's ``ELBO`` (``None``: Pyro's default).

    Schedule state. The ELBO holds ``state`` (``schedule.init()``) and trains on
    ``state.partition``. ``loss_and_grads`` (each ``SVI.step``) advances it with that
    step's log-weights, ``state = schedule.update(state, log_weight)``; ``loss`` and
    ``differentiable_loss`` do not, so a loop of your own (or Pyro's ``ELBOModule``) calls
    ``advance`` after each optimiser step. Save it with ``state_dict`` beside Pyro's
    param store and restore it with ``load_state_dict``::

        torch.save({"params": pyro.get_param_store().get_state(), "tvo": elbo.state_dict()}, f)
        saved = torch.load(f, weights_only=False)
        pyro.get_param_store().set_state(saved["params"])
        elbo.load_state_dict(saved["tvo"])
    """

    min_particles = 2
    _rsample_hint = "; reparameterized=None or False uses the covariance estimator instead"

    def __init__(
        self,
        num_particles: int = 10,
        K: int = 5,
        schedule: str = "log",
        beta1: float = 0.1,
        integration: str = "left",
        partition: Sequence[float] | Tensor | None = None,
        adapt_every: int = 100,
        seed: int = 0,
        reparameterized: bool | None = None,
        vectorize_particles: bool = True,
        max_plate_nesting: float = math.inf,
        retain_graph: bool | None = None,
    ):
        super().__init__(num_particles, vectorize_particles, max_plate_nesting, retain_graph)
        self._check_reparameterized(reparameterized)
        self.reparameterized = reparameterized
        settings = dict(K=K, schedule=schedule, beta1=beta1, integration=integration,
                        partition=partition, seed=seed, adapt_every=adapt_every)  # fmt: skip
        self.covariance = TVO(**settings)  # validates the settings
        self.reparam = TVOReparam(**settings)
        self.schedule = self.reparam.schedule = self.covariance.schedule
        self.state = self.schedule.init()
        self._estimator: TVO = self.covariance

    @property
    def K(self) -> int:
        return self.schedule.K

    def choose(self, all_rsample: bool) -> str:
        """The sampling mode: ``doubly-reparameterized`` (the reparameterised TVO) or ``score``.

        Args:
            all_rsample: whether every latent site of the guide has ``rsample``.
        """
        reparam = self.reparameterized is True or (self.reparameterized is None and all_rsample)
        self._estimator = self.reparam if reparam else self.covariance
        return "doubly-reparameterized" if reparam else "score"

    def terms(self, *tensors: Tensor) -> Terms:
        """The TVO's terms at the state's partition.

        Args:
            *tensors: the tensors of the sampling mode, each ``[S, B]``.
        """
        return self._estimator.terms(*tensors, partition=self.state.partition)

    def advance(self) -> None:
        """Advance the schedule's state with the last call's log-weights (the state of a fixed
        schedule stays as it is)."""
        if self.log_weight is None:
            raise ValueError("advance() needs a loss computed first (differentiable_loss)")
        self.state = self.schedule.update(self.state, self.log_weight)

    def after_step(self) -> None:
        self.advance()

    def state_dict(self) -> dict:
        """The schedule's state as plain values: ``{"partition": …, "schedule": …}``."""
        return {"partition": self.state.partition.clone(),
                "schedule": self.schedule.state_dict(self.state)}  # fmt: skip

    def load_state_dict(self, saved: dict) -> None:
        """Restore a state saved by ``state_dict``.

        Args:
            saved: what ``state_dict`` gave.
        """
        self.state = self.schedule.load_state_dict(saved["partition"], saved["schedule"])

    def __repr__(self) -> str:
        return f"TVO_ELBO(num_particles={self.num_particles}, {self.covariance!r})"


class VIMCO_ELBO(_FamilyELBO):
    """The importance-weighted bound ``L̂ = logmeanexp_s ℓ_s`` with VIMCO's leave-one-out
    score-function estimator (Mnih & Rezende, 2016; ``tvo.functional.vimco``), per data
    point of the data plate; ``S ≥ 2``.

    ``reparameterized``: ``None`` (default): sites with ``rsample`` enter ``L̂`` pathwise and
    the others get VIMCO's score terms (every site reparameterisable: the IWAE's gradient; none:
    VIMCO as published); ``True``: demand that every guide site has ``rsample``; ``False``:
    score terms for every site. Other arguments as ``TVO_ELBO``.

    Args:
        num_particles: ``S ≥ 2`` particles per data point.
        reparameterized: ``None``, ``True`` or ``False``, as above.
        vectorize_particles: draw the particles in one run inside an outer plate.
        max_plate_nesting: as Pyro's; guessed from one run when not given.
        retain_graph: as Pyro's ``ELBO``.
    """

    min_particles = 2

    def __init__(
        self,
        num_particles: int = 10,
        reparameterized: bool | None = None,
        vectorize_particles: bool = True,
        max_plate_nesting: float = math.inf,
        retain_graph: bool | None = None,
    ):
        super().__init__(num_particles, vectorize_particles, max_plate_nesting, retain_graph)
        self._check_reparameterized(reparameterized)
        self.reparameterized = reparameterized

    def choose(self, all_rsample: bool) -> str:
        """The sampling mode: ``score`` when ``reparameterized`` is ``False``, else ``mixed``.

        Args:
            all_rsample: whether every latent site of the guide has ``rsample``.
        """
        return "score" if self.reparameterized is False else "mixed"

    def terms(self, log_p: Tensor, log_q: Tensor) -> Terms:
        """``tvo.functional.vimco``.

        Args:
            log_p: ``log p(x, z_s)``, ``[S, B]``.
            log_q: ``log q(z_s | x)`` of the score sites, ``[S, B]``.
        """
        return functional.vimco(log_p, log_q)

    def __repr__(self) -> str:
        return f"VIMCO_ELBO(num_particles={self.num_particles})"


class DReG_ELBO(_FamilyELBO):
    """The importance-weighted bound with the doubly reparameterised gradient (Tucker et al.,
    2019; ``tvo.functional.dreg``); every guide site needs ``rsample``. θ gets the IWAE
    gradient, φ ``Σ_s w̄_s² (∂ℓ_s/∂z_s)(∂z_s/∂φ)`` without the score term (at ``S = 1`` the
    "sticking the landing" ELBO gradient). The model and guide run twice per step.

    Args:
        num_particles: ``S`` particles per data point.
        vectorize_particles: draw the particles in one run inside an outer plate.
        max_plate_nesting: as Pyro's; guessed from one run when not given.
        retain_graph: as Pyro's ``ELBO``.
    """

    min_particles = 1

    def __init__(
        self,
        num_particles: int = 10,
        vectorize_particles: bool = True,
        max_plate_nesting: float = math.inf,
        retain_graph: bool | None = None,
    ):
        super().__init__(num_particles, vectorize_particles, max_plate_nesting, retain_graph)

    def choose(self, all_rsample: bool) -> str:
        """The sampling mode: ``doubly-reparameterized``.

        Args:
            all_rsample: whether every latent site of the guide has ``rsample``.
        """
        return "doubly-reparameterized"

    def terms(self, log_p_theta: Tensor, log_weight: Tensor) -> Terms:
        """``tvo.functional.dreg``.

        Args:
            log_p_theta: ``log p(x, sg(z_s))``, ``[S, B]``.
            log_weight: ``ℓ_s`` with every parameter stopped, ``[S, B]``.
        """
        return functional.dreg(log_p_theta, log_weight)

    def __repr__(self) -> str:
        return f"DReG_ELBO(num_particles={self.num_particles})"


class OVIS_ELBO(_FamilyELBO):
    """The importance-weighted bound with OVIS's score-function estimator (Liévin et al., 2020;
    ``tvo.objectives.ovis``), per data point of the data plate; ``S ≥ 2``. Every latent is
    drawn without reparameterisation (score sampling), as in the paper.

    ``form="mc"`` (default, unbiased): the guide draws ``S + auxiliary_particles`` particles in
    one run; the first ``S`` make the bound and θ's gradient, the others only the control
    variate (``tvo.functional.ovis_mc``). ``form="asymptotic"``: OVIS~ with ``gamma``
    (``tvo.functional.ovis_asymptotic``; unbiased at ``gamma=0`` only). Other arguments as
    ``TVO_ELBO``.
    """

    min_particles = 2
    reparameterized = False

    def __init__(
        self,
        num_particles: int = 10,
        form: str = "mc",
        auxiliary_particles: int = 10,
        gamma: float = 1.0,
        vectorize_particles: bool = True,
        max_plate_nesting: float = math.inf,
        retain_graph: bool | None = None,
    ):
        super().__init__(num_particles, vectorize_particles, max_plate_nesting, retain_graph)
        check_form(form, auxiliary_particles, gamma)
        self.form, self.auxiliary_particles, self.gamma = form, auxiliary_particles, gamma
        self.bound_particles = num_particles
        if form == "mc":  # the guide's particle plate holds the auxiliary particles too
            self.num_particles = num_particles + auxiliary_particles

    def choose(self, all_rsample: bool) -> str:
        return "score"

    def terms(self, log_p: Tensor, log_q: Tensor) -> Terms:
        if self.form == "asymptotic":
            return functional.ovis_asymptotic(log_p, log_q, self.gamma)
        S = self.bound_particles
        aux = (log_p[S:] - log_q[S:]).detach()
        return functional.ovis_mc(log_p[:S], log_q[:S], aux)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> Tensor:
        loss = super().differentiable_loss(model, guide, *args, **kwargs)
        self.log_weight = self.log_weight[: self.bound_particles]  # the bound's particles
        return loss

    def __repr__(self) -> str:
        setting = (f"auxiliary_particles={self.auxiliary_particles}" if self.form == "mc"
                   else f"gamma={self.gamma:g}")  # fmt: skip
        return f"OVIS_ELBO(num_particles={self.bound_particles}, form={self.form!r}, {setting})"


class Renyi_ELBO(_FamilyELBO):
    """The variational Rényi bound ``L̂_α = logmeanexp_s((1 − α) ℓ_s) / (1 − α)`` (Li & Turner,
    2016; ``tvo.objectives.renyi``), per data point of the data plate; ``S ≥ 2``.

    Unlike Pyro's ``RenyiELBO`` (pathwise only, one bound over the whole batch), the bound is
    per data point and the sites without ``rsample`` get the score-function estimator with
    leave-one-out baselines (``tvo.functional.renyi``). ``reparameterized``: ``None``
    (default): sites with ``rsample`` enter ``L̂_α`` pathwise and the others get score terms
    (every site reparameterisable: the pathwise VR gradient); ``True``: demand that every guide
    site has ``rsample``; ``False``: score terms for every site. Other arguments as
    ``TVO_ELBO``.
    """

    min_particles = 2

    def __init__(
        self,
        num_particles: int = 10,
        alpha: float = 0.5,
        reparameterized: bool | None = None,
        vectorize_particles: bool = True,
        max_plate_nesting: float = math.inf,
        retain_graph: bool | None = None,
    ):
        super().__init__(num_particles, vectorize_particles, max_plate_nesting, retain_graph)
        self._check_reparameterized(reparameterized)
        self.reparameterized = reparameterized
        self.alpha = check_alpha(alpha)

    def choose(self, all_rsample: bool) -> str:
        return "score" if self.reparameterized is False else "mixed"

    def terms(self, log_p: Tensor, log_q: Tensor) -> Terms:
        return functional.renyi(log_p, log_q, self.alpha)

    def __repr__(self) -> str:
        return f"Renyi_ELBO(num_particles={self.num_particles}, alpha={self.alpha:g})"
