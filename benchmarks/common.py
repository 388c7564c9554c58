"""Shared timing helpers for the benchmark scripts: medians, matrix-product floors, memory."""

from __future__ import annotations

import resource
import statistics
import time

import torch

from tvo.build import make_optimiser
from tvo.objectives import objective_class
from tvo.runtime import keep_freed_memory
from tvo.step import Generators, Step, init_state


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer_step(model, objective="tvo", particles=10, partitions=5, lr=3e-4, compile=False,
                 seed=0):  # fmt: skip
    """``step(x)``: the trainer's own step (:class:`tvo.step.Step`, the same one ``tvo train``
    calls) of ``objective`` with ``particles`` (and ``partitions`` where it takes them) on
    ``model``, with Adam; the training state is kept between calls."""
    cls = objective_class(objective)
    settings = {"partitions": partitions} if "partitions" in cls.settings else {}
    built = cls.from_settings(seed=seed, **settings)
    device = next(model.parameters()).device
    optimiser, schedule = make_optimiser(model.parameters(), lr), built.schedule
    state = init_state(model, optimiser, schedule, Generators.of_run(seed, device))
    step_fn = Step(built, particles, compile=compile)

    def step(x):
        nonlocal state
        state, _ = step_fn(state, x)

    return step


def recorded_products(run, model) -> list[tuple[int, int, int, bool, bool]]:
    """The matrix products that ``run()`` makes through the ``nn.Linear`` layers of ``model``:
    ``(rows, in, out, input_grad, weight_grad)`` for every call, in order.

    Recorded from a real call, so the floor has exactly the step's products: a layer fed by the
    data sees ``B`` rows, one fed by particles ``S·B``; ``input_grad`` says whether its backward
    needs the product for the input's gradient (not for data or detached particles), and
    ``weight_grad`` whether it needs the one for the weight's.
    """
    records = []

    def hook(module, inputs, output):
        x, grad = inputs[0], torch.is_grad_enabled()
        rows = x.numel() // x.shape[-1]
        needs = (grad and x.requires_grad, grad and module.weight.requires_grad)
        records.append((rows, module.in_features, module.out_features, *needs))

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    handles = [m.register_forward_hook(hook) for m in linears]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return records


def paired_median_ms(first, second, device: torch.device, repeats: int, warmup: int = 10):
    """Median times (ms) of ``first()`` and ``second()``, called alternately, so that both see
    the same machine: on a shared, noisy machine their ratio is then far steadier."""
    for _ in range(warmup):
        first()
        second()
    times: tuple[list, list] = ([], [])
    for _ in range(repeats):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            bucket.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times[0]), 1e3 * statistics.median(times[1])


def matmul_products(records, device, dtype=torch.float32):
    """A function computing the matrix products of :func:`recorded_products` alone:
    ``x @ Wᵀ + b`` for each record, and in backward the gradients the record asks for."""
    tensors = []
    for rows, n_in, n_out, input_grad, weight_grad in records:
        x = torch.randn(rows, n_in, device=device, dtype=dtype, requires_grad=input_grad)
        w = torch.randn(n_out, n_in, device=device, dtype=dtype, requires_grad=weight_grad)
        b = torch.randn(n_out, device=device, dtype=dtype, requires_grad=weight_grad)
        tensors.append((x, w, b))
    leaves = [t for group in tensors for t in group if t.requires_grad]

    def products():
        outputs = [torch.nn.functional.linear(x, w, b) for x, w, b in tensors]
        backward = [o for o in outputs if o.requires_grad]
        if backward:  # autograd.grad: fresh gradients, as after zero_grad(set_to_none=True)
            torch.autograd.grad(backward, leaves, [torch.ones_like(o) for o in backward])

    return products


def add_memory_option(parser) -> None:
    """``--return-freed-memory``: measure with glibc's default ``malloc`` settings instead of
    :func:`tvo.runtime.keep_freed_memory` (which the ``tvo`` command applies)."""
    parser.add_argument("--return-freed-memory", action="store_true",
                        help="glibc's default malloc thresholds (tvo's command line keeps "
                        "freed memory in the process)")  # fmt: skip


def apply_memory_option(args) -> str:
    """Apply the choice of :func:`add_memory_option`; returns a word for the printout."""
    if args.return_freed_memory:
        return "glibc default malloc"
    return "freed memory kept" if keep_freed_memory() else "default malloc (not glibc)"


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
