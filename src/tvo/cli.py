"""The ``tvo`` command: ``train``, ``eval``, ``compare``, ``plot``, ``sweep``, ``report`` and
``data``.

A thin shell over the library. Bad input (an unknown name, a value out of range, a folder that
is not a run, a run that exists) is reported in one line with exit status 2 before any work
starts, and nothing already written is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from tvo import __version__, runtime
from tvo import config as config_module
from tvo.config import ConfigError
from tvo.data import DATASETS, DataError
from tvo.models import ModelError
from tvo.runs import Run, RunError
from tvo.settings import Setting, help_text
from tvo.sweep.plan import DEFAULT_GROUP


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def add_train(sub) -> None:
    description = (
        "Train a model with an objective; every setting is saved in the run folder. "
        "Precedence: defaults < --preset < --config < flags."
    )
    p = sub.add_parser(  # defaults are None so that a preset or file can fill them: say them here
        "train", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train a model (or resume a run)", description=description,
    )  # fmt: skip
    for setting in config_module.SETTINGS.values():  # one flag per declared setting
        if setting.flag:
            add_setting(p, setting)
    p.add_argument("--config", help="a TOML file of settings (names as in config.json)")
    p.add_argument("--out", type=Path, help="run folder (default runs/OBJECTIVE-MODEL-TIME)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last checkpoint (with --steps or "
                   "--epochs: to that larger length)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar; a line per evaluation")


def add_setting(p: argparse.ArgumentParser, setting: Setting) -> None:
    """The flag of a declared setting (``tvo.settings``), default ``None``: a preset, a
    config file or the setting's own default fills it in when it is not given."""
    options = (*setting.flags, setting.option)
    if setting.kind is bool:
        p.add_argument(*options, dest=setting.name, action="store_const", const=True,
                       help=help_text(setting))  # fmt: skip
        return
    parse = setting.parse or setting.kind
    p.add_argument(*options, dest=setting.name, type=parse, metavar=setting.metavar,
                   help=help_text(setting))  # fmt: skip


# The settings tvo train takes as flags (--preset is resolve's first argument).
FLAG_FIELDS = tuple(name for name, s in config_module.SETTINGS.items()
                    if s.flag and name != "preset")  # fmt: skip
LENGTH = ("steps", "epochs")  # what --resume may change
RESUMABLE = (*LENGTH, "threads")  # what --resume may be given


