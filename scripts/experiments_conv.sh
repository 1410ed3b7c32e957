#!/bin/sh
# Usage: scripts/experiments_conv.sh [BUILD]      (make experiments-conv; make experiments
#                                                   runs it after the MNIST experiments)
#
# The paper's conv-net experiment (docs/METHOD.md, section 5, item 3; paper Figure 7): the
# CIFAR-10 network (three 5x5 convolutions of 16 maps with batch norm, ReLU and 2x2 max
# pooling, fc 32, logits; `--task conv`), here on the MNIST digits as 28x28x1 images, in
# three panels:
#   conv/all     all 10 classes; lstm = the optimizer meta-trained on all 10 classes, beside
#                lstm-all.warm, its warm start alone (what the meta-objective added)
#   conv/held5   classes 5,6,7,8,9; lstm = LSTM-sub, meta-trained on classes 0-4 only,
#                beside lstm-all, the all-classes optimizer
#   conv/held2   classes 8,9; lstm = LSTM-sub, meta-trained on classes 3,5 only, beside
#                lstm-all (3 and 5, a pair of digits easily confused: meta-trained on 0
#                and 1, where every digit is fit in 30 steps, LSTM-sub left one digit in
#                a hundred networks unfit; docs/RESULTS.md, section 4)
# (--classes relabels the classes kept 0..k-1, so LSTM-sub has seen k-way problems with
# other digits.) Every optimizer has one LSTM for the convolution kernels and one for the
# other parameters, as in the paper (the conv task's parameter groups). Three
# meta-trainings, each the same two commands (CONV_WARM, then CONV_RECIPE, below), and one
# `l2l compare --task conv` per panel: SGD, NAG, RMSprop and Adam each get the learning
# rate that is best for that panel on V validation networks (training split), then every
# optimizer trains the same R fresh networks on the test split. So does nag-floor, not one
# of the paper's baselines: the MNIST optimizer's teacher (scripts/experiments.sh), and
# the conv optimizers' warm start's (CONV_WARM below).
#
# Output, under EXP_OUT (default out/experiments), in conv/:
#   optimizers/lstm-{all,sub5,sub2}.safetensors   the learned optimizers, each with its
#                  .command (the two commands that trained it), .txt (`l2l info`),
#                  -log.csv (one line per epoch of the second stage) and .warm.safetensors
#                  (the warm start, with its own -log.csv)
#   all/, held5/, held2/   curves.csv, summary.csv, finals.csv, loss.png, loss.svg, table.txt
#   results.csv    every panel's summary.csv rows, prefixed by an experiment column
#   times.csv      step,seconds   wall-clock time of each meta-training and panel
#
# Environment:
#   EXP_CONV_OPTIMIZERS  a directory holding lstm-all, lstm-all.warm, lstm-sub5 and
#                  lstm-sub2.safetensors (a previous run's EXP_OUT/conv/optimizers) to use
#                  instead of meta-training; by default all three are meta-trained afresh
#   EXP_CONV_WARM, EXP_CONV_RECIPE  the flags of each meta-training's two stages (default
#                  CONV_WARM and CONV_RECIPE below)
#   EXP_RUNS       R, test networks per optimizer and panel (default 100)
#   EXP_TUNE_RUNS  V, validation networks per learning rate when tuning (default 5)
#   EXP_QUICK=1    a smoke run: 20 steps per network instead of 100, R = 3, V = 1, and
#                  meta-trainings of 2 + 1 small epochs; checks that everything runs in a
#                  couple of minutes, its numbers mean nothing
#   EXP_OUT        output directory (default out/experiments)
# Stops at the first failure (set -eu) with the failing command's message.
#
# The recipe (docs/RESULTS.md, section 4, with every recipe tried) has the MNIST recipe's
# shape (docs/METHOD.md, section 4: imitating nag-floor as a warm start, then the
# meta-objective as the last and deciding stage) with truncated backpropagation, not PES,
# as its second stage, cut to the conv net's cost (a network has 21,882 coordinates; one
# conv step on 128 images takes 13 to 26 ms on one core, depending on the machine,
# docs/PERFORMANCE.md): one network per meta-update; p = 12; the log meta-loss.
#   CONV_WARM: 240 epochs imitating nag-floor at its tuned learning rate for this network
#     (0.1; `l2l tune --task conv`) in unrolls of 20, meta learning rate 1e-3;
#   CONV_RECIPE: from it (--init), 60 epochs of the paper's truncated backpropagation in
#     unrolls of 20 at meta learning rate 1e-5.
# Each stage keeps the phi with the lowest validation loss at the last step among its
# evaluations (--select final; 8 networks, every 40 and every 10 epochs and at the stage's
# start). Both stages together took 1,184 s of wall clock alone on the 2 cores of an
# Intel Xeon (2 threads, the default); each checkpoint is the same byte for byte on 1
# thread. Chosen on 100 networks drawn with --seed 7, not the panels'.
# The whole script, alone on that Zen 4 (commit cfe0624, 2026-12-04, a clean clone), took
# 6,835 s (1 h 54 min): 889 to 925 s for each meta-training and 1,351 to 1,412 s for each
# panel (docs/RESULTS.md, section 4).
set -eu
build=${1:-build}
l2l="$build/l2l"
out=${EXP_OUT:-out/experiments}/conv
quick=${EXP_QUICK:-0}
CONV_WARM="--recipe paper --p 12 --estimator imitate:nag-floor:0.1 --unroll 20 --lr 1e-3
 --epochs 240 --objective log --select final --eval-every 40 --valid 8 --meta-batch 1"
