#!/bin/sh
# make demo: the paper's first experiment end to end, then the shipped MNIST optimizer.
#  1. meta-train an LSTM optimizer on random quadratics (paper section 5.1) and compare
#     it with SGD, NAG, RMSprop and Adam, each tuned on validation problems, on 1,000
#     fresh test quadratics;
#  2. if a trained MNIST optimizer ships in models/, compare it the same way on fresh
#     MNIST networks (test split), with its teacher nag-floor (not a paper baseline)
#     tuned and shown too.
# Results go to out/demo/: curves.csv, summary.csv, finals.csv, loss.png and loss.svg per task.
set -eu
build=${1:-build}
l2l="$build/l2l"
out=out/demo
mkdir -p "$out"
start=$(date +%s)

echo "== Quadratics: meta-training (paper settings, seed 1) =="
"$l2l" train --task quadratic --out "$out/quadratic.safetensors" --epochs 300 --eval-every 25 --seed 1
echo "== Quadratics: learned optimizer vs tuned baselines on 1000 fresh test problems =="
"$l2l" compare --task quadratic --optimizer "$out/quadratic.safetensors" --runs 1000 --tune-runs 100 \
    --out "$out/quadratic"

if [ -f models/mnist.safetensors ]; then
    echo "== MNIST: the shipped optimizer (models/mnist.safetensors) vs tuned baselines =="
    "$l2l" info models/mnist.safetensors | sed -n '1,3p'
    "$l2l" compare --task mnist --optimizer models/mnist.safetensors --runs 100 --tune-runs 5 \
        --baselines sgd,nag,rmsprop,adam,nag-floor --out "$out/mnist"
fi
echo "== done in $(( $(date +%s) - start )) s; figures and CSVs in $out/ =="
