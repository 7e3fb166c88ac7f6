#!/usr/bin/env bash
# The full-size soak: REQUESTS streamed requests (default 200,000; 16 tokens in, 4 out)
# at RATE per second (default 2,000), open loop, against the scripted loopback server
# (release builds of both). Prints the requests sent and answered, the wall time,
# infermeter's peak RSS, the lines in requests.jsonl, what the server saw, and the
# records lost (which must be 0).
#
#   ci/tools/soak.sh [REQUESTS] [RATE]
set -euo pipefail
requests="${1:-200000}"
rate="${2:-2000}"
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/target}"
cargo build --release --quiet -p infermeter
cargo build --release --quiet -p infermeter-scripted --example scripted_server
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
coproc SERVER { "$CARGO_TARGET_DIR/release/examples/scripted_server" 0.5 0.2; }
# Own copies of the coprocess's pipes: bash closes its own when the server exits.
exec {server_out}<&"${SERVER[0]}" {server_in}>&"${SERVER[1]}"
read -r _ url <&"$server_out"
cat >"$dir/soak.toml" <<TOML
format = 1
name = "soak"
version = 1
seed = 1
[load]
arrival = "constant"
rate_rps = $rate
requests = $requests
warmup_requests = 0
[input]
dist = "fixed"
value = 16.0
[output]
dist = "fixed"
value = 4.0
TOML
start=$(date +%s.%N)
"$CARGO_TARGET_DIR/release/infermeter" run --quiet --workload "$dir/soak.toml" \
    --target "openai,base_url=$url,model=soak,tokenizer=none" --out "$dir/run" >/dev/null &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    if [ "${kib:-0}" -gt "$peak" ]; then peak=$kib; fi
    sleep 0.2
done
wait "$pid"
end=$(date +%s.%N)
exec {SERVER[1]}>&- {server_in}>&-
served=$(wc -l <&"$server_out")
lines=$(wc -l <"$dir/run/requests.jsonl")
python3 - "$dir/run/report.json" "$requests" "$lines" "$served" "$peak" "$start" "$end" "$rate" <<'PY'
import json, sys
path, requests, lines, served, peak, start, end, rate = sys.argv[1:]
r = json.load(open(path))["results"][0]
requests, lines, served = int(requests), int(lines), int(served)
lost = requests - min(lines, r["requests"]["sent"], served)
print(f"requests {requests} at {rate}/s: sent {r['requests']['sent']}, ok {r['requests']['ok']}, "
      f"failed {r['requests']['failed']}; wall {float(end) - float(start):.1f} s; "
      f"peak RSS {int(peak) / 1024:.1f} MiB; requests.jsonl lines {lines}; server saw {served}; "
      f"lost {lost}; queue_ms p99 {r['latency']['queue_ms']['p99']} ms")
sys.exit(1 if lost else 0)
PY
