#!/bin/sh
# Usage: scripts/train_mnist.sh [BUILD] [OUT]
#
# Meta-trains the shipped MNIST optimizer (models/mnist.safetensors; docs/RESULTS.md, "The
# shipped optimizer") into OUT (default out/train_mnist/mnist.safetensors), in two stages:
#   1. imitation: 100 epochs training the LSTM to make tuned NAG's updates (lr 1) from the
#      same gradients (--imitate), a start that works from every seed tried;
#   2. evolution strategies: 45 epochs of meta-gradients from whole 100-step runs (--es),
#      which improve the final loss where truncated backpropagation does not.
# Stage 1's optimizer and both stages' logs go next to OUT (NAME-imitation.safetensors,
# NAME-imitation-log.csv, NAME-log.csv). Under 15 minutes on 2 cores.
set -eu
build=${1:-build}
out=${2:-out/train_mnist/mnist.safetensors}
l2l="$build/l2l"
[ -x "$l2l" ] || { echo "train_mnist: no $l2l; build it first (make all)" >&2; exit 1; }
case "$out" in *.safetensors) ;; *) echo "train_mnist: OUT must end in .safetensors" >&2; exit 1 ;; esac
mkdir -p "$(dirname "$out")"
stage1="${out%.safetensors}-imitation.safetensors"
common="--task mnist --meta-batch 4 --objective log --select final --eval-every 5 --valid 10 --threads 2"

start=$(date +%s)
echo "== stage 1: imitating tuned NAG (lr 1) =="
# $common is a list of flags: split on spaces on purpose.
# shellcheck disable=SC2086
"$l2l" train $common --out "$stage1" --p 7 --epochs 100 --seed 2 --imitate nag:1:100 --lr 3e-3
echo "== stage 2: evolution strategies from stage 1 =="
# shellcheck disable=SC2086
"$l2l" train $common --init "$stage1" --out "$out" --epochs 45 --seed 44 --lr 1e-3 --es 8:0.01
echo "== meta-training done in $(( $(date +%s) - start )) s: $out =="
