#!/bin/sh
# make bench-mpi: MNIST meta-training epochs (784-20-10, --meta-batch 4, truncated
# backpropagation, the paper's recipe) on 1 process x 1 thread, 1 process x 2 threads and
# 2 processes x 1 thread (mpirun), the medians of their epochs and the ratios, then MPI's
# latency and bandwidth on this machine (build/l2l-pingpong), for docs/DISTRIBUTED.md.
#   scripts/bench_mpi.sh [BUILD]      results under out/bench-mpi/ (git-ignored)
# Environment (optional):
#   BENCH_MPI_EPOCHS   epochs per run (4)
#   BENCH_MPI_ROUNDS   runs of each configuration, interleaved (2): the medians are over
#                      every epoch of every round
set -eu
BUILD=${1:-build}
EPOCHS=${BENCH_MPI_EPOCHS:-4}
ROUNDS=${BENCH_MPI_ROUNDS:-2}
OUT=out/bench-mpi
L2L=$(pwd)/$BUILD/l2l
PINGPONG=$(pwd)/$BUILD/l2l-pingpong
for f in "$L2L" "$PINGPONG"; do
    [ -x "$f" ] || { echo "bench_mpi.sh: no $f; build with MPI first (make)" >&2; exit 1; }
done
command -v mpirun >/dev/null || { echo "bench_mpi.sh: no mpirun; install openmpi-bin (scripts/setup.sh)" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mkdir -p "$OUT"
rm -f "$OUT"/*.csv "$OUT"/*.safetensors "$OUT"/*.txt
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "load at start: $(uptime | sed 's/.*load average: //')"
    echo "mpirun: $(mpirun --version | head -1)"
} | tee "$OUT/machine.txt"

ARGS="train --task mnist --recipe paper --meta-batch 4 --epochs $EPOCHS --eval-every 0 --data $(pwd)/data/mnist"
run() { # NAME LAUNCHER THREADS ROUND
    (cd "$OUT" && OMP_NUM_THREADS=$3 $2 "$L2L" $ARGS --threads "$3" --out "$1-$4.safetensors" 2>/dev/null)
    # seconds per epoch: differences of the log's cumulative seconds
    awk -F, 'NR > 1 { print $7 - prev; prev = $7 }' "$OUT/$1-$4-log.csv" >> "$OUT/$1.epochs.txt"
}
r=1
while [ "$r" -le "$ROUNDS" ]; do
    echo "round $r of $ROUNDS: 1 process x 1 thread, 1 process x 2 threads, 2 processes x 1 thread ..."
    run p1t1 "" 1 "$r"
    run p1t2 "" 2 "$r"
    run p2t1 "mpirun -np 2 --bind-to core" 1 "$r"
    r=$((r + 1))
done
echo "load at end: $(uptime | sed 's/.*load average: //')" | tee -a "$OUT/machine.txt"
for c in p1t2 p2t1; do
    cmp -s "$OUT/p1t1-1.safetensors" "$OUT/$c-1.safetensors" ||
        { echo "bench_mpi.sh: $c's checkpoint differs from 1 process x 1 thread's" >&2; exit 1; }
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m11=$(median "$OUT/p1t1.epochs.txt"); m12=$(median "$OUT/p1t2.epochs.txt"); m21=$(median "$OUT/p2t1.epochs.txt")
{
    echo "MNIST meta-training, --meta-batch 4, seconds per epoch (median of $((EPOCHS * ROUNDS)) epochs):"
    echo "  1 process  x 1 thread : $m11"
    echo "  1 process  x 2 threads: $m12"
    echo "  2 processes x 1 thread: $m21"
    awk -v a="$m11" -v b="$m12" -v c="$m21" 'BEGIN {
        printf "  2 processes x 1 thread against 1 x 1: %.2fx as fast (target >= 1.8x)\n", a / c
        printf "  2 processes x 1 thread against 1 x 2: %.2fx as fast (target >= 1x)\n", b / c
        printf "  1 process x 2 threads against 1 x 1: %.2fx as fast\n", a / b }'
    echo "  (every configuration wrote the same checkpoint bytes)"
} | tee "$OUT/summary.txt"

echo "MPI on this machine (mpirun -np 2 l2l-pingpong: half a round trip; allgather of one 5,301-float record per process):"
mpirun -np 2 --bind-to core "$PINGPONG" 5301 | tee "$OUT/pingpong.txt" | awk '
    $2 == "pingpong" { printf "  %-9s %9d bytes  %9.2f us  %8.1f MB/s\n", $2, $3, $4 * 1e6, $3 / $4 / 1e6 }
    $2 == "allgather" { printf "  %-9s %9d bytes  %9.2f us\n", $2, $3, $4 * 1e6 }' | tee -a "$OUT/summary.txt"
echo "bench_mpi.sh: results in $OUT/ (machine.txt, summary.txt, pingpong.txt, the runs' logs)"
