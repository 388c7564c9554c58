"""IWAE-5000 beside annealed importance sampling, and the BDMC gap on simulated data, for one
trained SBN and one trained Gaussian VAE (issue #19). Writes one JSON file that
``benchmarks/paper_report.py`` turns into a table of docs/RESULTS.md.

    python benchmarks/ais_eval.py --sbn runs/sbn-tvo-K5 --vae runs/vae-tvo-K5 \\
        --out benchmarks/results/ais/ais.json

The two runs, trained at the settings of ``benchmarks/sweeps/laptop.toml`` (50 s and 27 s on
2 shared cores; the evaluation settings do not change what a run learns):

    tvo train --model linear_1 --objective tvo -K 5 --beta1 0.05 -S 10 --batch-size 24 \\
        --lr 3e-4 --steps 10000 --data binarized-mnist --device cpu --eval-every 2500 \\
        --eval-particles 100 --eval-images 500 --checkpoint-every 5000 --seed 0 \\
        --out runs/sbn-tvo-K5 --quiet
    tvo train --model gaussian --objective tvo -K 5 --beta1 0.02 -S 10 --batch-size 100 \\
        --lr 1e-3 --steps 1000 --data mnist --device cpu --eval-every 500 \\
        --eval-particles 100 --eval-images 500 --checkpoint-every 500 --seed 0 \\
        --out runs/vae-tvo-K5 --quiet

On the first ``--images`` test images (binarised with seed 0 where the data are dynamic, as
``tvo eval`` does): ``log p̂(x)`` by importance sampling from ``q`` with 5000 particles
(``tvo.estimate``), then AIS at the same number of ``log_joint`` evaluations per image (5000:
``T·C`` for the flip kernel, ``C (1 + (T − 1) L)`` for HMC with ``L`` leapfrog steps, each with
a gradient), the SBN's incremental sweep at about the same time, and one longer AIS run as the
best estimate. Then BDMC on ``--bdmc-data`` points simulated from each model at three numbers
of steps. Every row has its time (one process, ``--threads`` threads; the machine's load averages
before and after are recorded, since other work may share its cores).

``--paths`` (issue #27) compares, on the same runs, IWAE-5000, AIS along the geometric path and
along q-paths, and tempered SMC, at about the same number of ``log_joint`` evaluations, with the
BDMC gap of each path on simulated data; it writes ``benchmarks/results/ais/paths.json``:

    python benchmarks/ais_eval.py --paths --sbn runs/sbn-tvo-K5 --vae runs/vae-tvo-K5 \\
        --images 100 --bdmc-data 20 --out benchmarks/results/ais/paths.json

``--hmc-study`` needs no run: AIS on ``LinearGaussian(3, 5)`` with its untrained guide (8 points,
32 chains, T = 1000, several seeds) with the old HMC, the default one and exact transitions, and
the discrete kernels against exact transitions on the enumerable toy; it prints the numbers and
writes ``benchmarks/results/ais/hmc_study.json``:

    python benchmarks/ais_eval.py --hmc-study --seeds 0 1 2 3 4 5 6 7 \\
        --out benchmarks/results/ais/hmc_study.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from tvo.build import load_trained
from tvo.evaluate.kernels import HMC, FlipMH, SBNSweep
from tvo.evaluate.run import (
    evaluate_model,
    evaluate_model_ais,
    evaluate_model_bdmc,
    evaluate_model_smc,
)
from tvo.files import write_atomic
from tvo.runs import Run

# (label, kernel, steps T, chains C): AIS rows per model family. The first rows of each cost
# 5000 log_joint evaluations per image, as IWAE-5000 does.
SBN_ROWS = [
    ("flip", FlipMH(1), 500, 10),
    ("flip", FlipMH(1), 2500, 2),
    ("sbn-sweep", SBNSweep(), 10, 10),
    ("sbn-sweep", SBNSweep(), 50, 2),
    ("sbn-sweep", SBNSweep(), 500, 2),  # the longest run: the best estimate here
]
VAE_ROWS = [
    ("hmc L=10", HMC(leapfrog_steps=10), 50, 10),
    ("hmc L=5", HMC(leapfrog_steps=5), 100, 10),
    ("hmc L=5", HMC(leapfrog_steps=5), 500, 2),
    ("hmc L=5", HMC(leapfrog_steps=5), 4000, 2),  # the longest run
]
SBN_BDMC = [("sbn-sweep", SBNSweep(), steps, 2) for steps in (10, 100, 500)]
VAE_BDMC = [("hmc L=5", HMC(leapfrog_steps=5), steps, 2) for steps in (100, 1000, 4000)]


def kernel_row(label, kernel, steps, chains) -> dict:
    leapfrog = getattr(kernel, "leapfrog_steps", None)
    return {"kernel": label, "steps": steps, "chains": chains, "leapfrog": leapfrog}


def evaluate(run_path: Path, rows, bdmc_rows, images: int, bdmc_data: int, seed: int) -> dict:
    run = Run.open(run_path)
    trained = load_trained(run)
    model, dataset, c = trained.model, trained.dataset, run.config
    record = {"run": str(run_path), "model": c.model, "objective": c.objective, "data": c.data,
              "train_steps": trained.step, "particles": c.particles, "partitions": c.partitions,
              "rows": [], "bdmc": []}  # fmt: skip
    iwae = evaluate_model(model, dataset, "test", 5000, limit=images, seed=seed)
    record["rows"].append({"method": "iwae", "kernel": None, "steps": None, "chains": 5000,
                           "leapfrog": None, "evaluations": 5000, "gradients": 0,
                           "log_px": iwae["log_px"], "stderr": None, "acceptance": None,
                           "seconds": iwae["seconds"]})  # fmt: skip
    print(f"{c.model}: iwae-5000 {iwae['log_px']:.3f} ({iwae['seconds']} s)", flush=True)
    for label, kernel, steps, chains in rows:
        report = evaluate_model_ais(model, dataset, "test", steps, chains, images,
                                    kernel=kernel, seed=seed)  # fmt: skip
        row = {"method": "ais", **kernel_row(label, kernel, steps, chains),
               **{k: report[k] for k in ("evaluations", "gradients", "log_px", "stderr",
                                         "acceptance", "seconds")}}  # fmt: skip
        record["rows"].append(row)
        print(f"{c.model}: ais {label} T={steps} C={chains} {row['log_px']:.3f} ± "
              f"{row['stderr']:.3f}, {row['evaluations']} evaluations ({row['seconds']} s)",
              flush=True)  # fmt: skip
    for label, kernel, steps, chains in bdmc_rows:
        report = evaluate_model_bdmc(model, bdmc_data, steps, chains, kernel=kernel, seed=seed)
        row = {**kernel_row(label, kernel, steps, chains), "num_data": bdmc_data,
               **{k: report[k] for k in ("log_px", "stderr", "upper", "upper_stderr", "gap",
                                         "acceptance", "evaluations", "seconds")}}  # fmt: skip
        record["bdmc"].append(row)
        print(f"{c.model}: bdmc {label} T={steps} C={chains} lower {row['log_px']:.3f} upper "
              f"{row['upper']:.3f} gap {row['gap']:.3f} ({row['seconds']} s)",
              flush=True)  # fmt: skip
    return record


# --paths (issue #27): (label, kernel, steps T, chains C) of the AIS rows, the q values tried,
# (particles N, moves) of SMC, and (kernel, steps, chains) of BDMC, per model family
PATHS = {
    "sbn": {"ais": (FlipMH(1), 500, 10), "smc": (FlipMH(1), 100, 5),
            "bdmc": (FlipMH(1), 500, 2)},
    "vae": {"ais": (HMC(), 50, 10), "smc": (HMC(scale="chains-full"), 100, 1),
            "bdmc": (HMC(), 200, 2)},
}  # fmt: skip
QPATHS = (1.0, 0.999, 0.99, 0.9)


def evaluate_paths(run_path: Path, family: str, images: int, bdmc_data: int, seed: int) -> dict:
    """IWAE-5000, AIS along each q of :data:`QPATHS`, tempered SMC (geometric and the best q),
    and BDMC along each path, on one run's first ``images`` test images."""
    run = Run.open(run_path)
    trained = load_trained(run)
    model, dataset, c = trained.model, trained.dataset, run.config
    settings = PATHS[family]
    record = {"run": str(run_path), "model": c.model, "train_steps": trained.step, "rows": [],
              "bdmc": []}  # fmt: skip
    iwae = evaluate_model(model, dataset, "test", 5000, limit=images, seed=seed)
    record["rows"].append({"method": "iwae", "qpath": None, "evaluations": 5000,
                           "log_px": iwae["log_px"], "stderr": None,
                           "seconds": iwae["seconds"]})  # fmt: skip
    print(f"{c.model}: iwae-5000 {iwae['log_px']:.3f} ({iwae['seconds']} s)", flush=True)
    kernel, steps, chains = settings["ais"]
    best = (1.0, -float("inf"))
    for q in QPATHS:
        report = evaluate_model_ais(model, dataset, "test", steps, chains, images, kernel=kernel,
                                    seed=seed, qpath=q)  # fmt: skip
        row = {"method": "ais", "qpath": q, "kernel": repr(kernel), "steps": steps,
               "chains": chains, **{k: report[k] for k in ("evaluations", "log_px", "stderr",
                                                           "acceptance", "seconds")}}  # fmt: skip
        record["rows"].append(row)
        best = max(best, (q, row["log_px"]), key=lambda v: v[1])
        print(f"{c.model}: ais q={q} T={steps} C={chains} {row['log_px']:.3f} ± "
              f"{row['stderr']:.3f}, {row['evaluations']} evaluations ({row['seconds']} s)",
              flush=True)  # fmt: skip
    kernel, particles, moves = settings["smc"]
    for q in sorted({1.0, best[0]}, reverse=True):
        start = time.perf_counter()
        report = evaluate_model_smc(model, dataset, "test", particles, images, kernel, seed,
                                    qpath=q, moves=moves)  # fmt: skip
        row = {"method": "smc", "qpath": q, "kernel": repr(kernel), "particles": particles,
               "moves": moves,
               **{k: report[k] for k in ("evaluations", "log_px", "acceptance",
                                         "temperatures")},
               "stderr": None, "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
        record["rows"].append(row)
        print(f"{c.model}: smc q={q} N={particles} {row['log_px']:.3f}, "
              f"{row['temperatures']:.1f} temperatures, {row['evaluations']} evaluations "
              f"({row['seconds']} s)", flush=True)  # fmt: skip
    kernel, steps, chains = settings["bdmc"]
    for q in sorted({1.0, best[0]}, reverse=True):
        report = evaluate_model_bdmc(model, bdmc_data, steps, chains, kernel=kernel, seed=seed,
                                     qpath=q)  # fmt: skip
        row = {"qpath": q, "kernel": repr(kernel), "steps": steps, "chains": chains,
               "num_data": bdmc_data, **{k: report[k] for k in ("log_px", "upper", "gap",
                                                                "gap_stderr", "evaluations",
                                                                "seconds")}}  # fmt: skip
        record["bdmc"].append(row)
        print(f"{c.model}: bdmc q={q} T={steps} C={chains} lower {row['log_px']:.3f} upper "
              f"{row['upper']:.3f} gap {row['gap']:.3f} ± {row['gap_stderr']:.3f} "
              f"({row['seconds']} s)", flush=True)  # fmt: skip
    return record


def hmc_study(seeds, steps: int = 1000, chains: int = 32) -> dict:
    """AIS on LinearGaussian(3, 5) with its untrained guide, 8 points: the largest error over
    the points against the closed form, the mean standard error over chains, per kernel and
    seed; and on DiscreteToy(6, 10) (8 points, 10 chains, T = 100) each discrete kernel's
    standard error against exact transitions."""
    import tvo
    from tvo.evaluate import exact_log_marginal
    from tvo.evaluate.exact import EnumeratedPathKernel, GaussianPathKernel
    from tvo.evaluate.kernels import DiscreteGibbs, DiscreteMH
    from tvo.models.toy import DiscreteToy, LinearGaussian

    continuous = {
        "old (eps0 0.05, identity mass, L=10, 1 move)": HMC(
            step_size=0.05, leapfrog_steps=10, moves=1, jitter=0.0, warmup=0, scale="none",
            max_step_size=0.5),
        "default (2 moves of L=5, jitter, warm-up, guide scale)": HMC(),
        "exact transitions": GaussianPathKernel(),
        "default, adaptive schedule": (HMC(), "adaptive"),
        "exact transitions, adaptive schedule": (GaussianPathKernel(), "adaptive"),
    }  # fmt: skip
    rows = []
    model = LinearGaussian(3, 5, seed=0).double()
    torch.manual_seed(0)
    x = model.sample(8)[1]
    exact = model.marginal().log_prob(x).detach()
    for name, kernel in continuous.items():
        kernel, schedule = kernel if isinstance(kernel, tuple) else (kernel, "sigmoid")
        for seed in seeds:
            torch.manual_seed(seed)
            start = time.perf_counter()
            result = tvo.ais(model, x, steps, chains, kernel=kernel, schedule=schedule)
            error = result.log_px - exact
            rows.append({"model": "LinearGaussian(3, 5)", "kernel": name, "seed": seed,
                         "schedule": schedule, "steps": steps, "chains": chains, "points": len(x),
                         "max_abs_error": error.abs().max().item(),
                         "mean_error": error.mean().item(),
                         "mean_stderr": result.stderr.mean().item(),
                         "evaluations": result.evaluations,
                         "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip
            r = rows[-1]
            print(f"{name}: seed {seed}: max |error| {r['max_abs_error']:.3f}, mean error "
                  f"{r['mean_error']:+.3f}, mean SE {r['mean_stderr']:.3f}, "
                  f"{r['evaluations']} evaluations ({r['seconds']} s)", flush=True)  # fmt: skip
    toy = DiscreteToy(6, 10, seed=0).double()
    discrete = {"exact transitions": EnumeratedPathKernel(), "flip": FlipMH(1),
                "gibbs": DiscreteGibbs(), "discrete-mh": DiscreteMH()}  # fmt: skip
    for seed in seeds:
        torch.manual_seed(seed)
        x = toy.sample(8)[1]
        exact = exact_log_marginal(toy, x).detach()
        for name, kernel in discrete.items():
            torch.manual_seed(seed + 1)
            result = tvo.ais(toy, x, 100, 10, kernel=kernel)
            rows.append({"model": "DiscreteToy(6, 10)", "kernel": name, "seed": seed,
                         "steps": 100, "chains": 10, "points": len(x),
                         "max_abs_error": (result.log_px - exact).abs().max().item(),
                         "mean_error": (result.log_px - exact).mean().item(),
                         "mean_stderr": result.stderr.mean().item(),
                         "evaluations": result.evaluations})  # fmt: skip
            r = rows[-1]
            print(
                f"toy {name}: seed {seed}: mean SE {r['mean_stderr']:.3f}, max |error| "
                f"{r['max_abs_error']:.3f}, {r['evaluations']} evaluations",
                flush=True,
            )
    return {"rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sbn", type=Path, help="a trained linear_1 run")
    parser.add_argument("--vae", type=Path, help="a trained gaussian run")
    parser.add_argument("--paths", action="store_true", help="q-paths and SMC (issue #27)")
    parser.add_argument(
        "--hmc-study",
        action="store_true",
        help="the kernels against exact transitions on the toys (issue #27)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7],
                        help="seeds of --hmc-study")  # fmt: skip
    parser.add_argument("--images", type=int, default=100, help="first N test images")
    parser.add_argument("--bdmc-data", type=int, default=50, help="simulated points for BDMC")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ais/ais.json"))
    args = parser.parse_args(argv)
    if not args.hmc_study and (args.sbn is None or args.vae is None):
        parser.error("--sbn and --vae are needed (but for --hmc-study)")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    start, load_before = time.perf_counter(), os.getloadavg()
    try:
        if args.hmc_study:
            models = hmc_study(args.seeds)
        elif args.paths:
            models = {
                "sbn": evaluate_paths(args.sbn, "sbn", args.images, args.bdmc_data, args.seed),
                "vae": evaluate_paths(args.vae, "vae", args.images, args.bdmc_data, args.seed),
            }
        else:
            models = {
                "sbn": evaluate(args.sbn, SBN_ROWS, SBN_BDMC, args.images, args.bdmc_data,
                                args.seed),
                "vae": evaluate(args.vae, VAE_ROWS, VAE_BDMC, args.images, args.bdmc_data,
                                args.seed),
            }  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    record = {"images": args.images, "split": "test", "bdmc_data": args.bdmc_data,
              "seed": args.seed, "threads": args.threads, "cores": os.cpu_count(),
              "load_before": [round(v, 2) for v in load_before],
              "load_after": [round(v, 2) for v in os.getloadavg()],
              "machine": platform.machine(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "seconds": round(time.perf_counter() - start, 1),
              "models": models}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
    print(f"{args.out} ({record['seconds']} s; load average {record['load_before']} before, "
          f"{record['load_after']} after)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
