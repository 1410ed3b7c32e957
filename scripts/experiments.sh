#!/bin/sh
# Usage: scripts/experiments.sh [BUILD]      (make experiments)
#
# The paper's MNIST experiments (docs/METHOD.md, section 5) with ONE learned optimizer,
# meta-trained once on the base network (784-20-10 sigmoid, 100 steps) and never retrained:
#   fig4/steps100  the base network, 100 steps           (paper Figure 4, left)
#   fig4/steps200  the base network, 200 steps           (Figure 4, right)
#   fig5/hidden40  40 hidden units                        (Figure 5)
#   fig5/layers2   2 hidden layers of 20                  (Figure 5)
#   fig5/relu      ReLU instead of sigmoid                (Figure 5)
#   fig6/width_W   W = 5, 10, 20, 40, 80 units, 1 layer, 100 steps   (Figure 6)
#   fig6/depth_L   L = 1, 2, 3, 4 layers of 20 units, 100 steps      (Figure 6)
# Every variant is one `l2l compare --task mnist`: SGD, NAG, RMSprop and Adam each get the
# learning rate that is best for that variant on V validation networks (training split),
# then all five optimizers train the same R fresh networks on the test split. So does
# nag-floor, which is not one of the paper's baselines: it is the hand-written rule the
# shipped optimizer imitated in its warm start (--warm-start), shown so that the learned
# optimizer can be judged against its own teacher. The
# variants width_20 and depth_1 are the base network: fig4/steps100 is reused for them.
#
# Output, under EXP_OUT (default out/experiments):
#   NAME/curves.csv, summary.csv, finals.csv, loss.png, loss.svg, table.txt   per variant
#   fig6/width.csv, fig6/depth.csv   series,x,mean,sem: loss at step 100 (sem = std/sqrt(R))
#   fig6/width.png, fig6/depth.png   the sweeps, with standard-error bars (`l2l plot`)
#   results.csv    every variant's summary.csv rows, prefixed by an experiment column
#   times.csv      step,seconds   wall-clock time of meta-training and of every variant
#
# Environment:
#   EXP_OPTIMIZER  the learned optimizer; default models/mnist.safetensors if it exists,
#                  otherwise one is meta-trained into EXP_OUT/optimizer.safetensors by the
#                  shipped optimizer's command (scripts/train_mnist.sh) or by
#   L2L_RECIPE     one `l2l train --task mnist` with these flags (`--recipe paper` for the
#                  paper's own settings)
#   EXP_RUNS       R, test networks per optimizer and variant (default 100)
#   EXP_TUNE_RUNS  V, validation networks per learning rate when tuning (default 10)
#   EXP_QUICK=1    a smoke run: R = 10, V = 3, and (without L2L_RECIPE) a meta-training of
#                  5 + 2 epochs; checks that everything runs, its numbers mean nothing
#   EXP_OUT        output directory (default out/experiments)
# Stops at the first failure (set -eu) with the failing command's message.
set -eu
build=${1:-build}
l2l="$build/l2l"
out=${EXP_OUT:-out/experiments}
quick=${EXP_QUICK:-0}
if [ "$quick" = 1 ]; then
    runs=${EXP_RUNS:-10}; tune_runs=${EXP_TUNE_RUNS:-3}
    recipe=${L2L_RECIPE:---warm-start nag-floor:1:5 --epochs 2 --valid 3}
else
    runs=${EXP_RUNS:-100}; tune_runs=${EXP_TUNE_RUNS:-10}
    recipe=${L2L_RECIPE:-}
fi

die() {
    echo "experiments: $*" >&2
    exit 1
}
. "$(dirname "$0")/summary_rows.sh"
[ -x "$l2l" ] || die "no $l2l; build it first (make all, or make experiments)"
mkdir -p "$out/fig4" "$out/fig5" "$out/fig6"
start=$(date +%s)
printf 'step,seconds\n' > "$out/times.csv.tmp"
rm -f "$out/results.csv.tmp"
if [ "$quick" = 1 ]; then
    echo "experiments: EXP_QUICK=1, a smoke run (R = $runs, V = $tune_runs): the numbers are not results"
fi

