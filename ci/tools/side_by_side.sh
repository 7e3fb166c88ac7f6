#!/usr/bin/env bash
# The same workload against the same real server (llama.cpp's server with SmolLM2-135M)
# with infermeter and with GuideLLM (PyPI `guidellm`), then both tools' medians, output
# throughput and client CPU side by side (ci/tools/side_by_side.py).
#
#   ci/tools/side_by_side.sh [OUT_DIR] [REQUESTS]
#
# Workload: one request at a time (GuideLLM's `synchronous`, infermeter's closed loop of
# 1), REQUESTS (default 24) requests of 128 prompt tokens and 64 output tokens, the same
# prompts for both (`infermeter workloads export` gives GuideLLM its dataset), the
# completions API (llama-cpp-python's chat template rejects GuideLLM's list-of-parts
# messages). Both send `ignore_eos: true` and nothing else that changes generation:
# infermeter's `exact_output=true` would also send `min_tokens`, which llama-cpp-python
# enforces with a per-token logits processor that slows every decode step (measured: ITL
# +18% against GuideLLM's requests). The server decodes on one thread, so that on a
# 2-core machine the clients' own CPU does not change the speed they measure. Client CPU
# is each tool's process tree's user + system time, sampled every 50 ms, inside the
# tool's own measured window (infermeter's load.window_start/end, GuideLLM's benchmark
# start_time/end_time), so start-up is left out.
#
# A second, load phase runs both against infermeter's scripted loopback server at 100
# requests/s (16 tokens each): the clients' cost per streamed token when they are busy,
# and their schedule lag.
#
# Set-up: ci/setup.sh --reference (model, llama.cpp), and GuideLLM 0.8.1 in its own venv
# under ~/.cache/infermeter (a large install: it pulls torch), made when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:-/tmp/side-by-side}"
N="${2:-24}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
ci/setup.sh --reference >/dev/null
# GuideLLM 0.8.1, installed by `ci/setup.sh --reference` (its reader checks the export).
GVENV="$CACHE/venv-guidellm"
cargo build --release --quiet -p infermeter
BIN="$CARGO_TARGET_DIR/release/infermeter"
MODEL="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
rm -rf "$OUT" && mkdir -p "$OUT/tokenizer"

# GuideLLM builds its synthetic prompts with a Hugging Face tokenizer: the same one
# infermeter embeds (made from the GGUF, see ci/tools/gguf_to_tokenizer.py).
gunzip -c workloads/data/smollm2-135m.tokenizer.json.gz >"$OUT/tokenizer/tokenizer.json"
echo '{"tokenizer_class": "PreTrainedTokenizerFast"}' >"$OUT/tokenizer/tokenizer_config.json"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
setsid nohup "$CACHE/venv/bin/python" -m llama_cpp.server --model "$MODEL" --host 127.0.0.1 \
  --port "$PORT" --n_ctx 4096 --n_threads 1 --model_alias smollm2 --interrupt_requests False \
  >"$OUT/llama-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break
  sleep 1
done
URL="http://127.0.0.1:$PORT"

# Runs a command and samples the CPU time (user + system) of its whole process tree
# every 50 ms into FILE as "unix_time cpu_s" lines, so the CPU spent inside each
# tool's own measured window can be read off (start-up and shut-down excluded).
cputime() {
  local file=$1
  shift
  python3 - "$file" "$@" <<'PY'
import os, subprocess, sys, time
TICK = os.sysconf("SC_CLK_TCK")
def tree_cpu(root):
    kids, cpu = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        f = st[st.rfind(")") + 2:].split()
        kids.setdefault(int(f[1]), []).append(int(d))
        cpu[int(d)] = (int(f[11]) + int(f[12])) / TICK
    total, todo = 0.0, [root]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(kids.get(p, []))
    return total
out = open(sys.argv[1], "w")
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
while child.poll() is None:
    out.write(f"{time.time():.3f} {tree_cpu(child.pid):.2f}\n")
    time.sleep(0.05)
sys.exit(child.returncode)
PY
}

# A workload file: NAME, its [load] lines, and its output tokens (128 prompt tokens).
workload_toml() {
  printf 'format = 1\nname = "%s"\nversion = 1\nseed = 1\n[load]\n%s\nwarmup_requests = 1\n[input]\ndist = "fixed"\nvalue = 128.0\n[output]\ndist = "fixed"\nvalue = %s.0\n' "$1" "$2" "$3"
}

