#!/bin/sh
# Usage: scripts/train_mnist.sh [BUILD] [OUT]
#
# Meta-trains the shipped MNIST optimizer (models/mnist.safetensors; docs/RESULTS.md, "The
# shipped optimizer") into OUT (default out/train_mnist/mnist.safetensors) on the base
# network (784-20-10 sigmoid), in five runs:
#   1. The warm start of l2l's recipe (`l2l train --task mnist`'s default; docs/METHOD.md,
#      section 4), seed 2: 80 epochs imitating the hand-written rule nag-floor; the
#      optimizer reads log/sign and g / rms(g) (--preproc logsign-rms). The run's one PES
#      epoch (--epochs 1) is not used, only its warm start (NAME.stage1.warm.safetensors).
#      About 5 minutes on 2 cores.
#   2. 120 more epochs of imitating nag-floor from it, with unrolls of 20 steps instead of
#      5 and meta learning rate 1e-3, keeping the best of 40 validation networks every 10
#      epochs (seed 7). About 13 minutes on one thread.
#   3. The meta-objective: 40 epochs of persistent evolution strategies (8 antithetic
#      pairs, meta learning rate 1e-3) from run 2's result on other optimizees (seed 8),
#      keeping the best of 40 validation networks every 5 epochs. About 17 minutes on
#      one thread.
#   4. 20 more PES epochs from run 3's result on runs of 200 steps instead of 100 (seed
#      11), keeping the best final loss at step 200 on 40 validation networks every 5
#      epochs. About 18 minutes on one thread.
#   5. 20 more PES epochs on 200-step runs from run 4's result (seed 13) on the paper's
#      meta-loss, the sum of f over the steps (--objective sum) instead of the sum of log f,
#      keeping the best mean loss over the 200 steps (--select mean). About 18 minutes on
#      one thread.
# Runs 2 to 5 use one thread because the shipped optimizer was meta-trained that way: the
# thread count may change the last bits of sums, and so the weights. Every run's optimizer
# and its log of every epoch go next to OUT (NAME.stage1*, NAME.imitate*, NAME.pes100*,
# NAME.pes200*, NAME-log.csv). The shipped weights come from these commands: runs 1 to 3
# at commit 9adc00f (a run of them there gave the same weights), run 4 at ce1feb6, run 5
# at b5c8b3d (a run of it at 77dd2f8 gave the same weights).
set -eu
build=${1:-build}
out=${2:-out/train_mnist/mnist.safetensors}
l2l="$build/l2l"
[ -x "$l2l" ] || { echo "train_mnist: no $l2l; build it first (make all)" >&2; exit 1; }
case "$out" in *.safetensors) ;; *) echo "train_mnist: OUT must end in .safetensors" >&2; exit 1 ;; esac
mkdir -p "$(dirname "$out")"

start=$(date +%s)
stem="${out%.safetensors}"
"$l2l" train --task mnist --out "$stem.stage1.safetensors" --seed 2 --epochs 1
"$l2l" train --task mnist --init "$stem.stage1.warm.safetensors" --warm-start none \
    --estimator imitate:nag-floor:1 --unroll 20 --lr 1e-3 --epochs 120 --valid 10 --eval-every 10 \
    --seed 7 --threads 1 --out "$stem.imitate.safetensors"
"$l2l" train --task mnist --init "$stem.imitate.safetensors" --warm-start none --estimator pes:8:0.01 \
    --lr 1e-3 --epochs 40 --valid 10 --eval-every 5 --seed 8 --threads 1 --out "$stem.pes100.safetensors"
"$l2l" train --task mnist --init "$stem.pes100.safetensors" --warm-start none --estimator pes:8:0.01 \
    --lr 1e-3 --epochs 20 --steps 200 --valid 10 --eval-every 5 --seed 11 --threads 1 \
    --out "$stem.pes200.safetensors"
"$l2l" train --task mnist --init "$stem.pes200.safetensors" --warm-start none --estimator pes:8:0.01 \
    --lr 1e-3 --epochs 20 --steps 200 --objective sum --select mean --valid 10 --eval-every 5 \
    --seed 13 --threads 1 --out "$out"
echo "== meta-training done in $(( $(date +%s) - start )) s: $out =="
