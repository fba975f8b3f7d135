#!/usr/bin/env bash
# Builds the matrix-vector ladder once per set of -D flags for the backend's
# kernels (cuda_ops.cu compiled again with them) and runs each:
#   dev/cuda/variants.sh SHAPE DTYPE "NAME:FLAGS" ...    e.g. 7b q4_0 "base:" "w4:-DMV_WARPS=4"
# OPS=path/to/cuda_ops.cu (say, an earlier version kept aside) for an A/B of
# two versions of the kernels: "OPS=old.cu" as a flag builds from that file.
# Needs `make build/libllamac.a` first (the CUDA build).
set -euo pipefail
cd "$(dirname "$0")/../.."
shape=$1 dtype=$2
shift 2
NVCC=${NVCC:-nvcc}
FLAGS="-std=c++17 -O3 -Iinclude -Isrc -gencode arch=compute_90,code=sm_90"
LIBS="build/libllamac.a -L$(dirname "$(dirname "$(command -v "$NVCC")")")/lib64 -lcublas -lpcre2-8 -lcjson -lmicrohttpd -lm"
mkdir -p build/dev/variants
for v in "$@"; do
    name=${v%%:*} defs=${v#*:} ops=src/backend/cuda/cuda_ops.cu
    case $defs in OPS=*) ops=${defs#OPS=} defs= ;; esac
    (  # shellcheck disable=SC2086
        $NVCC $FLAGS $defs -c -o build/dev/variants/ops-$name.o "$ops" &&
        $NVCC $FLAGS $defs -o build/dev/variants/bench-$name dev/cuda/matvec_bench.cu \
            build/dev/variants/ops-$name.o $LIBS ) &
done
wait
for v in "$@"; do
    name=${v%%:*}
    echo "=== variant $name (${v#*:})"
    build/dev/variants/bench-$name "$shape" "$dtype"
done
