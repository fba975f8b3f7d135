#!/usr/bin/env bash
# Runs the unit tests, the command-line tests and the server tests against one build directory
# and prints the combined "N passed, N failed". Usage: tests/run.sh BUILD_DIR
set -u
BUILD=${1:-build}
total_pass=0
total_fail=0
total_skip=0
for suite in unit cli server; do
    case $suite in
        unit) out=$("$BUILD/test_llamac" 2>&1) ;;
        cli) out=$(tests/cli_test.sh "$BUILD" 2>&1) ;;
        server) out=$(tests/server_test.sh "$BUILD" 2>&1) ;;
    esac
    echo "$out"
    summary=$(echo "$out" | grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' | tail -1)
    if [ -z "$summary" ]; then
        echo "FAIL $suite ended without a summary (crashed?)"
        total_fail=$((total_fail + 1))
        continue
    fi
    total_pass=$((total_pass + $(echo "$summary" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
    total_fail=$((total_fail + $(echo "$summary" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
    case "$summary" in *skipped) total_skip=$((total_skip + $(echo "$summary" | sed -E 's/.* ([0-9]+) skipped/\1/'))) ;; esac
done
echo "$(basename "$BUILD"): $total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