def at_least_one(args, *names: str) -> None:
    """A ``ConfigError`` for the first of the options ``names`` given below 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1, got {value}")


def cmd_train(args) -> int:
    from tvo.build import build, build_run
    from tvo.fit import continued
    from tvo.train import train

    flags = {name: getattr(args, name) for name in FLAG_FIELDS}
    if args.resume is not None:
        given = [f"--{k.replace('_', '-')}" for k, v in flags.items()
                 if v is not None and k not in RESUMABLE]  # fmt: skip
        given += [f"--{k}" for k in ("config", "preset", "out") if getattr(args, k) is not None]
        given += ["--overwrite"] if args.overwrite else []
        if given:
            raise ConfigError(f"--resume continues a run with its own settings (only --steps or "
                              f"--epochs may grow); drop {' '.join(given)}")  # fmt: skip
        run = Run.open(args.resume)
        config = continued(run, run.config, args.steps, args.epochs)  # written once it resumes
        prepared = build_run(run)
        threads = runtime.set_threads(args.threads)  # given: used, and said if not recorded
    else:
        config = config_module.resolve(args.preset, args.config, **flags)
        threads = runtime.set_threads(config.threads or runtime.DEFAULT_THREADS)  # flag or file
        config = dataclasses.replace(config, threads=threads)  # recorded: resumes use it
        prepared = build(config)  # loads the data: errors stop here, before the run exists
        out = args.out or Path("runs") / time.strftime(
            f"{config.objective}-{config.model}-%Y%m%d-%H%M%S"
        )
        run = Run.create(out, config, overwrite=args.overwrite)
    used = threads or config.threads or torch.get_num_threads()
    print(f"run {run.path}: {run.label()}, {config.model} on {config.data}, "
          f"device {prepared.device}, {used} thread{'s' if used > 1 else ''}",
          flush=True)  # fmt: skip
    summary = train(run, quiet=args.quiet, prepared=prepared, threads=threads)
    if summary["signal"] is not None:
        return 128 + summary["signal"]  # 130 for SIGINT, 143 for SIGTERM: not a finished run
    if summary["steps"] == summary["total_steps"]:
        values = ", ".join(
            f"{k} {summary[k]:.2f}" for k in ("log_px", "kl", "elbo") if k in summary
        )
        print(f"done: {summary['steps']} steps in {summary['seconds']:.0f} s; "
              f"{summary.get('split', 'eval')} {values}")  # fmt: skip
        where = shlex.quote(str(run.path))
        print(f"run folder {run.path}: tvo eval {where} ; tvo plot {where}")
    return 0


def add_eval(sub) -> None:
    p = sub.add_parser("eval", formatter_class=Formatter, help="evaluate a run's model",
                       description="log p̂(x), KL̂(q‖p), ELBO and the TVO bounds at the run's "
                       "partition, with many particles per image (--method is); or log p̂(x) by "
                       "annealed importance sampling (--method ais), or the BDMC bounds on data "
                       "simulated from the model (--method bdmc), or tempered SMC with an "
                       "adaptive schedule (--method smc).")  # fmt: skip
    p.add_argument("run", type=Path, metavar="RUN_DIR")
    p.add_argument("--method", default="is", choices=("is", "ais", "bdmc", "smc"),
                   help="importance sampling from q, annealed importance sampling, "
                   "bidirectional Monte Carlo, or tempered sequential Monte Carlo")  # fmt: skip
    p.add_argument("--split", default="test", help="train, valid or test")
    p.add_argument("--particles", type=int, default=5000,
                   help="particles per image (is, smc)")  # fmt: skip
    p.add_argument("--limit", type=int, help="evaluate the first N images only (bdmc: N "
                   "simulated points, default 100)")  # fmt: skip
    p.add_argument("--chunk-size", type=int,
                   help="particles drawn at a time (default: about 2500 particles in all per "
                   "chunk on the CPU, 1000 per image elsewhere)")  # fmt: skip
    p.add_argument("--ais-steps", type=int, default=100,
                   help="intermediate distributions T (ais, bdmc)")  # fmt: skip
    p.add_argument("--chains", type=int, default=10, help="AIS chains per image (ais, bdmc)")
    p.add_argument("--schedule", default="sigmoid",
                   choices=("sigmoid", "linear", "log", "adaptive", "run"),
                   help="AIS β schedule; adaptive: spaced evenly in thermodynamic length by a "
                   "pilot SMC of 32 particles on each pass's images; run: the run's own "
                   "partition, stretched to the steps")  # fmt: skip
    p.add_argument("--kernel", default="auto",
                   choices=("auto", "hmc", "flip", "gibbs", "discrete-mh", "independent",
                            "sbn-sweep"),
                   help="Markov kernel (ais, bdmc, smc); auto follows the latent: HMC for "
                   "continuous latents, sbn-sweep for linear_1, single-site flips for other "
                   "binary latents, gibbs for categorical (one-hot) ones and products of "
                   "binary and one-hot parts")  # fmt: skip
    p.add_argument(
        "--leapfrog",
        type=int,
        default=5,
        help="HMC leapfrog steps per move, two moves a step (ais, bdmc, smc)",
    )
    p.add_argument("--qpath", type=float, default=1.0,
                   help="annealing path: q-path exponent in [0, 1]; 1 is the geometric path, "
                   "0 the mixture (ais, bdmc, smc)")  # fmt: skip
    p.add_argument("--cess", type=float, default=0.9,
                   help="SMC: the conditional ESS, as a fraction of the particles, that each "
                   "next temperature keeps (smc)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the particles (and binarisation)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    return torch.get_num_threads()


def run_threads(args, runs) -> None:
    """A command on runs uses the threads the (first) run recorded, so that its numbers are
    the run's own, unless ``--threads`` is given; runs that recorded none: ``auto``."""
    recorded = runs[0].config.threads if runs else None
    runtime.set_threads(args.threads or recorded or runtime.DEFAULT_THREADS)


