#!/usr/bin/env bash
# Builds, on the development machine, what a GPU machine needs to check the CUDA path
# (those machines have no Rust toolchain and no network), into target/gpu/ (ignored):
# the release binary, the CUDA test binaries and the CUDA op benchmarks. Then, through the device tool:
#   run(command="ci/tools/gpu_checks.sh", carry=["target/gpu"])
# The binaries, stripped, are about 25 MB. The SmolLM2 GGUF (98 MB) is over one call's
# 64 MiB: with GGUF=1 it is also split into target/gpu/model/part-* (30 MB each);
# carry "target/gpu/bin" with one part per call (files carried earlier stay on the warm
# machine), and gpu_checks.sh joins them once all are there.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
OUT=target/gpu
rm -rf "$OUT" && mkdir -p "$OUT/bin"
cargo build --release --locked --quiet -p infermeter
cp "$CARGO_TARGET_DIR/release/infermeter" "$OUT/bin/"
strip "$OUT/bin/infermeter"
for t in cuda_compile cuda_ops cuda_attention cuda_moe cuda_engine; do
    exe=$(cargo test --release --quiet -p infermeter-kernels --test "$t" --no-run --message-format=json \
        | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])' | tail -1)
    cp "$exe" "$OUT/bin/$t"
    strip "$OUT/bin/$t"
done
# The CUDA op benchmarks (criterion), run by gpu_checks.sh's bench step.
exe=$(cargo bench --quiet -p infermeter-kernels --bench cuda_ops --no-run --message-format=json \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])' | tail -1)
cp "$exe" "$OUT/bin/cuda_bench"
strip "$OUT/bin/cuda_bench"
if [ "${GGUF:-0}" = 1 ]; then
    mkdir -p "$OUT/model"
    split -b 30M "$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$OUT/model/part-"
    sha256sum "$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" | cut -d' ' -f1 > "$OUT/model/sha256"
fi
du -sh "$OUT"/*
