#!/usr/bin/env bash
# Measures the planner's CPU back-test set on this machine and back-tests the planner
# on it: SmolLM2-135M q4_1 at 128/512/1024-token prompts x 1/2/4/8 sessions, and the
# tiny presets (dense, MoE) in f16, q8_0 and q4_0 at 512-token prompts x 1/4 sessions
# (ci/backtest/*.toml: fixed lengths, closed loop, prefix cache off: every point
# sends the same seeded prompts, which a prefix cache would serve from the point before). Then `infermeter plan backtest`
# calibrates on SmolLM2 at the corner points (1 and 8 sessions, 128 and 1024 tokens)
# and predicts every other point.
#
# Usage: ci/tools/plan_backtest.sh OUT_DIR [--requests N] [--skip-measure]
# Run it on a quiet machine: it takes about 20 minutes on 2 cores.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:?usage: plan_backtest.sh OUT_DIR [--requests N] [--skip-measure]}"
shift
requests=16
measure=1
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests="$2"; shift 2 ;;
    --skip-measure) measure=0; shift ;;
    *) echo "plan_backtest.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin="${INFERMETER_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/infermeter/target}/release/infermeter}"
[ -x "$bin" ] || { echo "plan_backtest.sh: no infermeter binary at $bin (cargo build --release)" >&2; exit 2; }
mkdir -p "$out"
wl="$here/ci/backtest"
sweep() { # name target workload concurrencies
  "$bin" sweep --target "$2" --workload "$wl/$3.toml" --concurrencies "$4" \
    --requests "$requests" --out "$out/$1" >"$out/$1.log" 2>&1 \
    || { echo "plan_backtest.sh: $1 failed (see $out/$1.log)" >&2; exit 1; }
  echo "measured $1"
}
if [ "$measure" = 1 ]; then
  for p in 128 512 1024; do
    sweep "smollm2-q4_1-p$p" "local-cpu,model=smollm2-135m,precision=q4_1,prefix_cache=off" "bt-p$p" 1,2,4,8
  done
  for m in tiny-dense tiny-moe; do
    for q in f16 q8_0 q4_0; do
      sweep "$m-$q-p512" "local-cpu,model=$m,precision=$q,prefix_cache=off" bt-p512 1,4
    done
  done
fi
cal=()
pred=()
for d in "$out"/*/; do
  r="$d/report.json"
  [ -f "$r" ] || continue
  case "$(basename "$d")" in
    smollm2-q4_1-p128|smollm2-q4_1-p1024) cal+=("$r") ;;
    *) pred+=("$r") ;;
  esac
done
"$bin" backtest --calibrate "${cal[@]}" --calibrate-concurrency 1,8 \
  --predict "${pred[@]}" --json "$out/backtest.json" | tee "$out/backtest.txt"