def cmd_eval(args) -> int:
    run = Run.open(args.run)
    run_threads(args, [run])
    diverged = run.diverged()
    if diverged is not None:  # evaluated as asked, but never mistaken for the run's result
        print(f"note: {run.path} diverged ({diverged['diverged']}); what follows evaluates its "
              "last checkpoint, from before that", file=sys.stderr)  # fmt: skip
    at_least_one(args, "particles", "chunk_size", "ais_steps", "chains", "leapfrog", "limit")
    config_module._check_choice("split", args.split, config_module.EVAL_SPLITS)
    if args.method != "is":
        return _eval_ais(run, args)  # ais, bdmc and smc
    from tvo.evaluate.run import evaluate_run

    report = evaluate_run(run, args.split, args.particles, args.limit, args.chunk_size, args.seed,
                          progress=True)  # fmt: skip
    report = {**report, "method": "is", "seed": args.seed}  # its limit: the images evaluated
    saved = run.write_evaluation(report)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"saved in {saved}")
    print(f"{run.path} at step {report['step']}: {args.split}, {report['num_images']} "
          f"images, {args.particles} particles each ({report['seconds']} s)")  # fmt: skip
    names = {"log_px": "log p(x)", "kl": "KL(q||p)", "elbo": "ELBO",
             "tvo_lower": "TVO lower", "tvo_upper": "TVO upper"}  # fmt: skip
    for key, name in names.items():
        print(f"  {name:>10}  {report[key]:10.3f}")
    if report["partition"] is None:
        print("  (the run has no partition: the TVO bounds are at [0, 1], the ELBO and the EUBO)")
    return 0


def _eval_ais(run: Run, args) -> int:
    """``tvo eval --method ais|bdmc``: a progress bar over the AIS steps, then the estimate."""
    from tvo.evaluate.run import evaluate_run_ais

    report = evaluate_run_ais(run, args.method, args.split, args.ais_steps, args.chains,
                              args.limit, args.schedule, args.kernel, args.seed,
                              leapfrog_steps=args.leapfrog, progress=True, qpath=args.qpath,
                              particles=args.particles, target_cess=args.cess)  # fmt: skip
    report = {**report, "seed": args.seed}  # its limit: the images (points) evaluated
    saved = run.write_evaluation(report)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"saved in {saved}")
    where = "simulated points" if args.method == "bdmc" else f"{args.split} images"
    path = "" if args.qpath == 1 else f", q-path q = {args.qpath:g}"
    if args.method == "smc":
        settings = (f"{args.particles} particles, {report['temperatures']:.1f} temperatures on "
                    f"average (conditional ESS {args.cess:g})")  # fmt: skip
    else:
        settings = f"T = {args.ais_steps} steps, {args.chains} chains, {args.schedule} schedule"
    print(f"{run.path} at step {report['step']}: {args.method}, {report['num_images']} {where}, "
          f"{settings}{path} ({report['seconds']} s)")  # fmt: skip

    def with_se(value, se) -> str:
        return f"{value:10.3f}" + ("" if se is None else f" ± {se:.3f}")

    if args.method == "ais":
        print(f"  {'log p(x)':>10}  {with_se(report['log_px'], report['stderr'])}  (AIS, a "
              "stochastic lower bound)")  # fmt: skip
    elif args.method == "smc":
        print(f"  {'log p(x)':>10}  {with_se(report['log_px'], None)}  (tempered SMC, a "
              "stochastic lower bound)")  # fmt: skip
    else:
        from tvo.evaluate.run import bdmc_lines

        print("\n".join(bdmc_lines(report)))
    if report["acceptance"] is not None:
        print(f"  acceptance rate {report['acceptance']:.2f}; {report['evaluations']} log_joint "
              "evaluations per image")  # fmt: skip
    return 0


def add_compare(sub) -> None:
    p = sub.add_parser("compare", formatter_class=Formatter, help="a table of runs",
                       description="Each run's settings, its latest evaluation during training "
                       "and its test result (a sweep's final.json, else the newest tvo eval), "
                       "then, for settings run with several seeds, their mean ± sd. A folder "
                       "that is not a run stands for the runs in it (a sweep's "
                       "output). Runs of the same settings and seed (the same run in two "
                       "folders) are counted once.")  # fmt: skip
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--against", metavar="SETTING",
                   help="add each setting's difference from this one (its label as printed, "
                   "or a part only it contains) in test log_px: paired t over shared seeds, "
                   "else Welch's t")  # fmt: skip


