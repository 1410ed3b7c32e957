#!/bin/sh
# Runs every test program in BUILD/tests, prints each one's output, and a total line.
# Exits non-zero if any program fails (a crash or a non-zero exit counts as a failure).
set -u
build=${1:-build}
passed=0; failed=0; bad=""
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    printf "%s\n" "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ "$rc" -ne 0 ]; then
        bad="$bad $(basename "$t")"
        [ -z "$f" ] && failed=$((failed + 1))
    fi
done
echo "tests: $passed passed, $failed failed"
if [ -n "$bad" ]; then echo "failing programs:$bad" >&2; exit 1; fi
[ "$passed" -gt 0 ] || { echo "no tests ran" >&2; exit 1; }
