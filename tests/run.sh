#!/usr/bin/env bash
# Runs the unit tests, the command-line tests and the server tests against one build directory
# and prints the combined "N passed, N failed". --client adds the client suite (OpenAI's npm
# client and the chat page in headless Chromium; make test-plain passes it, the sanitizer run
# does not). Usage: tests/run.sh BUILD_DIR [--client]
set -u
BUILD=${1:-build}
suites="unit cli server"
[ "${2:-}" = --client ] && suites="$suites client"
total_pass=0
total_fail=0
total_skip=0
for suite in $suites; do
    case $suite in
        unit) out=$("$BUILD/test_llamac" 2>&1) ;;
        cli) out=$(tests/cli_test.sh "$BUILD" 2>&1) ;;
        server) out=$(tests/server_test.sh "$BUILD" 2>&1) ;;
        client)
            if ! command -v node >/dev/null; then
                out="FAIL the client tests need Node.js 20 or later (apt-get install nodejs npm)"
            elif [ ! -d tests/client/node_modules ]; then
                out="FAIL the client tests need their packages: npm ci --prefix tests/client"
            else
                out=$(node tests/client/run.mjs "$BUILD" 2>&1)
            fi
            ;;
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
