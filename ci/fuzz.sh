#!/usr/bin/env bash
# The cargo fuzz targets of fuzz/: `sse` (SSE framing, every cut of the input agreeing
# with one read), `toml_loaders` (workload specs, targets files, price catalogs) and
# `report_reader` (schema check, then reading, merging and rendering a report) and
# `run_config` (run's and sweep's flags -> RunConfig -> the plan and its streams).
#
#   ci/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 10, the smoke
#                                      run in .ci/run); longer runs: ci/fuzz.sh 3600
#
# cargo-fuzz comes from crates.io on first use; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain take the sanitizer flags. The first build instruments every dependency
# (about 7 minutes on 2 cores); its target dir and the corpora (seeded from the
# repository's own workloads, catalog and reports) live in ~/.cache/infermeter/. A
# crash fails the run and leaves its input in fuzz/artifacts/<target>/; turn it into a
# regression test beside the code it broke.
set -euo pipefail
seconds="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(sse toml_loaders report_reader run_config); fi
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io" >&2
    cargo install --quiet --locked cargo-fuzz@0.13.2
fi
export CARGO_TARGET_DIR="$cache/fuzz-target"
export RUSTC_BOOTSTRAP=1
seed() {
    local dir="$cache/fuzz-corpus/$1"
    mkdir -p "$dir"
    case $1 in
        sse) printf '\x00data: {"choices":[]}\n\nevent: ping\ndata: x\r\n\r\n: comment\ndata: [DONE]\n\n' >"$dir/seed-openai" ;;
        toml_loaders)
            cp workloads/suite/*.toml results/catalog/default.toml "$dir/" ;;
        report_reader)
            cp results/published/cpu-amd-epyc-2core/quick-smollm2-q4_1/report.json "$dir/seed-report.json" ;;
        run_config)
            printf 'run\n--workload\nchat-short\n--requests\n5\n--rate\n2\n--arrival\ngamma\n--burstiness\n3\n' >"$dir/seed-gamma"
            printf 'sweep\n--workload\nagent-loop\n--concurrencies\n1,2\n--duration\n30\n--drain-timeout\n5\n' >"$dir/seed-sweep"
            printf 'run\n--suite\nquick\n--shard\n2/4\n--repeat\n2\n--target\nopenai,base_url=http://h/v1,model=m\n' >"$dir/seed-shard" ;;
    esac
    echo "$dir"
}
cd fuzz
for t in "${targets[@]}"; do
    corpus="$(cd .. && seed "$t")"
    echo "fuzz: $t for ${seconds}s" >&2
    log="$cache/fuzz-$t.log"
    set +e
    cargo fuzz run -O "$t" "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^#[0-9]+ +DONE|^Done|panicked|SUMMARY|crash-' "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz: $t failed (exit $rc); its input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
