#!/usr/bin/env bash
# The GPU check: ONE script for one H100 or H200, about 9 minutes, everything under
# $OUT (summary.md, steps.tsv and results.tar.gz with every report and log).
#
#   ci/tools/gpu_stage.sh                       # on the development machine: the bundle
#   run(command="ci/tools/gpu_checks.sh", carry=["target/gpu"])     # through the device tool
#   ci/tools/gpu_checks.sh --only-failed steps.tsv                 # rerun what failed
#   ci/tools/gpu_checks.sh --dry-run            # here, without a GPU: every step's
#                                               # command on local-cpu and small models
#
# Steps (each with its own time limit; a failed step does not stop the others):
#   probe      nvidia-smi, `infermeter hw`
#   compile    every kernel compiled by the machine's NVRTC, assembled by ptxas
#   ops        each CUDA op against its float64 reference (cuda_ops, cuda_attention,
#              cuda_moe)
#   engine     the runtime on the GPU against the CPU engine (SmolLM2 shape, dense, MoE)
#   roofline   `infermeter roofline --device cuda:0` for llama3-8b, qwen3-30b-a3b, SmolLM2
#   llama-*    llama3-8b-shape synthetic weights, bf16 / q8_0 / q4_0: a sweep of
#              chat-short at concurrency 1 and 8 (15 s a point)
#   qwen-q4_0  qwen3-30b-a3b-shape synthetic q4_0 weights at concurrency 1, 8, 32
#   quick      the quick suite on local-cuda with SmolLM2 (synthetic weights)
#   bench      criterion benchmarks of the CUDA ops (GEMV per format at batch 1/4/8,
#              fused gate/up, decode attention at 1K/8K/32K, 2K prefill), short settings
#   plan-backtest  the planner's back-test on the GPU (ci/backtest: SmolLM2-shape bf16 at
#              128/512/1024-token prompts x 1/2/4/8 sessions; calibrated on the corners,
#              the 512-token points predicted): the first GPU calibration of `plan`
# Every run reports NVML energy (or says why not) in its report.
#
# --dry-run swaps local-cuda for local-cpu, cuda:0 for cpu, the GPU-sized presets for
# tiny-dense / tiny-moe, and cuts requests, so that the script, its flags, the summary
# and --only-failed are checked on a CPU-only machine; only the launches are not.
set -uo pipefail
cd "$(dirname "$0")/../.."

DRY=0
ONLY_FAILED=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --only-failed) ONLY_FAILED="${2:?--only-failed needs the steps.tsv of the earlier run}"; shift ;;
        *) echo "gpu_checks: unknown argument $1 (use --dry-run, --only-failed STEPS_TSV)" >&2; exit 2 ;;
    esac
    shift
done

OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
WORK="$OUT/work"
mkdir -p "$WORK"
BIN="${GPU_BIN:-target/gpu/bin}"
IM="${INFERMETER_BIN:-$BIN/infermeter}"
STEPS="$OUT/steps.tsv"
printf 'step\tstatus\tseconds\tlog\n' > "$STEPS"

if [ "$DRY" = 0 ]; then
    # The machine's own NVRTC and ptxas (the toolkit's or pip's), found by the loader.
    for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null)/cu13/lib; do
        [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    export INFERMETER_PTXAS="${INFERMETER_PTXAS:-$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)}"
    # The SmolLM2 GGUF, when gpu_stage.sh (GGUF=1) split it into parts carried in
    # earlier calls: joined and checked, for the engine step's real-model parity.
    if ls target/gpu/model/part-* >/dev/null 2>&1; then
        mkdir -p target/gpu/models
        cat target/gpu/model/part-* > target/gpu/models/SmolLM2-135M-Instruct.Q4_1.gguf
        if [ "$(sha256sum target/gpu/models/SmolLM2-135M-Instruct.Q4_1.gguf | cut -d' ' -f1)" = "$(cat target/gpu/model/sha256)" ]; then
            export INFERMETER_MODELS="$PWD/target/gpu/models"
        else
            echo "gpu_checks: the SmolLM2 parts are incomplete: the engine step's GGUF checks will fail" >&2
        fi
    fi
fi
TARGET_KIND=local-cuda
DEVICE=cuda:0
BIG_DENSE=llama3-8b
BIG_MOE=qwen3-30b-a3b
POINT_S=15
if [ "$DRY" = 1 ]; then
    POINT_S=2
    TARGET_KIND=local-cpu
    DEVICE=cpu
    BIG_DENSE=tiny-dense
    BIG_MOE=tiny-moe
fi

# Whether step $1 runs: all of them, or those failed (or never run) in --only-failed's file.
wanted() {
    [ -z "$ONLY_FAILED" ] && return 0
    ! awk -F'\t' -v s="$1" '$1 == s && $2 == "ok" { found = 1 } END { exit !found }' "$ONLY_FAILED"
}

# step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output in NAME.log.
step() {
    local name="$1" limit="$2"
    shift 2
    if ! wanted "$name"; then
        printf '%s\tpassed-before\t0\t-\n' "$name" >> "$STEPS"
        return
    fi
    local log="$WORK/$name.log" t0 status rc
    t0=$(date +%s)
    echo "gpu_checks: $name: $*" >&2
    { echo "\$ $*"; timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@"; } > "$log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124|137) status="timed-out(${limit}s)" ;;
        *) status="failed(rc=$rc)" ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - t0 ))" "$name.log" >> "$STEPS"
    echo "gpu_checks: $name: $status" >&2
}

