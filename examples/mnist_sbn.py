"""The main job: train a sigmoid belief network with the TVO on binarized MNIST, on the CPU.

``linear_1`` (200 binary latents), TVO with K = 5 (log schedule, β1 = 0.1), S = 10 particles,
batch 24, Adam 3e-4: the paper's SBN settings, for a few minutes instead of days. Prints the
test log p̂(x) (5000 particles) and writes a run folder with metrics and plots.

    python examples/mnist_sbn.py [--steps 20000] [--test-images 500] [--out runs/NAME]
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from tqdm import tqdm

import tvo
from tvo.data import DataError, load
from tvo.models import create


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="training steps (20000)")
    parser.add_argument("--particles", "-S", type=int, default=10, help="particles S (10)")
    parser.add_argument("--partitions", "-K", type=int, default=5, help="intervals K (5)")
    parser.add_argument("--beta1", type=float, default=0.1, help="first point of the log schedule")
    parser.add_argument("--test-images", type=int, default=500, help="test images to evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="run folder (default runs/mnist-sbn-TIME)")
    args = parser.parse_args(argv)
    if args.steps < 1 or not 1 <= args.test_images <= 10_000:
        parser.error("--steps must be ≥ 1 and --test-images between 1 and 10000")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    out = args.out or Path("runs") / time.strftime("mnist-sbn-%Y%m%d-%H%M%S")
    if out.exists():
        print(f"error: {out} exists; choose another --out", file=sys.stderr)
        return 2
    try:
        objective = tvo.TVO(K=args.partitions, schedule="log", beta1=args.beta1)
        data = load("binarized-mnist")
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True)
    torch.manual_seed(args.seed)
    model = create("linear_1", data_mean=data.data_mean)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-4)
    print(f"{objective!r}, S = {args.particles}, linear_1 on binarized-mnist; run folder {out}")

    rows, start = [], time.perf_counter()
    valid = data.valid[:100]
    bar = tqdm(range(1, args.steps + 1), desc="training", mininterval=0.5)
    running = None
    for step in bar:
        x = data.batch("train", torch.randint(len(data.train), (24,)))
        result = objective(model, x, args.particles)
        optimiser.zero_grad()
        result.loss.backward()
        optimiser.step()
        value = result.estimate.mean().item()
        running = value if running is None else 0.99 * running + 0.01 * value
        if step % 1000 == 0 or step == args.steps:
            val = tvo.estimate(model, valid, num_particles=500).log_px.mean().item()
            seconds = round(time.perf_counter() - start, 2)
            rows.append(
                {"step": step, "seconds": seconds, "train_tvo": round(running, 3),
                 "valid_log_px": round(val, 3)}
            )  # fmt: skip
            bar.set_postfix(tvo=f"{running:.1f}", valid_log_px=f"{val:.1f}")
    train_seconds = time.perf_counter() - start

    print(f"evaluating on the first {args.test_images} test images, 5000 particles each …")
    test = data.test[: args.test_images]
    final = tvo.estimate(model, test, 5000, partition=objective.partition, chunk_size=500)
    summary = {"steps": args.steps, "train_seconds": round(train_seconds, 1),
               "test_images": args.test_images, "particles": 5000,
               **{k: round(v.mean().item(), 3) for k, v in final._asdict().items()}}  # fmt: skip
    write_outputs(out, model, rows, summary, objective)
    print(f"\ntest log p(x) = {summary['log_px']:.2f}   KL(q||p) = {summary['kl']:.2f}   "
          f"ELBO = {summary['elbo']:.2f}   TVO_L = {summary['tvo_lower']:.2f}   "
          f"TVO_U = {summary['tvo_upper']:.2f}   ({train_seconds:.0f} s of training)")  # fmt: skip
    print(f"metrics, summary and plots in {out}/")
    return 0


def write_outputs(out: Path, model, rows, summary, objective) -> None:
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["train_tvo"] for r in rows], label="training TVO (moving average)")
    ax.plot(steps, [r["valid_log_px"] for r in rows], label="validation log p̂(x), 500 particles")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per image")
    betas = ", ".join(f"{b:.3g}" for b in objective.partition.tolist())
    ax.set_title(f"linear_1 SBN, binarized MNIST, TVO with β = [{betas}]", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=120)
    plt.close(fig)

    torch.manual_seed(0)
    with torch.no_grad():
        z, x = model.sample(64)
        means = torch.sigmoid(model.decoders[0](2 * z[0] - 1))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, images, title in ((axes[0], x, "samples x ~ p(x)"), (axes[1], means, "E[x | z]")):
        tiles = images.reshape(4, 16, 28, 28).permute(0, 2, 1, 3).reshape(4 * 28, 16 * 28)
        ax.imshow(tiles.numpy(), cmap="gray")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