workload_toml side-by-side $'arrival = "closed"\nconcurrency = 1\nrequests = 1' 64 >"$OUT/workload.toml"

# The server's own decode time per token, from llama.cpp's per-request log lines
# (`eval time = ... ms / N runs`), for each tool's runs: the lines a run added.
evals() { grep -c ' eval time' "$OUT/llama-server.log" || true; }

# Both tools send the same prompts: infermeter's stream, exported, is GuideLLM's
# dataset (its prompt and token-count columns).
guidellm_prompts() {
  "$BIN" workloads export "$@" |
  python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    print(json.dumps({"prompt": r["prompt"], "prompt_tokens_count": r["prompt_tokens_count"],
                      "output_tokens_count": r["output_tokens_count"]}))'
}
guidellm_prompts "$OUT/workload.toml" --requests "$N" >"$OUT/prompts.jsonl"

for n in "$N"; do
  echo "infermeter, $n requests"
  a=$(evals)
  cputime "$OUT/cpu-infermeter-$n.txt" "$BIN" run --quiet \
    --target "openai,base_url=$URL/v1,model=smollm2,api=completions,body.ignore_eos=true" \
    --workload "$OUT/workload.toml" --requests "$n" --out "$OUT/infermeter-$n"
  echo "$a $(evals)" >"$OUT/server-lines-infermeter-$n.txt"
  echo "GuideLLM, $n requests"
  a=$(evals)
  HF_HUB_OFFLINE=1 cputime "$OUT/cpu-guidellm-$n.txt" "$GVENV/bin/guidellm" run \
    --backend "kind=openai_http,target=$URL,model=$OUT/tokenizer,validate_backend=false,request_format=/v1/completions" \
    --profile kind=synchronous --constraint "kind=max_requests,count=$n" \
    --data "kind=json_file,path=$OUT/prompts.jsonl" \
    --output "kind=json,path=$OUT/guidellm-$n.json" --disable-console-interactive
  echo "$a $(evals)" >"$OUT/server-lines-guidellm-$n.txt"
done

# Load phase: the clients' own cost under load, against the scripted loopback server
# (`infermeter serve-scripted`: TTFT 20 ms, 5 ms per token) at 100 requests/s, open
# loop, 1,500 requests of 128 prompt and 16 output tokens, the same prompts for both.
kill $SERVER 2>/dev/null || true
# It serves until its standard input closes: a FIFO this script holds open (fd 3), so
# the server ends with the script.
mkfifo "$OUT/scripted.stdin"
"$BIN" serve-scripted --ttft-ms 20 --itl-ms 5 <"$OUT/scripted.stdin" >"$OUT/scripted.txt" &
SCRIPTED=$!
exec 3>"$OUT/scripted.stdin"
trap 'kill $SERVER $SCRIPTED 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  grep -q '^base_url ' "$OUT/scripted.txt" 2>/dev/null && break
  sleep 0.1
done
SURL=$(sed -n 's/^base_url //p' "$OUT/scripted.txt")
workload_toml side-by-side-load $'arrival = "constant"\nrate_rps = 100.0\nrequests = 1500' 16 >"$OUT/load.toml"
guidellm_prompts "$OUT/load.toml" >"$OUT/load-prompts.jsonl"
echo "infermeter, 100 requests/s against the scripted server"
cputime "$OUT/load-cpu-infermeter.txt" "$BIN" run --quiet \
  --target "openai,base_url=$SURL,model=scripted,api=completions" \
  --workload "$OUT/load.toml" --out "$OUT/load-infermeter"
echo "GuideLLM, 100 requests/s against the scripted server"
HF_HUB_OFFLINE=1 cputime "$OUT/load-cpu-guidellm.txt" "$GVENV/bin/guidellm" run \
  --backend "kind=openai_http,target=${SURL%/v1},model=$OUT/tokenizer,validate_backend=false,request_format=/v1/completions" \
  --profile kind=constant,rate=100 --constraint kind=max_requests,count=1500 \
  --data "kind=json_file,path=$OUT/load-prompts.jsonl" \
  --output "kind=json,path=$OUT/load-guidellm.json" --disable-console-interactive
python3 ci/tools/side_by_side.py "$OUT"
