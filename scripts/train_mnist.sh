#!/bin/sh
# Usage: scripts/train_mnist.sh [BUILD] [OUT]
#
# Meta-trains the shipped MNIST optimizer (models/mnist.safetensors; docs/RESULTS.md, "The
# shipped optimizer") into OUT (default out/train_mnist/mnist.safetensors) on the base
# network (784-20-10 sigmoid), in two runs:
#   1. l2l's recipe, `l2l train --task mnist`'s default (docs/METHOD.md, section 4), seed 2:
#      a warm start of 80 epochs imitating the hand-written rule nag-floor, then 20 epochs
#      of persistent evolution strategies (PES) on the meta-objective; the optimizer reads
#      log/sign and g / rms(g) (--preproc logsign-rms). About 8 minutes on 2 cores.
#   2. 30 more PES epochs from its result, with 8 antithetic pairs at meta learning rate
#      3e-4 on other optimizees (seed 6), keeping the best of 40 validation networks every
#      5 epochs. About 8 minutes more.
# The first run's optimizers go next to OUT (NAME.stage1.safetensors and its
# .warm.safetensors), and so does the log of every epoch of each (NAME-log.csv,
# NAME.stage1-log.csv). The shipped bytes come from these commands at commit dd47ebf.
set -eu
build=${1:-build}
out=${2:-out/train_mnist/mnist.safetensors}
l2l="$build/l2l"
[ -x "$l2l" ] || { echo "train_mnist: no $l2l; build it first (make all)" >&2; exit 1; }
case "$out" in *.safetensors) ;; *) echo "train_mnist: OUT must end in .safetensors" >&2; exit 1 ;; esac
mkdir -p "$(dirname "$out")"

start=$(date +%s)
stage1="${out%.safetensors}.stage1.safetensors"
"$l2l" train --task mnist --out "$stage1" --seed 2
"$l2l" train --task mnist --init "$stage1" --warm-start none --estimator pes:8:0.01 --lr 3e-4 \
    --epochs 30 --valid 10 --eval-every 5 --seed 6 --out "$out"
echo "== meta-training done in $(( $(date +%s) - start )) s: $out =="
