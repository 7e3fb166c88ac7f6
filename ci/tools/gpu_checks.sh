#!/usr/bin/env bash
# Runs on a GPU machine (through the device tool) the CUDA checks staged by
# ci/tools/gpu_stage.sh: kernels compile with the machine's NVRTC, each op against its
# float64 reference, and the runtime on the GPU against the CPU engine. Output goes to
# $OUT (or ./gpu-out) as one log per test binary.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
BIN=target/gpu/bin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/device.csv" 2>&1
# The machine's own NVRTC (pip's nvidia-cuda-nvrtc or the toolkit's), found by the loader.
for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null)/cu13/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
if ls target/gpu/model/part-* >/dev/null 2>&1; then
    mkdir -p target/gpu/models
    cat target/gpu/model/part-* > target/gpu/models/SmolLM2-135M-Instruct.Q4_1.gguf
    if [ "$(sha256sum target/gpu/models/SmolLM2-135M-Instruct.Q4_1.gguf | cut -d' ' -f1)" = "$(cat target/gpu/model/sha256)" ]; then
        export INFERMETER_MODELS="$PWD/target/gpu/models"
    else
        echo "model parts incomplete: SmolLM2 checks will fail" | tee "$OUT/model.txt"
    fi
fi
status=0
for t in cuda_compile cuda_ops cuda_engine; do
    "$BIN/$t" --nocapture --test-threads=1 > "$OUT/$t.log" 2>&1 || status=1
    tail -3 "$OUT/$t.log"
done
exit $status
