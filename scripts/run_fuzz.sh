#!/bin/sh
# Runs each libFuzzer harness BUILD/fuzz/TARGET for SECONDS on its seed corpus
# (tests/fuzz/corpus/TARGET), one after the other, and prints one line per target from
# libFuzzer's final statistics. Exits non-zero if any target finds a crash, a leak, a
# timeout or an allocation beyond the limits below; the input that did it is kept in
# BUILD/fuzz/artifacts/ and its path printed. New inputs go to a scratch corpus that is
# removed at the end, so the repository's seeds stay as they are.
#   scripts/run_fuzz.sh BUILD SECONDS TARGET...
#
# Limits: the loaders allocate in proportion to the bytes they were given (a few MB at most
# for libFuzzer's inputs of at most 4 KiB; a checkpoint's declared architecture is checked
# against its data section before its weights are allocated). So one allocation over 64 MB
# (-malloc_limit_mb) means a size was trusted that no valid file of that size can have (the
# IDX reproducers asked 784 MB to 3.6 GB); 2 GB resident (-rss_limit_mb) likewise.
set -u
build=$1; seconds=$2; shift 2
[ $# -gt 0 ] || { echo "usage: $0 BUILD SECONDS TARGET..." >&2; exit 2; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/l2l-fuzz-XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$build/fuzz/artifacts"
failed=""
for t in "$@"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    "$build/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=64 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$build/fuzz/artifacts/$t-" \
        "$scratch/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz $t: ${runs:-?} executions (${secs:-?}/s) in ${seconds} s, no crash, leak or OOM"
    else
        failed="$failed $t"
        tail -40 "$log"
        echo "fuzz $t: FAILED (exit $rc) after ${runs:-?} executions;" \
             "reproduce with $build/fuzz/$t $(ls -t "$build/fuzz/artifacts/$t-"* 2>/dev/null | head -1)"
    fi
done
n_failed=$(echo $failed | wc -w)
echo "fuzz: $(($# - n_failed)) passed, $n_failed failed"
if [ -n "$failed" ]; then echo "fuzz: failing targets:$failed" >&2; exit 1; fi