def cmd_compare(args) -> int:
    from tvo import report

    runs = report.expand(args.runs)
    header = ("run", "model", "objective", "S", "K", "beta1", "seed", "steps", "valid log_px",
              "test log_px", "test kl", "test particles")  # fmt: skip
    table = [header]
    for run in runs:
        c, rows = run.config, run.read_metrics()
        last = next((r for r in reversed(rows) if r.get("log_px") is not None), {})
        done = rows[-1]["step"] if rows else 0
        total = c.steps if c.steps is not None else f"{c.epochs} ep"
        k = "-" if c.partitions is None else str(c.partitions)
        beta1 = f"{c.beta1:g}" if c.beta1 is not None and c.schedule == "log" else "-"
        test = report.test_result(run) or {}
        tested = [_num(test.get("log_px")), _num(test.get("kl")),
                  str(test.get("particles", "-"))]  # fmt: skip
        if test.get("diverged") or run.diverged():
            tested = ["diverged", "-", "-"]
        settings = [c.model, c.objective, str(c.particles), k, beta1, str(c.seed),
                    f"{done}/{total}", _num(last.get("log_px"))]  # fmt: skip
        table.append((str(run.path), *settings, *tested))
    kept, repeats = report.unique(runs)
    settings = report.by_setting(kept)
    against = None if args.against is None else report.find_setting(list(settings), args.against)
    _print_table(table)
    for repeat, original in repeats:
        print(f"{repeat.path} repeats {original.path} (same settings and seed): counted once")
    groups = {label: members for label, members in settings.items()
              if len(members) > 1 or label == against}  # fmt: skip
    if groups:
        print()
        rows = [("setting", "seeds", "test log_px", "test kl")]
        for label, members in groups.items():
            tests = [t for t in map(report.test_result, members)
                     if t is not None and not t.get("diverged")]  # fmt: skip
            cells = [report.mean_sd([t["log_px"] for t in tests]),
                     report.mean_sd([t["kl"] for t in tests])]  # fmt: skip
            rows.append((label, f"{len(tests)}/{len(members)}", *cells))
        _print_table(rows)
    if against is not None:
        values = {label: {r.config.seed: t["log_px"] for r in members
                          if (t := report.test_result(r)) is not None and not t.get("diverged")}
                  for label, members in settings.items()}  # fmt: skip
        print()
        print(report.DIFFERENCE_NOTE.format(against=against))
        _print_table([report.DIFFERENCE_HEADER] +
                     [(label, *report.difference_cells(d))
                      for label, d in report.difference_rows(values, against)])  # fmt: skip
    return 0


def _print_table(table) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.rjust(w) if i else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))))  # fmt: skip


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def add_plot(sub) -> None:
    p = sub.add_parser("plot", formatter_class=Formatter, help="PNG figures of runs",
                       description="Learning curves of all runs (log p̂(x) and KL against step), "
                       "and per run: samples and reconstructions, and the TVO integrand with the "
                       "rectangles of the run's partition.")  # fmt: skip
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", type=Path, help="folder for the PNGs (default: RUN_DIR/plots of the "
                   "first run)")  # fmt: skip
    p.add_argument("--images", type=int, default=100, help="test images for the integrand")
    p.add_argument("--particles", type=int, default=1000, help="particles for the integrand")


def cmd_plot(args) -> int:
    from tvo import plots
    from tvo.build import load_trained

    runs = [Run.open(path) for path in args.runs]
    run_threads(args, runs)
    at_least_one(args, "images", "particles")
    out = args.out or runs[0].path / "plots"
    labels = plots.distinct_labels([f"{r.label()} seed={r.config.seed}" for r in runs],
                                   [r.path.name for r in runs])  # fmt: skip
    written = [plots.learning_curves([(label, r.read_metrics()) for label, r in zip(labels, runs)],
                                     out / "learning_curves.png")]  # fmt: skip
    for i, run in enumerate(runs):
        trained = load_trained(run)
        prefix = "" if len(runs) == 1 else f"{i + 1}-{run.path.name}-"
        title = f"{run.path.name}: {run.label()} seed={run.config.seed}, step {trained.step}"
        torch.manual_seed(0)
        test = trained.dataset.evaluation_images("test", args.images)
        written.append(plots.samples_and_reconstructions(
            trained.model, test, out / f"{prefix}samples.png", title=title))  # fmt: skip
        written.append(plots.integrand(trained.model, test, trained.partition,
                                       out / f"{prefix}integrand.png",
                                       num_particles=args.particles, title=title))  # fmt: skip
    for path in written:
        print(path)
    return 0


