#!/bin/sh
# Usage: scripts/train_mnist.sh [BUILD] [OUT]
#
# Meta-trains the shipped MNIST optimizer (models/mnist.safetensors; docs/RESULTS.md, "The
# shipped optimizer") into OUT (default out/train_mnist/mnist.safetensors): 100 epochs on
# the base network (784-20-10 sigmoid) training the LSTM to make the updates of the
# hand-written rule nag-floor (lr 1) from the same gradients (--estimator imitate), with a
# meta-update every 5 steps (--unroll 5), gradients down to e^-12 through the log
# (--p 12), and the φ with the best final validation loss kept. The log of every epoch
# goes next to OUT (NAME-log.csv). About 6 minutes on 2 cores.
set -eu
build=${1:-build}
out=${2:-out/train_mnist/mnist.safetensors}
l2l="$build/l2l"
[ -x "$l2l" ] || { echo "train_mnist: no $l2l; build it first (make all)" >&2; exit 1; }
case "$out" in *.safetensors) ;; *) echo "train_mnist: OUT must end in .safetensors" >&2; exit 1 ;; esac
mkdir -p "$(dirname "$out")"

start=$(date +%s)
"$l2l" train --task mnist --out "$out" --meta-batch 4 --objective log --select final --eval-every 5 \
    --valid 10 --threads 2 --p 12 --unroll 5 --epochs 100 --seed 2 --estimator imitate:nag-floor:1 --lr 3e-3
echo "== meta-training done in $(( $(date +%s) - start )) s: $out =="