# ---------------------------------------------------------------- the optimizer
optimizer=${EXP_OPTIMIZER:-}
if [ -z "$optimizer" ] && [ -f models/mnist.safetensors ]; then optimizer=models/mnist.safetensors; fi
if [ -z "$optimizer" ]; then
    optimizer="$out/optimizer.safetensors"
    if [ -n "$recipe" ]; then command="$l2l train --task mnist $recipe --out $optimizer"
    else command="scripts/train_mnist.sh $build $optimizer"; fi
    echo "== meta-training the optimizer on the base network: $command =="
    t0=$(date +%s)
    # $command is a command line of plain words: split on spaces on purpose.
    # shellcheck disable=SC2086
    $command
    secs=$(( $(date +%s) - t0 ))
    printf 'meta-training,%d\n' "$secs" >> "$out/times.csv.tmp"
    printf '%s\n' "$command" > "$out/optimizer.command"
    echo "== meta-training: $secs s (reuse it: EXP_OPTIMIZER=$optimizer) =="
else
    [ -f "$optimizer" ] || die "EXP_OPTIMIZER=$optimizer does not exist"
    echo "== using the optimizer $optimizer =="
fi
"$l2l" info "$optimizer" > "$out/optimizer.txt"

# ------------------------------------------------------------------- variants
# variant NAME FLAGS...: one compare into $out/NAME; appends its time and summary rows.
variant() {
    name=$1; shift
    echo "== $name: l2l compare --task mnist $* (R = $runs, V = $tune_runs) =="
    mkdir -p "$out/$name"
    t0=$(date +%s)
    "$l2l" compare --task mnist --optimizer "$optimizer" --runs "$runs" --tune-runs "$tune_runs" \
        --baselines sgd,nag,rmsprop,adam,nag-floor --out "$out/$name" "$@" > "$out/$name/table.txt"
    secs=$(( $(date +%s) - t0 ))
    cat "$out/$name/table.txt"
    append_summary "$name" "$out/$name" "$secs"
    echo "== $name: $secs s =="
}

# sweep_rows SERIES_X SUMMARY: the summary's rows as series,x,mean,sem, columns found by name.
sweep_rows() {
    awk -F, -v x="$1" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i
                  if (!col["optimizer"] || !col["final_mean"] || !col["final_sem"]) {
                      print FILENAME ": no optimizer, final_mean or final_sem column" > "/dev/stderr"; exit 1 }
                  next }
        { print $col["optimizer"] "," x "," $col["final_mean"] "," $col["final_sem"] }' "$2"
}

variant fig4/steps100
variant fig4/steps200 --steps 200
variant fig5/hidden40 --hidden 40
variant fig5/layers2 --layers 2
variant fig5/relu --activation relu

printf 'series,x,mean,sem\n' > "$out/fig6/width.csv.tmp"
for w in 5 10 20 40 80; do
    if [ "$w" = 20 ]; then summary="$out/fig4/steps100/summary.csv"
    else variant "fig6/width_$w" --hidden "$w"; summary="$out/fig6/width_$w/summary.csv"; fi
    sweep_rows "$w" "$summary" >> "$out/fig6/width.csv.tmp"
done
printf 'series,x,mean,sem\n' > "$out/fig6/depth.csv.tmp"
for d in 1 2 3 4; do
    if [ "$d" = 1 ]; then summary="$out/fig4/steps100/summary.csv"
    elif [ "$d" = 2 ]; then summary="$out/fig5/layers2/summary.csv"
    else variant "fig6/depth_$d" --layers "$d"; summary="$out/fig6/depth_$d/summary.csv"; fi
    sweep_rows "$d" "$summary" >> "$out/fig6/depth.csv.tmp"
done
# Each CSV appears whole or not at all.
for f in fig6/width.csv fig6/depth.csv results.csv; do mv "$out/$f.tmp" "$out/$f"; done

"$l2l" plot "$out/fig6/width.csv" --err sem --linear --out "$out/fig6/width.png" \
    --title "MNIST, 1 hidden layer: loss at step 100, mean +- s.e. over $runs networks" \
    --xlabel "hidden units" --ylabel "final loss"
"$l2l" plot "$out/fig6/depth.csv" --err sem --linear --out "$out/fig6/depth.png" \
    --title "MNIST, 20 units per layer: loss at step 100, mean +- s.e. over $runs networks" \
    --xlabel "hidden layers" --ylabel "final loss"

total=$(( $(date +%s) - start ))
printf 'total,%d\n' "$total" >> "$out/times.csv.tmp"
mv "$out/times.csv.tmp" "$out/times.csv"
echo "== times (s) =="
column -t -s, "$out/times.csv" 2>/dev/null || cat "$out/times.csv"
echo "== done in $total s; results in $out/ (results.csv, times.csv, */loss.png, fig6/*.png) =="
