#!/bin/sh
# Usage: scripts/mnist_seeds.sh [BUILD]             (make experiments-seeds)
#
# Is l2l's MNIST recipe robust, and what does its last stage add? Meta-trains one
# optimizer per seed with `l2l train --task mnist` and no recipe flags (docs/METHOD.md,
# section 4: a warm start imitating nag-floor, then PES on the meta-objective), each run
# timed alone, then tests every optimizer and its warm start on the same 100 fresh networks
# against SGD, NAG, RMSprop, Adam and nag-floor, each tuned (docs/RESULTS.md, section 2,
# "Five seeds").
#
# Output, under EXP_OUT (default out/seeds):
#   sK.safetensors, sK.warm.safetensors, sK-log.csv   seed K's optimizer, warm start, log
#   compare/       `l2l compare`: summary.csv, finals.csv, curves.csv, loss.png (the
#                  first seed's optimizer is named lstm there, the others by file)
#   pair-sK.txt    `l2l pair` against seed K's optimizer: every other optimizer's paired
#                  difference on the test networks (positive: seed K's is ahead)
#   times.csv      seed,seconds   wall-clock time of each meta-training
#
# Environment:
#   EXP_SEEDS      the seeds (default "1 2 3 4 5")
#   L2L_RECIPE     flags added to every `l2l train` (default none: l2l's recipe)
#   EXP_RUNS       test networks (default 100)
#   EXP_TUNE_RUNS  validation networks per learning rate when tuning (default 5)
#   EXP_QUICK=1    a smoke run: 2 + 1 epochs on 20-step runs, 3 test networks; its
#                  numbers mean nothing
#   EXP_OUT        output directory (default out/seeds)
# Stops at the first failure (set -eu). Run nothing else meanwhile: the times are the
# recipe's own only on otherwise idle cores.
set -eu
build=${1:-build}
l2l="$build/l2l"
out=${EXP_OUT:-out/seeds}
seeds=${EXP_SEEDS:-1 2 3 4 5}
recipe=${L2L_RECIPE:-}
runs=${EXP_RUNS:-100}
tune_runs=${EXP_TUNE_RUNS:-5}
steps=""
if [ "${EXP_QUICK:-0}" = 1 ]; then
    recipe="$recipe --warm-start nag-floor:1:2 --epochs 1 --eval-every 1 --valid 1"
    runs=${EXP_RUNS:-3}; tune_runs=${EXP_TUNE_RUNS:-1}; steps="--steps 20"
fi
[ -x "$l2l" ] || { echo "mnist_seeds: no $l2l; build it first (make all)" >&2; exit 1; }
mkdir -p "$out"
printf 'seed,seconds\n' > "$out/times.csv"
first="" # the first seed: compare's --optimizer, which it names lstm
also=""  # every other optimizer, named by its file
for s in $seeds; do
    echo "== seed $s: l2l train --task mnist $recipe $steps --seed $s =="
    start=$(date +%s)
    # shellcheck disable=SC2086 # the flags are words
    "$l2l" train --task mnist $recipe $steps --seed "$s" --out "$out/s$s.safetensors"
    printf '%s,%d\n' "$s" "$(( $(date +%s) - start ))" >> "$out/times.csv"
    if [ -z "$first" ]; then first=$s; else also="$also,$out/s$s.safetensors"; fi
    also="$also,$out/s$s.warm.safetensors"
done
echo "== l2l compare: every optimizer and warm start on $runs test networks =="
# shellcheck disable=SC2086
"$l2l" compare --task mnist $steps --optimizer "$out/s$first.safetensors" --also "${also#,}" --runs "$runs" --tune-runs "$tune_runs" \
    --baselines sgd,nag,rmsprop,adam,nag-floor --out "$out/compare"
for s in $seeds; do
    if [ "$s" = "$first" ]; then name=lstm; else name="s$s"; fi
    "$l2l" pair "$out/compare/finals.csv" --against "$name" > "$out/pair-s$s.txt"
done
echo "== done: $out/times.csv, $out/compare/, $out/pair-s*.txt =="
cat "$out/times.csv"