# needs FILE: a step whose program is missing from the bundle fails saying so.
needs() {
    [ -x "$1" ] || { echo "missing from the bundle: $1 (ci/tools/gpu_stage.sh builds it)"; return 1; }
}

test_binary() {
    needs "$BIN/$1" && "$BIN/$1" --nocapture --test-threads=1
}

ops() {
    test_binary cuda_ops && test_binary cuda_attention && test_binary cuda_moe
}

probe() {
    if [ "$DRY" = 0 ]; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit --format=csv || return 1
    fi
    needs "$IM" && "$IM" hw > "$WORK/hw.json" && cat "$WORK/hw.json"
}

# points NAME TARGET CONCURRENCIES: a closed-loop sweep of chat-short at each
# concurrency (comma-separated), one process, so the weights load once; each point
# sends for $POINT_S seconds.
points() {
    local name="$1" target="$2" conc="$3"
    needs "$IM" && "$IM" sweep --quiet --workload chat-short --target "$target" \
        --concurrencies "$conc" --requests 100000 --duration "$POINT_S" --warmup 1 \
        --out "$WORK/$name"
}

decode() {
    local precision="$1"
    points "llama-$precision" "$TARGET_KIND,model=$BIG_DENSE,weights=synthetic,precision=$precision,max_batch=8" 1,8
}

moe() {
    points qwen-q4_0 "$TARGET_KIND,model=$BIG_MOE,weights=synthetic,precision=q4_0,max_batch=32" 1,8,32
}

quick() {
    needs "$IM" && "$IM" run --quiet --suite quick \
        --target "$TARGET_KIND,model=smollm2-135m,weights=synthetic" --out "$WORK/quick"
}

bench() {
    if [ "$DRY" = 1 ]; then
        # Here the benchmarks only say why they are skipped (no GPU).
        needs "$BIN/cuda_bench" && "$BIN/cuda_bench" --bench
        return
    fi
    needs "$BIN/cuda_bench" &&
        CRITERION_HOME="$WORK/criterion" "$BIN/cuda_bench" --bench \
            --warm-up-time 0.5 --measurement-time 1 --sample-size 10
}

roofline() {
    needs "$IM" && "$IM" roofline --device "$DEVICE" $([ "$DRY" = 1 ] && echo --quick) \
        --model "$BIG_DENSE,$BIG_MOE,smollm2-135m" \
        --precision "$([ "$DRY" = 1 ] && echo q8_0,q4_0 || echo bf16,q8_0,q4_0)" \
        --batch 1,8,32 --context 1024,8192 --json "$WORK/roofline.json"
}

# The planner's back-test: closed loops at fixed lengths, prefix cache off.
plan_backtest() {
    needs "$IM" || return 1
    local model=smollm2-135m precision=bf16 requests=16
    if [ "$DRY" = 1 ]; then model=tiny-dense; precision=q8_0; requests=4; fi
    local p
    for p in 128 512 1024; do
        "$IM" sweep --quiet --workload "ci/backtest/bt-p$p.toml" \
            --target "$TARGET_KIND,model=$model,weights=synthetic,precision=$precision,prefix_cache=off" \
            --concurrencies 1,2,4,8 --requests "$requests" --out "$WORK/backtest-p$p" || return 1
    done
    "$IM" backtest --calibrate "$WORK/backtest-p128/report.json" "$WORK/backtest-p1024/report.json" \
        --calibrate-concurrency 1,8 --predict "$WORK/backtest-p512/report.json" \
        --json "$WORK/backtest.json"
}