def add_variance(sub) -> None:
    p = sub.add_parser("variance", formatter_class=Formatter,
                       help="gradient SNR and variance of estimators at a run",
                       description="The mean, variance and signal-to-noise ratio |E g|/std g of "
                       "each estimator's gradient, for θ (generative) and φ (inference) "
                       "separately (tvo.diagnostics), at the run's parameters on its data: a "
                       "table, or JSON lines (--json); with --out also variance.jsonl and "
                       "variance.png (SNR against S).")  # fmt: skip
    p.add_argument("run", type=Path, metavar="RUN_DIR")
    p.add_argument("--objectives", default="tvo,vimco,reinforce,rws,ovis,renyi",
                   help="comma-separated; the run's own with its settings, others with their "
                   "defaults")  # fmt: skip
    p.add_argument("--particles", type=int, nargs="+", default=[2, 10, 50], help="values of S")
    p.add_argument("--repeats", type=int, default=100, help="draws of each gradient")
    p.add_argument("--images", type=int,
                   help="data points of the gradient, the first of --split (default: the run's "
                   "batch size)")  # fmt: skip
    p.add_argument("--split", default="train", help="train, valid or test")
    p.add_argument("--seed", type=int, default=0, help="seed of the particles")
    p.add_argument("--json", action="store_true", help="JSON lines instead of the table")
    p.add_argument("--out", type=Path, help="folder for variance.jsonl and variance.png")


def cmd_variance(args) -> int:
    from tvo import diagnostics, plots
    from tvo.build import load_trained

    run = Run.open(args.run)
    at_least_one(args, "images")
    if args.repeats < 2 or min(args.particles) < 1:
        raise ConfigError(
            f"--repeats must be ≥ 2 and --particles ≥ 1, got --repeats "
            f"{args.repeats}, --particles {' '.join(map(str, args.particles))}"
        )
    config_module._check_choice("split", args.split, config_module.EVAL_SPLITS)
    trained = load_trained(run)
    names = [n.strip() for n in args.objectives.split(",") if n.strip()]
    chosen = diagnostics.run_objectives(trained, names, args.particles)
    generator = torch.Generator().manual_seed(args.seed)
    x = trained.dataset.evaluation_images(args.split, args.images or trained.config.batch_size,
                                          generator)  # fmt: skip
    if not args.json:
        print(f"{run.path} at step {trained.step}: {len(x)} {args.split} images, "
              f"{args.repeats} draws")  # fmt: skip
        print(f"{'objective':>14} {'S':>4} {'θ SNR':>9} {'φ SNR':>9} {'θ variance':>11} "
              f"{'φ variance':>11} {'s':>5}")  # fmt: skip
    records = []
    for name, objective, partition in chosen:
        for S in args.particles:
            start = time.perf_counter()
            stats = diagnostics.gradient_stats(trained.model, objective, x, S, args.repeats,
                                               args.seed, partition)  # fmt: skip
            line = {**diagnostics.record(name, S, stats), "images": len(x), "split": args.split,
                    "step": trained.step, "run": str(run.path),
                    "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
            records.append(line)
            if args.json:
                print(json.dumps(line), flush=True)
            else:
                print(f"{name:>14} {S:>4} {line['theta_snr']:>9.3g} {line['phi_snr']:>9.3g} "
                      f"{line['theta_variance']:>11.3g} {line['phi_variance']:>11.3g} "
                      f"{line['seconds']:>5.0f}", flush=True)  # fmt: skip
    if args.out is not None:
        from tvo.files import write_atomic

        text = "".join(json.dumps(r) + "\n" for r in records)
        write_atomic(args.out / "variance.jsonl", lambda tmp: tmp.write_text(text))
        figure = plots.snr_against_particles(
            records, args.out / "variance.png", title=f"{run.path.name}, step {trained.step}"
        )
        if not args.json:
            print(f"wrote {args.out / 'variance.jsonl'} and {figure}")
    return 0


def add_sweep(sub) -> None:
    p = sub.add_parser("sweep", formatter_class=Formatter, help="run a grid of runs",
                       description="Every run of a sweep file (benchmarks/sweeps/*.toml), "
                       "several at once; finished runs are skipped and unfinished ones resumed, "
                       "so running the same command again after a stop continues the "
                       "sweep.")  # fmt: skip
    p.add_argument("config", type=Path, help="the sweep file (TOML)")
    p.add_argument("--runs", "--out", dest="out", type=Path,
                   help="folder of the runs, as tvo report --runs takes it (default: the file's "
                   "out, else results/CONFIG_NAME); --out is its former name")  # fmt: skip
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: processes of this machine; ray: Ray tasks on a Ray cluster "
                   "(pip install 'tvo[ray]'; --out must be a folder every node sees)")  # fmt: skip
    p.add_argument("--address",
                   help="ray: the cluster (auto, or HOST:PORT of its head; default: start Ray "
                   "on this machine)")  # fmt: skip
    p.add_argument("--gpus-per-task", type=float, default=0.0,
                   help="ray: GPUs per task, a fraction shares a GPU (0: CPU only)")  # fmt: skip
    p.add_argument("--jobs", type=int,
                   help="units of work at a time (default: local, the CPU cores; ray, what the "
                   "cluster's CPUs and GPUs hold)")  # fmt: skip
    p.add_argument("--threads", type=int,
                   help="torch threads per unit (default: local, cores / jobs; ray, 1); on Ray "
                   "also the CPUs a task asks for")  # fmt: skip
    p.add_argument("--group", type=int, default=DEFAULT_GROUP,
                   help="train up to this many compatible runs together in one process "
                   "(their settings equal but seed, lr, beta1, partition; see tvo.ensemble); "
                   "1: each run alone (default: %(default)s, chosen by "
                   "benchmarks/ensemble_speed.py)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state only")


