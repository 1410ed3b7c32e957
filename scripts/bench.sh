#!/bin/sh
# make bench: l2l's benchmark and the PyTorch peer on the same machine, the ratios, and
# a plot. Usage: scripts/bench.sh BUILD_DIR   (results under out/bench/, git-ignored)
#
# Environment (optional):
#   BENCH_THREADS   thread counts, default "1 2"
#   BENCH_REPEAT    timed runs per l2l configuration (default 5)
#   BENCH_QUICK=1   l2l-bench --quick, no PyTorch sweep, one MNIST epoch each (smoke test)
#   TORCH_SWEEP_N   coordinates for the PyTorch sweep (default 1000,10000,100000,1000000)
#   TORCH_EPOCHS    timed PyTorch MNIST epochs (default 3, after one warm-up)
#   PYTHON          the Python with torch (default /usr/bin/python3)
set -eu
BUILD=${1:-build}
BENCH="$BUILD/l2l-bench"
OUT=out/bench
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-"1 2"}
REPEAT=${BENCH_REPEAT:-5}
SWEEP_N=${TORCH_SWEEP_N:-1000,10000,100000,1000000}
EPOCHS=${TORCH_EPOCHS:-3}
mkdir -p "$OUT"
rm -f "$OUT/l2l_mnist_quick.txt"

if [ ! -x "$BENCH" ]; then
    echo "bench.sh: error: $BENCH not found; run 'make all' first" >&2
    exit 1
fi

thread_list=$(echo "$THREADS" | tr ' ' ',')
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

echo "== l2l-bench"
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    "$BENCH" --quick --threads "$thread_list" --csv "$OUT/l2l.csv" --plot "$OUT/throughput.png" | tee "$OUT/l2l.txt"
    for t in $THREADS; do
        "$BENCH" --one mnist --threads "$t" --repeat 1 >> "$OUT/l2l_mnist_quick.txt"
    done
else
    "$BENCH" --threads "$thread_list" --repeat "$REPEAT" --csv "$OUT/l2l.csv" \
        --plot "$OUT/throughput.png" | tee "$OUT/l2l.txt"
fi

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
    echo "bench.sh: PyTorch is not importable by $PYTHON; skipping the comparison" >&2
    exit 0
fi

echo "== PyTorch (bench/torch_l2l.py)"
: > "$OUT/torch.jsonl"
for t in $THREADS; do
    if [ "${BENCH_QUICK:-0}" = 1 ]; then
        "$PYTHON" bench/torch_l2l.py mnist-epoch --threads "$t" --epochs 1 | tee -a "$OUT/torch.jsonl"
    else
        "$PYTHON" bench/torch_l2l.py mnist-epoch --threads "$t" --epochs "$EPOCHS" | tee -a "$OUT/torch.jsonl"
        "$PYTHON" bench/torch_l2l.py sweep --threads "$t" --n "$SWEEP_N" | tee -a "$OUT/torch.jsonl"
    fi
done

echo "== l2l / PyTorch"
"$PYTHON" - "$OUT" <<'EOF'
import csv, json, os, sys
out = sys.argv[1]
l2l = []
if os.path.exists(os.path.join(out, "l2l.csv")):
    with open(os.path.join(out, "l2l.csv")) as f:
        l2l = list(csv.DictReader(f))
quick = os.path.join(out, "l2l_mnist_quick.txt")
if os.path.exists(quick):  # RESULT kind n threads seconds rate task_frac peak_mb runs cpu
    for line in open(quick):
        p = line.split()
        if p and p[0] == "RESULT":
            l2l.append({"kind": p[1], "n": p[2], "threads": p[3], "seconds": p[4],
                        "coordinate_steps_per_s": p[5], "peak_rss_mb": p[7]})
torch = [json.loads(l) for l in open(os.path.join(out, "torch.jsonl")) if l.startswith("{")]
lines = ["| what | threads | l2l | PyTorch | PyTorch / l2l |", "|---|---|---|---|---|"]
for t in sorted({int(r["threads"]) for r in l2l}):
    m = [r for r in l2l if r["kind"] == "mnist" and int(r["threads"]) == t]
    p = [r for r in torch if r.get("task") == "mnist" and r.get("threads") == t and "error" not in r]
    if m and p:
        ls, ps = float(m[0]["seconds"]), p[0]["seconds_per_epoch_median"]
        lm, pm = float(m[0]["peak_rss_mb"]), p[0]["peak_rss_mb"]
        lines.append(f"| MNIST epoch, seconds | {t} | {ls:.3f} | {ps:.3f} | {ps / ls:.1f}x faster |")
        lines.append(f"| MNIST peak memory, MB | {t} | {lm:.0f} | {pm:.0f} | {pm / lm:.1f}x less |")
    for r in l2l:
        if r["kind"] != "train" or int(r["threads"]) != t:
            continue
        n = int(float(r["n"]))
        q = [x for x in torch if x.get("task") == "quadratic" and x.get("n") == n and x.get("threads") == t]
        if not q:
            continue
        if "error" in q[0]:
            lines.append(f"| train N={n}, Mcoord-steps/s | {t} | {float(r['coordinate_steps_per_s']) / 1e6:.3f} | failed: {q[0]['error'][:60]} | |")
            continue
        lr, pr = float(r["coordinate_steps_per_s"]), q[0]["coordinate_steps_per_s"]
        lines.append(f"| train N={n}, Mcoord-steps/s | {t} | {lr / 1e6:.3f} | {pr / 1e6:.3f} | {lr / pr:.1f}x faster |")
        lines.append(f"| train N={n}, peak MB | {t} | {float(r['peak_rss_mb']):.0f} | {q[0]['peak_rss_mb']:.0f} | {q[0]['peak_rss_mb'] / float(r['peak_rss_mb']):.1f}x less |")
text = "\n".join(lines) + "\n"
print(text)
with open(os.path.join(out, "ratio.md"), "w") as f:
    f.write(text)
EOF
echo "bench.sh: results in $OUT/ (machine.txt, l2l.txt, l2l.csv, torch.jsonl, ratio.md, throughput.png)"
