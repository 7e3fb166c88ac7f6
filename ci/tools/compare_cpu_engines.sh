#!/usr/bin/env bash
# Measures, in one run on this machine, prefill and decode tokens/s of infermeter's CPU
# engine and of llama.cpp (llama-cpp-python) on the same SmolLM2-135M Q4_1 GGUF, on the
# same 2 threads, with each engine's defaults and like for like:
#   - both KV caches f16 (infermeter's default `kv_cache=f16`; llama.cpp's default
#     type_k/type_v f16, flash attention "auto", as llama-bench and its speed tests run);
#   - prefill: every sequence's prompt as one batch on both sides, cut the same way:
#     llama.cpp's one llama_decode of all sequences runs ubatches of its default 512
#     tokens; infermeter runs steps of at most 512 tokens (its max_tokens_per_step),
#     sequence after sequence (engine_speed's default step_tokens=512);
#   - decode: all sequences one token each per call, OUT calls, after the prefill.
# For every prompt length and 1 and 8 sequences it prints one JSON object per engine,
# then a table of infermeter's tokens/s over llama.cpp's (above 1: infermeter faster).
#   ci/tools/compare_cpu_engines.sh [PROMPTS] [OUTPUT_TOKENS] [SEQS]
#   defaults: 128,512,2048,4096  64  1,8
set -euo pipefail
cd "$(dirname "$0")/../.."
ci/setup.sh --reference >&2
PROMPTS="${1:-128,512,2048,4096}"
OUT="${2:-64}"
SEQS="${3:-1,8}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
MODEL="${INFERMETER_MODELS:-$CACHE/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release --quiet -p infermeter-kernels --example engine_speed
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
cpu() { grep -m1 "^$1" /proc/cpuinfo | cut -d: -f2 | xargs; }
VECTOR="$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_vnni|avx_vnni)$' | paste -sd, -)"
echo "{\"machine\": \"$(cpu 'model name'), $(nproc) cores\", \"cpu_family\": \"$(cpu 'cpu family')\", \"cpu_model\": \"$(cpu 'model\s')\", \"vector_flags\": \"$VECTOR\", \"model\": \"$(basename "$MODEL")\", \"commit\": \"$(git rev-parse --short HEAD)\"}" | tee -a "$LOG"
# Interleaved per prompt length, so a slow spell of the machine hits both engines.
for p in ${PROMPTS//,/ }; do
    "$CARGO_TARGET_DIR/release/examples/engine_speed" "$p" "$OUT" ${SEQS//,/ } | tee -a "$LOG"
    for n in ${SEQS//,/ }; do
        "$CACHE/venv/bin/python" ci/tools/llama_reference.py speed "$MODEL" "$OUT" "$n" "$p" | tee -a "$LOG"
    done
done
python3 - "$LOG" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ours = {(r["prompt_tokens"], r["sequences"]): r for r in rows if r.get("engine", "").startswith("infermeter")}
theirs = {(r["prompt_tokens"], r["sequences"]): r for r in rows if r.get("engine", "").startswith("llama.cpp")}
print()
print("| prompt tokens | sequences | decode tok/s (infermeter, llama.cpp) | decode ratio | prefill tok/s (infermeter, llama.cpp) | prefill ratio |")
print("|---|---|---|---|---|---|")
for key in sorted(ours):
    if key not in theirs:
        continue
    a, b = ours[key], theirs[key]
    print(f"| {key[0]} | {key[1]} | {a['decode_tokens_per_s']:.1f}, {b['decode_tokens_per_s']:.1f} | "
          f"{a['decode_tokens_per_s'] / b['decode_tokens_per_s']:.2f} | "
          f"{a['prefill_tokens_per_s']:.1f}, {b['prefill_tokens_per_s']:.1f} | "
          f"{a['prefill_tokens_per_s'] / b['prefill_tokens_per_s']:.2f} |")
EOF