def given_command(args) -> str:
    """The command line this invocation was given (quoted for a shell): what continues it."""
    return shlex.join(["tvo", *map(str, args.argv if args.argv is not None else sys.argv[1:])])


def cmd_sweep(args) -> int:
    from tvo import sweep as sweep_module

    at_least_one(args, "jobs", "threads", "group")
    if args.executor == "local" and (args.address is not None or args.gpus_per_task):
        raise ConfigError("--address and --gpus-per-task are for --executor ray")
    if args.gpus_per_task < 0:
        raise ConfigError(f"--gpus-per-task must be ≥ 0, got {args.gpus_per_task:g}")
    if args.executor == "ray":
        from tvo.sweep import ray as executor

        executor.require_ray()  # before any file is written
    sweep = sweep_module.load(args.config)
    out = args.out or sweep.out or Path("results") / args.config.stem
    if args.dry_run:
        for name in sweep.runs:
            print(f"{sweep_module.status(out / name):>8}  {name}")
        print(f"{len(sweep.runs)} runs in {len(sweep.experiments)} experiments, under {out}")
        return 0
    try:
        if args.executor == "ray":
            failed = executor.run(sweep, out, args.jobs, args.threads, group=args.group,
                                  address=args.address,
                                  gpus_per_task=args.gpus_per_task)  # fmt: skip
        else:
            failed = sweep_module.run(sweep, out, args.jobs, args.threads, group=args.group)
    except KeyboardInterrupt:
        print(f"tvo sweep: stopped; continue with: {given_command(args)}", file=sys.stderr)
        return 130
    if failed:
        print(f"tvo sweep: {failed} run(s) failed; their sweep.log says why", file=sys.stderr)
        return 1
    print(f"sweep done: {out}; write the report with: tvo report {_quote(args.config)} --runs "
          f"{_quote(out)} (or compare its runs: tvo compare {_quote(out)})")  # fmt: skip
    return 0


def _quote(path: Path) -> str:
    """``path`` as a shell word (quoted where it holds spaces or other special characters)."""
    return shlex.quote(str(path))


