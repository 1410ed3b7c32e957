#!/bin/sh
# The kill -9 measurement of docs/RELIABILITY.md: KILLS (100) SIGKILLs at random moments
# of `l2l train` runs of EPOCHS (100) epochs (TBPTT and ES, 1 and 2 threads), each run
# resumed with --resume until it ends; every final checkpoint must be byte-identical to
# an uninterrupted run's, with no stray files. The same program with 10 kills in runs of
# 12 epochs runs in `make test`.
#   scripts/kill_test.sh [BUILD] [KILLS] [SEED] [EPOCHS]
set -eu
build=${1:-build}
kills=${2:-100}
seed=${3:-$(date +%s)}
epochs=${4:-100}
[ -x "$build/tests/test_kill" ] || { echo "no $build/tests/test_kill: run make first" >&2; exit 1; }
echo "kill test: $kills kills, runs of $epochs epochs, seed $seed, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
exec "$build/tests/test_kill" "$kills" "$seed" "$epochs"
