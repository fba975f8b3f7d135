#!/usr/bin/env bash
# The CUDA backend on a machine with a GPU, in one go: build, the GPU tests
# (tests/test_cuda.c and the GPU golden logits), then the benchmarks on
# mkmodel checkpoints, ending with a table. Usage:
#   scripts/gpu-check.sh [quick]       # quick: tests and the small models only
# Environment: LLAMAC_SHARED (default ../shared) for the trained test models,
# BENCH_DIR for the generated checkpoints (default build/bench-models),
# OUT for the logs (default build/gpu-check).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-check}
BENCH_DIR=${BENCH_DIR:-build/bench-models}
mkdir -p "$OUT" "$BENCH_DIR"
JOBS=$(nproc)

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
make -j"$JOBS" build/llamac build/test_llamac >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
echo "build: ok (CUDA=$(make -s print-cuda))"

echo "== GPU tests"
build/test_llamac cuda 2>&1 | tee "$OUT/tests.txt"
tests_ok=$?

echo "== matrix-vector ladder (dev/cuda/matvec_bench.cu)"
make -j"$JOBS" dev >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
for shape in 42m 110m $([ "${1:-}" != quick ] && echo 7b); do
    build/dev/matvec_bench "$shape" f16 | tee "$OUT/ladder-$shape.txt"; echo
done

bench() { # shape dtype extra-args...
    local shape=$1 dtype=$2; shift 2
    [ -f "$BENCH_DIR/$shape.bin" ] || build/llamac mkmodel --shape "$shape" --out "$BENCH_DIR/$shape.bin" >/dev/null || return 1
    build/llamac bench -m "$BENCH_DIR/$shape.bin" --device cuda --dtype "$dtype" --membw --json "$@" \
        >"$OUT/bench-$shape-$dtype$(echo "$@" | tr -d ' -').json" 2>"$OUT/bench.err" || { cat "$OUT/bench.err"; return 1; }
    python3 - "$OUT/bench-$shape-$dtype$(echo "$@" | tr -d ' -').json" "$shape" "$dtype" "$*" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bw = r.get("membw_gb_s", 0)
for t in r["results"]:
    extra = f'{t["gb_s"]:8.0f} GB/s {100 * t["gb_s"] / bw:5.1f}%' if "gb_s" in t else ""
    print(f'{sys.argv[2]:12} {sys.argv[3]:5} {t["test"]:7} {sys.argv[4]:22} {t["tok_s_median"]:10.1f} tok/s '
          f'[{t["tok_s_min"]:.1f} .. {t["tok_s_max"]:.1f}] {extra}  (copy {bw:.0f} GB/s)')
PY
}

echo "== benchmarks (median of -r runs [min .. max]; % of the measured device-copy bandwidth)"
{
    bench stories42M f16 -p 512 -n 128 -r 10
    bench stories110M f16 -p 512 -n 128 -r 10
    bench stories110M f32 -p 0 -n 128 -r 5
    bench stories110M bf16 -p 0 -n 128 -r 5
    bench stories110M q8_0 -p 0 -n 128 -r 5
    if [ "${1:-}" != quick ]; then
        bench llama2-7b f16 -p 512 -n 128 -r 5
        bench llama2-7b f16 -p 0 -n 128 -r 3 -d 3960
        bench llama2-7b q8_0 -p 512 -n 128 -r 3
        bench llama2-7b q4_0 -p 512 -n 128 -r 3
    fi
} | tee "$OUT/bench.txt"
[ "$tests_ok" -eq 0 ]
