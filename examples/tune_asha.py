"""Search the TVO's β1 (log-uniform) and K with Ray Tune and ASHA early stopping.

Each trial trains a ``linear_1`` sigmoid belief network on binarized MNIST with ``tvo.tune``'s
trainable (tvo's own trainer, its run folder and checkpoints) and reports the validation
log p̂(x) at every evaluation; ASHA stops the trials that fall behind at 500 and 1,000 steps.
Eight trials of 2,000 steps took 2 min 19 s on 2 CPU cores (ASHA stopped four of them early).
At the end the best trial's settings, its validation log p̂(x) and its run folder (its last
Tune checkpoint: ``tvo eval``, ``tvo plot`` and ``tvo.load`` read it) are printed.

Run: ``python examples/tune_asha.py`` (``pip install 'tvo[ray]'``); on a Ray cluster,
``--address auto --storage /shared/path``.
"""

import argparse
import os

from ray import tune
from ray.tune.schedulers import ASHAScheduler

import tvo.tune


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="binarized-mnist", help="dataset (binarized-mnist)")
    parser.add_argument("--model", default="linear_1", help="model (linear_1)")
    parser.add_argument("--steps", type=int, default=2_000, help="steps per trial (2000)")
    parser.add_argument("--eval-every", type=int, default=250, help="steps between reports")
    parser.add_argument("--eval-images", type=int, default=500, help="validation images (500)")
    parser.add_argument("--batch-size", type=int, default=24, help="batch size (24)")
    parser.add_argument("--samples", type=int, default=8, help="trials (8)")
    parser.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs and threads (1)")
    parser.add_argument("--address", help="a Ray cluster (auto, HOST:PORT); default: this machine")
    parser.add_argument("--storage", default="tune-results",
                        help="Tune's storage path: one every node sees")  # fmt: skip
    args = parser.parse_args()
    if args.address:
        import ray

        ray.init(address=args.address)
    base = {"data": args.data, "model": args.model, "objective": "tvo", "schedule": "log",
            "particles": 10, "batch_size": args.batch_size, "lr": 1e-3, "steps": args.steps,
            "eval_every": args.eval_every, "log_every": args.eval_every,
            "checkpoint_every": args.eval_every, "eval_particles": 100,
            "eval_images": args.eval_images}  # fmt: skip
    space = {"beta1": tune.loguniform(1e-3, 0.5), "partitions": tune.choice([2, 5, 10])}
    asha = ASHAScheduler(time_attr="step", max_t=args.steps, grace_period=2 * args.eval_every,
                         reduction_factor=2)  # fmt: skip
    trainable = tune.with_parameters(tvo.tune.trainable, base=base)
    tune_config = tune.TuneConfig(metric=tvo.tune.METRIC, mode=tvo.tune.MODE,
                                  num_samples=args.samples, scheduler=asha)  # fmt: skip
    storage = tune.RunConfig(storage_path=os.path.abspath(args.storage), name="tvo-asha")
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": args.cpus_per_trial}),
                       param_space=space, tune_config=tune_config, run_config=storage)  # fmt: skip
    grid = tuner.fit()
    print(f"\n{'beta1':>8} {'K':>3} {'steps':>6} {'valid log p(x)':>15}")
    for result in sorted(grid, key=lambda r: -r.metrics["log_px"]):
        config, metrics = result.config, result.metrics
        print(f"{config['beta1']:8.4g} {config['partitions']:3d} {metrics['step']:6d} "
              f"{metrics['log_px']:15.2f}")  # fmt: skip
    best = grid.get_best_result()
    print(f"best: beta1 = {best.config['beta1']:.4g}, K = {best.config['partitions']}: valid "
          f"log p(x) = {best.metrics['log_px']} at step {best.metrics['step']} "
          f"({best.checkpoint.path})")  # fmt: skip


if __name__ == "__main__":
    main()