export DRY POINT_S IM BIN WORK TARGET_KIND DEVICE BIG_DENSE BIG_MOE
export -f needs test_binary ops probe points decode moe quick roofline bench plan_backtest

step probe 60 probe
step compile 120 test_binary cuda_compile
step ops 240 ops
step engine 240 test_binary cuda_engine
step roofline 120 roofline
step llama-bf16 150 decode bf16
step llama-q8_0 120 decode q8_0
step llama-q4_0 120 decode q4_0
step qwen-q4_0 240 moe
step quick 240 quick
step bench 240 bench
step plan-backtest 240 plan_backtest

# The summary a person acts on: each step's status, then the headline figures.
{
    echo "# GPU checks $(date -u +%Y-%m-%dT%H:%M:%SZ)$([ "$DRY" = 1 ] && echo ' (dry run: local-cpu, small models)')"
    echo
    if [ "$DRY" = 0 ]; then
        device_line=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
    else
        device_line="no GPU (dry run on $(uname -n))"
    fi
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); device: $device_line"
    echo
    echo "| step | status | seconds |"
    echo "|---|---|---:|"
    awk -F'\t' 'NR > 1 { printf "| %s | %s | %s |\n", $1, $2, $3 }' "$STEPS"
    echo
    echo "## Results"
    echo
    for r in "$WORK"/*/report.json; do
        [ -f "$r" ] || continue
        python3 - "$r" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
for e in rep["results"]:
    rf = e.get("roofline") or {}
    en = e.get("energy") or {}
    out = e["throughput"]["output_tokens_per_s"]
    fmt = lambda v, f="{:.3g}": "-" if v is None else f.format(v)
    conc = e["load"].get("concurrency")
    print(f"- {sys.argv[1].split('/')[-2]} {e['workload']['name']} {e['target']['model']} {e['target']['precision']}"
          f"{'' if conc is None else f' c={conc}'}: "
          f"{e['requests']['ok']}/{e['requests']['sent']} ok, {out:.1f} out tok/s, "
          f"decode {fmt(rf.get('decode_tokens_per_s'))} tok/s of ceiling {fmt(rf.get('decode_ceiling_tokens_per_s'))} "
          f"(ratio {fmt(rf.get('decode_ratio'))}), energy {fmt(en.get('energy_j'))} J "
          f"{'' if en.get('energy_j') is not None else '(' + str(en.get('reason'))[:60] + ')'}")
PY
    done
    if [ -f "$WORK/roofline.json" ]; then
        python3 - "$WORK/roofline.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
l = d["limits"]
print(f"- roofline {l['device']} ({l['name']}): copy {l['copy_gb_per_s']:.0f} GB/s, read {l['read_gb_per_s']:.0f} GB/s, "
      + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in l["matmul_gflop_per_s"].items()))
PY
    fi
    if [ -f "$WORK/backtest.json" ]; then
        python3 - "$WORK/backtest.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
pct = lambda v: "-" if v is None else f"{v * 100:.1f}%"
print(f"- plan back-test: {s['predictions']} predictions, median |error| decode tokens/s "
      f"{pct(s['decode_median_abs_error'])}, TTFT {pct(s['ttft_median_abs_error'])}")
PY
    fi
    failed=$(awk -F'\t' 'NR > 1 && $2 !~ /^(ok|passed-before|skipped)/ { print $1 }' "$STEPS")
    [ -n "$failed" ] && { echo; echo "Failed steps' last lines:"; }
    awk -F'\t' 'NR > 1 && $2 !~ /^(ok|passed-before|skipped)/ { print $1 }' "$STEPS" | while read -r s; do
        echo
        echo "### $s"
        echo '```'
        tail -15 "$WORK/$s.log"
        echo '```'
    done
} > "$OUT/summary.md"

# Everything else in one archive (the device tool brings back at most 8 files).
tar -czf "$OUT/results.tar.gz" -C "$WORK" .
rm -rf "$WORK"
cat "$OUT/summary.md"
! awk -F'\t' 'NR > 1 && $2 !~ /^(ok|passed-before|skipped)/ { bad = 1 } END { exit !bad }' "$STEPS"
