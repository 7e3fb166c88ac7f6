#!/usr/bin/env bash
# The pull-request regression check: builds the base commit and the working tree, runs
# the quick suite with each on this machine, one after the other, and compares them
# with the head's `infermeter compare` (gating cost and throughput; thresholds in
# COMPARE_ARGS, default 25%: shared CI runners are noisy). Writes OUT/base, OUT/head and
# OUT/compare.md; exits 1 on a regression.
#
#   ci/tools/pr_compare.sh BASE_REF OUT
set -euo pipefail
base="${1:?usage: pr_compare.sh BASE_REF OUT}"
out="${2:?}"
cd "$(dirname "$0")/../.."
ci/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/target}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
src="$(mktemp -d)"
trap 'git worktree remove --force "$src" 2>/dev/null || rm -rf "$src"' EXIT
git worktree add --detach "$src" "$base" >/dev/null
(cd "$src" && cargo build --release --quiet -p infermeter)
cp "$CARGO_TARGET_DIR/release/infermeter" "$out/infermeter-base"
cargo build --release --quiet -p infermeter
cp "$CARGO_TARGET_DIR/release/infermeter" "$out/infermeter-head"
"$out/infermeter-base" run --suite quick --quiet --out "$out/base" >/dev/null
"$out/infermeter-head" run --suite quick --quiet --out "$out/head" >/dev/null
# shellcheck disable=SC2086
"$out/infermeter-head" compare "$out/base/report.json" "$out/head/report.json" --format md \
    --metrics usd_per_m_blended_workload,output_tokens_per_s ${COMPARE_ARGS:---threshold 25} \
    | tee "$out/compare.md"
