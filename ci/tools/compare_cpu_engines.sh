#!/usr/bin/env bash
# Measures, in one run on this machine, prefill and decode tokens/s of infermeter's CPU
# engine and of llama.cpp (llama-cpp-python) on the same SmolLM2-135M Q4_1 GGUF, at 1
# and 8 sequences decoded together, and prints one JSON object per line.
#   ci/tools/compare_cpu_engines.sh [PROMPT_TOKENS] [OUTPUT_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/../.."
ci/setup.sh --reference
PROMPT="${1:-128}"
OUT="${2:-64}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
MODEL="${INFERMETER_MODELS:-$CACHE/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release --quiet -p infermeter-kernels --example engine_speed
echo "{\"machine\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores\", \"model\": \"$(basename "$MODEL")\"}"
"$CARGO_TARGET_DIR/release/examples/engine_speed" "$PROMPT" "$OUT" 1 8
for n in 1 8; do
    "$CACHE/venv/bin/python" ci/tools/llama_reference.py speed "$MODEL" "$OUT" "$n" "$PROMPT"
    echo
done
