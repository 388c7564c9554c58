"""Shared timing helpers for the benchmark scripts: medians, matrix-product floors, memory."""

from __future__ import annotations

import resource
import statistics
import time

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def linear_shapes(model, batch: int, rows: int) -> list[tuple[int, int, int]]:
    """``(rows, in, out)`` of every ``nn.Linear`` in a step: a layer fed by the data sees
    ``batch`` rows (once per data point), every other layer ``rows = S·B``."""
    shapes = []
    data_width = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            first_encoder = name.endswith(("encoders.0.0", "encoder.0", "encoder_weight"))
            if data_width is None and first_encoder:
                data_width = module.in_features
            shapes.append((batch if first_encoder else rows, module.in_features,
                           module.out_features))  # fmt: skip
    return shapes


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


def matmul_products(shapes, device, dtype=torch.float32, backward=True):
    """A function computing the matrix products alone: ``x @ Wᵀ + b`` for each
    ``(rows, in, out)``, forward and (if ``backward``) backward."""
    tensors = []
    for rows, n_in, n_out in shapes:
        x = torch.randn(rows, n_in, device=device, dtype=dtype, requires_grad=backward)
        w = torch.randn(n_out, n_in, device=device, dtype=dtype, requires_grad=backward)
        b = torch.randn(n_out, device=device, dtype=dtype, requires_grad=backward)
        tensors.append((x, w, b))

    def products():
        with torch.set_grad_enabled(backward):
            outputs = [torch.nn.functional.linear(x, w, b) for x, w, b in tensors]
            if backward:
                torch.autograd.backward(outputs, [torch.ones_like(o) for o in outputs])

    return products


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
