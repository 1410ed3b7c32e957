#!/bin/sh
# Usage: scripts/train_mnist.sh [BUILD] [OUT]
#
# Meta-trains the shipped MNIST optimizer (models/mnist.safetensors; docs/RESULTS.md, "The
# shipped optimizer") into OUT (default out/train_mnist/mnist.safetensors) on the base
# network (784-20-10 sigmoid) by l2l's recipe, `l2l train --task mnist`'s default
# (docs/METHOD.md, section 4): a warm start of 80 epochs imitating the hand-written rule
# nag-floor, then 20 epochs of persistent evolution strategies on the meta-objective, which
# decides the result. The warm start's optimizer goes next to OUT (NAME.warm.safetensors),
# and so does the log of every epoch (NAME-log.csv). The shipped optimizer was made when
# the recipe used 8 PES pairs and 40 validation networks every 5 epochs; the flags below
# keep those (the default now uses 6 pairs and 20 networks every 10 epochs, to fit 10
# minutes). The shipped bytes came from commit 2b0da68; since commit bf94d65 the same
# seed draws other optimizees (docs/RESULTS.md).
set -eu
build=${1:-build}
out=${2:-out/train_mnist/mnist.safetensors}
l2l="$build/l2l"
[ -x "$l2l" ] || { echo "train_mnist: no $l2l; build it first (make all)" >&2; exit 1; }
case "$out" in *.safetensors) ;; *) echo "train_mnist: OUT must end in .safetensors" >&2; exit 1 ;; esac
mkdir -p "$(dirname "$out")"

start=$(date +%s)
"$l2l" train --task mnist --out "$out" --seed 2 --estimator pes:8:0.01 --valid 10 --eval-every 5
echo "== meta-training done in $(( $(date +%s) - start )) s: $out =="
