#!/usr/bin/env bash
# The nightly workflow's last step: for every runner under REPORTS
# (REPORTS/<runner>/shard-*/report.json), merge its shards, render the HTML report,
# export the router price tables, and compare with BASELINES/<runner>/report.json when
# there is one (thresholds: compare's defaults, or COMPARE_ARGS). Everything is written
# under OUT/<runner>/ before the verdict: exits 1 when any runner regressed, 2 on bad
# input.
#
#   ci/tools/nightly_publish.sh path/to/infermeter REPORTS BASELINES OUT
set -euo pipefail
bin="${1:?usage: nightly_publish.sh BIN REPORTS BASELINES OUT}"
reports="${2:?}"
baselines="${3:?}"
out="${4:?}"
here="$(cd "$(dirname "$0")" && pwd)"
status=0
found=0
for dir in "$reports"/*/; do
    [ -d "$dir" ] || continue
    runner="$(basename "$dir")"
    found=1
    INFERMETER="$bin" "$here/merge_shards.sh" "${dir%/}" >/dev/null
    mkdir -p "$out/$runner"
    cp "${dir%/}"/merged/* "$out/$runner/"
    baseline="$baselines/$runner/report.json"
    if [ -f "$baseline" ]; then
        set +e
        # shellcheck disable=SC2086
        "$bin" compare "$baseline" "$out/$runner/report.json" --format md ${COMPARE_ARGS:-} \
            >"$out/$runner/compare.md" 2>"$out/$runner/compare.err"
        rc=$?
        set -e
        cat "$out/$runner/compare.err" >&2
        case $rc in
            0) echo "$runner: no regression against $baseline" ;;
            1) echo "$runner: REGRESSION against $baseline (see $out/$runner/compare.md)"; status=1 ;;
            *) exit "$rc" ;;
        esac
    else
        echo "$runner: no baseline at $baseline; nothing to compare"
    fi
done
if [ "$found" = 0 ]; then
    echo "nightly_publish.sh: no runner directories in $reports" >&2
    exit 2
fi
exit "$status"