CONV_RECIPE="--recipe paper --estimator tbptt --unroll 20 --lr 1e-5 --epochs 60
 --objective log --select final --eval-every 10 --valid 8 --meta-batch 1"
if [ "$quick" = 1 ]; then
    runs=${EXP_RUNS:-3}; tune_runs=${EXP_TUNE_RUNS:-1}; steps=20
    warm=${EXP_CONV_WARM:---recipe paper --p 12 --estimator imitate:nag-floor:0.1 --unroll 5 --lr 1e-3 --epochs 2 --objective log --select final --eval-every 1 --valid 2}
    recipe=${EXP_CONV_RECIPE:---recipe paper --estimator tbptt --unroll 5 --lr 1e-5 --epochs 1 --objective log --select final --eval-every 1 --valid 2}
else
    runs=${EXP_RUNS:-100}; tune_runs=${EXP_TUNE_RUNS:-5}; steps=100
    warm=${EXP_CONV_WARM:-$CONV_WARM}
    recipe=${EXP_CONV_RECIPE:-$CONV_RECIPE}
fi
# One line of plain words each: the command files and the log show them as they are run.
warm=$(printf '%s' "$warm" | tr '\n' ' ' | tr -s ' ')
recipe=$(printf '%s' "$recipe" | tr '\n' ' ' | tr -s ' ')

die() {
    echo "experiments_conv: $*" >&2
    exit 1
}
. "$(dirname "$0")/summary_rows.sh"
[ -x "$l2l" ] || die "no $l2l; build it first (make all, or make experiments-conv)"
mkdir -p "$out"
start=$(date +%s)
printf 'step,seconds\n' > "$out/times.csv.tmp"
rm -f "$out/results.csv.tmp"
if [ "$quick" = 1 ]; then
    echo "experiments_conv: EXP_QUICK=1, a smoke run ($steps steps, R = $runs, V = $tune_runs): the numbers are not results"
fi

# --------------------------------------------------------------- the optimizers
# meta_train NAME CLASSES: meta-trains $optdir/NAME.safetensors on the training split's
# CLASSES (all: every class), its warm start first ($optdir/NAME.warm.safetensors); keeps
# the two commands beside it.
meta_train() {
    name=$1 classes=$2
    select=
    if [ "$classes" != all ]; then select="--classes $classes"; fi
    first="$l2l train --task conv --steps $steps $warm $select --out $optdir/$name.warm.safetensors"
    second="$l2l train --task conv --steps $steps --init $optdir/$name.warm.safetensors $recipe $select --out $optdir/$name.safetensors"
    t0=$(date +%s)
    for command in "$first" "$second"; do
        echo "== meta-training $name: $command =="
        # $command is a command line of plain words: split on spaces on purpose.
        # shellcheck disable=SC2086
        $command
    done
    secs=$(( $(date +%s) - t0 ))
    printf 'meta-training/%s,%d\n' "$name" "$secs" >> "$out/times.csv.tmp"
    printf '%s\n%s\n' "$first" "$second" > "$optdir/$name.command"
    echo "== meta-training $name: $secs s =="
}

optdir=${EXP_CONV_OPTIMIZERS:-}
if [ -n "$optdir" ]; then
    for name in lstm-all lstm-all.warm lstm-sub5 lstm-sub2; do
        [ -f "$optdir/$name.safetensors" ] || die "EXP_CONV_OPTIMIZERS=$optdir has no $name.safetensors"
    done
    echo "== using the optimizers in $optdir =="
else
    optdir="$out/optimizers"
    mkdir -p "$optdir"
    meta_train lstm-all all
    meta_train lstm-sub5 0,1,2,3,4
    meta_train lstm-sub2 3,5
    echo "== reuse these optimizers: EXP_CONV_OPTIMIZERS=$optdir =="
fi
for name in lstm-all lstm-sub5 lstm-sub2; do
    "$l2l" info "$optdir/$name.safetensors" > "$optdir/$name.txt"
done

# ---------------------------------------------------------------------- panels
# panel NAME FLAGS...: one compare into $out/NAME; appends its time and summary rows.
panel() {
    name=$1; shift
    echo "== conv/$name: l2l compare --task conv $* (R = $runs, V = $tune_runs) =="
    mkdir -p "$out/$name"
    t0=$(date +%s)
    "$l2l" compare --task conv --steps "$steps" --runs "$runs" --tune-runs "$tune_runs" \
        --baselines sgd,nag,rmsprop,adam,nag-floor --out "$out/$name" "$@" > "$out/$name/table.txt"
    secs=$(( $(date +%s) - t0 ))
    cat "$out/$name/table.txt"
    append_summary "conv/$name" "$out/$name" "$secs"
    echo "== conv/$name: $secs s =="
}

panel all --optimizer "$optdir/lstm-all.safetensors" --also "$optdir/lstm-all.warm.safetensors"
panel held5 --classes 5,6,7,8,9 --optimizer "$optdir/lstm-sub5.safetensors" --also "$optdir/lstm-all.safetensors"
panel held2 --classes 8,9 --optimizer "$optdir/lstm-sub2.safetensors" --also "$optdir/lstm-all.safetensors"
# Each CSV appears whole or not at all.
mv "$out/results.csv.tmp" "$out/results.csv"

total=$(( $(date +%s) - start ))
printf 'total,%d\n' "$total" >> "$out/times.csv.tmp"
mv "$out/times.csv.tmp" "$out/times.csv"
echo "== times (s) =="
column -t -s, "$out/times.csv" 2>/dev/null || cat "$out/times.csv"
echo "== done in $total s; results in $out/ (results.csv, times.csv, */loss.png) =="
