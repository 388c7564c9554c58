#!/usr/bin/env bash
# The main job: train the paper's linear_1 SBN with the TVO on binarized MNIST on the CPU
# (20,000 steps, 1 to 5 minutes on 2 cores, the slowest on a shared machine), evaluate it on
# test images with 5000 particles, and draw its plots. DEMO_STEPS and DEMO_TEST_IMAGES shorten
# it; DEMO_THREADS (default 2) sets the torch threads: the README's numbers are at 2, another
# count sums in another order and changes their last digits.
set -euo pipefail
STEPS=${DEMO_STEPS:-20000}
TEST_IMAGES=${DEMO_TEST_IMAGES:-500}
THREADS=${DEMO_THREADS:-2}
RUN=${DEMO_RUN:-runs/mnist-sbn-$(date +%Y%m%d-%H%M%S)}

echo "torch threads: $THREADS (DEMO_THREADS)"
tvo train --model linear_1 --data binarized-mnist --objective tvo -K 5 --schedule log \
    --beta1 0.1 -S 10 --batch-size 24 --lr 3e-4 --steps "$STEPS" \
    --eval-every 2000 --eval-images 100 --eval-particles 500 --out "$RUN" --threads "$THREADS"
echo
echo "Test set: the first $TEST_IMAGES images, 5000 particles each"
tvo eval "$RUN" --split test --limit "$TEST_IMAGES" --particles 5000 --threads "$THREADS"
echo
echo "Plots:"
tvo plot "$RUN" --threads "$THREADS"