def add_report(sub) -> None:
    p = sub.add_parser("report", formatter_class=Formatter, help="results of a sweep",
                       description="Per experiment of a sweep file, each setting's final "
                       "metrics: mean ± standard deviation over its seeds, as Markdown (the "
                       "paper's document: python benchmarks/paper_report.py FILE)")  # fmt: skip
    p.add_argument("config", type=Path, help="the sweep file (TOML)")
    p.add_argument("--runs", type=Path,
                   help="folder of the runs (default: the file's out, else "
                   "results/CONFIG_NAME)")  # fmt: skip
    p.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--against", metavar="SETTING",
                   help="add each setting's difference from this one (its label as in the "
                   "table, or a part only it contains) in test log p(x): paired t over shared "
                   "seeds, else Welch's t")  # fmt: skip


def cmd_report(args) -> int:
    from tvo import report
    from tvo import sweep as sweep_module
    from tvo.files import write_atomic

    sweep = sweep_module.load(args.config)
    runs = args.runs or sweep.out or Path("results") / args.config.stem
    if not runs.is_dir():
        raise ConfigError(f"no runs at {runs}: run tvo sweep {shlex.quote(str(args.config))} "
                          "first, or pass --runs")  # fmt: skip
    if args.out is not None and args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a folder; give the path of the Markdown file")
    if args.out is not None and args.out.exists() and not args.overwrite:
        raise ConfigError(f"{args.out} exists; pass --overwrite to replace it")
    text = report.document(sweep, runs, against=args.against)
    if args.out is None:
        print(text, end="")
    else:
        write_atomic(args.out, lambda tmp: tmp.write_text(text))
        print(args.out)
    return 0


def add_data(sub) -> None:
    p = sub.add_parser("data", formatter_class=Formatter, help="prepare and describe a dataset")
    p.add_argument("name", help=f"{', '.join(DATASETS)}, or a .npz/.npy path")
    p.add_argument("--root", help="local files of the dataset")


def cmd_data(args) -> int:
    from tvo.data.__main__ import main as data_main

    return data_main([args.name] + (["--root", args.root] if args.root else []))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tvo", description="Train and evaluate deep generative "
                                  "models with the thermodynamic variational objective and its "
                                  "family.", formatter_class=Formatter)  # fmt: skip
    top.add_argument("--version", action="version", version=f"tvo {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        add_train,
        add_eval,
        add_compare,
        add_plot,
        add_sweep,
        add_report,
        add_data,
        add_variance,
    ):
        add(sub)
    for name, command in sub.choices.items():
        # a sweep's --threads is per run (see tvo sweep --help); train's is a setting of the run
        if name not in ("sweep", "train"):
            command.add_argument("--threads", help=runtime.THREADS_HELP)
    return top


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "compare": cmd_compare, "plot": cmd_plot,
            "sweep": cmd_sweep, "report": cmd_report, "data": cmd_data,
            "variance": cmd_variance}  # fmt: skip


def main(argv=None) -> int:
    from tvo.evaluate.run import EvaluationError
    from tvo.train import NonFiniteError

    args = parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)  # for hints that repeat the command
    try:
        runtime.configure_from_environment()
        if args.command in ("train", "eval", "plot"):  # a run's recorded count, or the flag's
            runtime.check_threads(args.threads)
        else:
            runtime.set_threads(getattr(args, "threads", None) or (
                None if args.command == "sweep" else runtime.DEFAULT_THREADS))  # fmt: skip
    except ValueError as error:
        print(f"tvo {args.command}: error: {error}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, DataError, RunError, ModelError) as error:  # the user's input
        print(f"tvo {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (NonFiniteError, EvaluationError) as error:
        print(f"tvo {args.command}: stopped: {error}", file=sys.stderr)
        return 1
    except MemoryError as error:  # the estimate before any work (or torch's own)
        print(f"tvo {args.command}: error: {error or 'out of memory'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, not at the next checkpoint
        print(f"tvo {args.command}: interrupted; what was written before is intact (every file "
              "is written whole), and a run resumes from its last checkpoint with tvo train "
              "--resume", file=sys.stderr)  # fmt: skip
        return 130
    except OSError as error:  # disk full, read-only folder: what was written before is intact
        where = f" {error.filename}" if error.filename else ""
        reason = error.strerror or error
        print(f"tvo {args.command}: error: could not write{where}: {reason}; files written "
              "before are intact", file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
