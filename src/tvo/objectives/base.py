"""What every objective returns, and the model-level wrapper shared by the families.

Functional layer: a pure function of ``log_p = log p(x, z_s)`` and ``log_q = log q(z_s | x)``,
both ``[S, B]``, returning ``Terms``: a ``surrogate`` ``[B]`` whose gradient is the
estimator (for θ and φ at once) and the objective's value ``estimate`` ``[B]`` (detached).

Model level: an ``Objective`` draws its tensors from a model in its sampling mode
(``tvo.objectives.sampling``), calls its function and returns ``Output``: the scalar
``loss = −mean_b surrogate_b`` to minimise, the estimate and diagnostics. No objective has
sampling code of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from tvo.models.check import check_data
from tvo.objectives.sampling import REPARAMETERIZED, SAMPLING
from tvo.ops import effective_sample_size, logmeanexp


class Terms(NamedTuple):
    """A functional objective's result: ``surrogate`` ``[B]`` (differentiate it) and
    ``estimate`` ``[B]`` (the objective's value, detached)."""

    surrogate: Tensor
    estimate: Tensor


class Output(NamedTuple):
    """A model-level objective's result: ``loss`` (scalar, minimise it), ``estimate`` ``[B]``
    and ``diagnostics``: detached ``[B]`` tensors (``ess``, ``elbo``, ``iwae``, and
    objective-specific ones such as the TVO's ``integrand`` ``[K + 1, B]``)."""

    loss: Tensor
    estimate: Tensor
    diagnostics: Mapping[str, Tensor]


def check_log_weights(
    log_p: Tensor, log_q: Tensor, min_particles: int = 1
) -> tuple[Tensor, Tensor]:
    """Validate ``log_p`` and ``log_q`` at the functional boundary: both ``[S, B]``, floating
    point, at least ``min_particles``. Returns them in at least float32 (half precision is
    converted, so that no reduction overflows its range; gradients flow back unchanged)."""
    for name, value in (("log_p", log_p), ("log_q", log_q)):
        if not isinstance(value, Tensor) or not value.dtype.is_floating_point:
            dtype = value.dtype if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(
                f"{name} has dtype {dtype}: log-densities must be a floating-point tensor"
            )
    if log_p.shape != log_q.shape or log_p.dim() != 2:
        raise ValueError(
            "log_p and log_q must both have shape [S, B] (particles first), got "
            f"{tuple(log_p.shape)} and {tuple(log_q.shape)}"
        )
    if log_p.shape[0] < min_particles:
        raise ValueError(
            f"this objective needs at least {min_particles} particles per data point, "
            f"got S = {log_p.shape[0]}"
        )
    return tuple(v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
                 for v in (log_p, log_q))  # fmt: skip


class Diagnostics(Mapping):
    """Detached per-data-point diagnostics, computed when first read (a training loop that reads
    none pays nothing): ``ess`` (effective sample size), ``elbo`` (``mean_s ℓ``) and ``iwae``
    (``logmeanexp_s ℓ``) of the ``[S, B]`` log-weights ``log_weight``, plus any ``extra``."""

    _computed: ClassVar[dict] = {
        "log_weight": lambda log_weight: log_weight,
        "ess": effective_sample_size,
        "elbo": lambda log_weight: log_weight.mean(0),
        "iwae": logmeanexp,
    }

    def __init__(self, log_weight: Tensor, **extra: Tensor):
        self._log_weight = log_weight.detach()
        self._values: dict[str, Tensor] = dict(extra)

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._values:
            if key not in self._computed:
                raise KeyError(key)
            self._values[key] = self._computed[key](self._log_weight)
        return self._values[key]

    def __iter__(self):
        return iter({**self._computed, **self._values})

    def __len__(self) -> int:
        return len({**self._computed, **self._values})

    def __repr__(self) -> str:
        return f"Diagnostics({', '.join(self)})"


class Objective:
    """Base class of the model-level objectives: ``objective(model, x, num_particles)``.

    A subclass declares what it is, and holds its settings only:

    - ``name``: its name on the command line and in run folders;
    - ``sampling``: how its tensors are drawn (``tvo.objectives.sampling``); ``pathwise`` and
      ``doubly-reparameterized`` need a model with ``has_rsample``;
    - ``function``: the pure function of those tensors that returns ``Terms``;
    - ``min_particles``;
    - ``settings``: the run settings it takes beyond the common ones (model, data, particles,
      optimiser…), each with its default here, e.g. the TVO's ``partitions``, ``schedule``,
      ``beta1``; ``applicable`` says which of them apply to given values,
      ``from_settings`` builds it from them;
    - ``declared`` (optional): a ``tvo.settings.Setting`` for some of ``settings``, with
      its type, help line and check. From these two the setting gets its ``tvo train`` flag,
      its TOML key, its field of ``TrainConfig``, its keyword of ``tvo.fit`` and its row in
      the documentation's table (``tvo.settings``); one without a declaration gets its type
      from its default.

    An objective with a partition has a ``schedule`` (``tvo.partitions``) and is given the
    partition to use at each call (``partition=``); every other objective has ``schedule =
    None`` and refuses one.
    """

    name: ClassVar[str] = "objective"
    sampling: ClassVar[str] = "score"
    min_particles: ClassVar[int] = 1
    settings: ClassVar[dict[str, object]] = {}  # name: default
    declared: ClassVar[tuple] = ()  # tvo.settings.Setting of some of them: type, help, check
    schedule = None  # the TVO's: a schedule of tvo.partitions
    function: ClassVar[Callable[..., Terms]]

    @classmethod
    def needs_rsample(cls) -> bool:
        """Whether the model must have reparameterisable latents (``has_rsample``)."""
        return cls.sampling in REPARAMETERIZED

    @property
    def reparameterized(self) -> bool:
        return self.needs_rsample()

    @classmethod
    def applicable(cls, values: Mapping[str, object]) -> tuple[str, ...]:
        """The names of ``settings`` that apply, given the values chosen so far (``values`` may
        lack some): all of them, unless a subclass says otherwise.

        Args:
            values: the settings chosen so far, by name (some may be missing).
        """
        return tuple(cls.settings)

    @classmethod
    def from_settings(cls, seed: int = 0, **settings) -> Objective:
        """The objective with these ``settings`` (those that apply), ``seed`` for any randomness
        of its own.

        Args:
            seed: the seed of any randomness of the objective's own (an adaptive schedule's).
            **settings (object): values of ``settings``, by name (those that apply); the others keep
                their defaults.
        """
        return cls(**settings)

    def run_settings(self) -> dict:
        """This objective's settings, under the names a run's config gives them (the inverse of
        ``from_settings``)."""
        return {}

    @classmethod
    def requirement_error(cls, model, model_name: str | None = None) -> str | None:
        """Why ``model`` (an instance or a class) cannot be trained with this objective, or
        ``None``. Asked of the model's ``has_rsample``, never of its name; ``model_name``, the
        model's name in a run's settings, is only for the message. The one place this
        requirement is checked: the settings (``tvo.config.validate``), the trainer
        (``tvo.build.build``) and a direct call (``check``) all ask it.

        Args:
            model (GenerativeModel | type): a model, or a model's class.
            model_name: the model's name in a run's settings (for the message only), or ``None``.
        """
        if cls.needs_rsample() and not getattr(model, "has_rsample", False):
            if model_name is not None:
                return (
                    f"objective {cls.name!r} is pathwise (reparameterised), but model "
                    f"{model_name!r} has discrete latents (has_rsample is False); use tvo, elbo, "
                    "reinforce, vimco, rws, ws or ic"
                )
            name = model.__name__ if isinstance(model, type) else type(model).__name__
            return (
                f"{cls.name} is a pathwise (reparameterised) objective, but {name} has no "
                "reparameterisable latents (has_rsample is False, e.g. discrete latents); use a "
                "score-function objective instead: tvo, elbo, reinforce, vimco, rws, ws, ic, "
                "ovis or renyi"
            )
        return None

    def check(self, model, num_particles: int) -> None:
        """Reject settings that cannot work, before any sampling.

        Args:
            model (GenerativeModel): the model to train or evaluate.
            num_particles: particles per data point (an integer ≥ ``min_particles``).
        """
        if (
            not isinstance(num_particles, int)
            or isinstance(num_particles, bool)
            or num_particles < self.min_particles
        ):
            raise ValueError(
                f"{self.name} needs num_particles to be an integer ≥ {self.min_particles}, "
                f"got {num_particles!r}"
            )
        error = self.requirement_error(model)
        if error is not None:
            raise ValueError(error)

    def resolve_partition(self, partition):
        """The partition a call uses: objectives without one refuse to be given one.

        Args:
            partition (Tensor | Sequence[float] | None): the partition the call was given, or
                ``None``.
        """
        if partition is not None:
            raise ValueError(f"{self.name} has no partition, but was given one: {partition!r}")
        return None

    def terms(self, *tensors: Tensor, partition=None) -> Terms:
        """The pure function on the sampled tensors.

        Args:
            *tensors: the tensors its sampling mode drew, each ``[S, B]``
                (``tvo.objectives.sampling``).
            partition (Tensor | None): the partition to use (``resolve_partition``); ``None`` for an
                objective without one.
        """
        return type(self).function(*tensors)

    def particles_drawn(self, num_particles: int) -> int:
        """How many particles per data point the sampling mode draws for ``num_particles``:
        as many, but for an objective that draws more for its own use (OVIS-MC's auxiliary
        particles, which come after the ``num_particles`` in the tensors).

        Args:
            num_particles: the particles of the bound per data point.
        """
        return num_particles

    def __call__(self, model, x: Tensor, num_particles: int, partition=None,
                 validate: bool = True) -> Output:  # fmt: skip
        """The objective on the batch ``x`` ``[B, D]``; ``validate``: refuse ``x`` outside the
        model's observation support (``tvo.models.check.check_data``; the training step
        passes ``False``: its data were checked once)."""
        self.check(model, num_particles)
        if validate:
            check_data(model, x)
        partition = self.resolve_partition(partition)
        sampling = SAMPLING[self.sampling]
        tensors = sampling.draw(model, x, self.particles_drawn(num_particles))
        terms = self.terms(*tensors, partition=partition)
        log_weight = sampling.log_weight(tensors)[:num_particles]  # the bound's particles
        diagnostics = Diagnostics(log_weight, **self.extra_diagnostics(terms))
        return Output(-terms.surrogate.mean(), terms.estimate, diagnostics)

    def extra_diagnostics(self, terms: Terms) -> dict[str, Tensor]:
        """The objective's own diagnostics, detached ``[B]`` tensors (or ``[K + 1, B]``) by name,
        beside ``ess``, ``elbo`` and ``iwae``: none here; the TVO adds ``integrand``.

        Args:
            terms: what ``terms`` returned for the batch.
        """
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
