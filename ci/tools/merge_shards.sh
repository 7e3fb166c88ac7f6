#!/usr/bin/env bash
# Merges the shard reports under DIR (DIR/shard-*/report.json, from
# ci/tools/shard_run.sh) into DIR/merged/: report.json, report.html, and the router
# price tables litellm.json and routing.json (when the results are priced). Fails (exit
# 2) when a shard is missing or incomplete: merge checks that 1/N .. N/N are all there.
# With SHARDS (the expected count; ci/slurm/run.sh and ci/k8s/merge.yaml set it), each
# shard without a report is named first. ALLOW_PARTIAL=1 merges what is there instead
# (`merge --allow-partial`: the merged report is `interrupted` and names the missing
# shards).
set -euo pipefail
dir="${1:?usage: merge_shards.sh DIR}"
bin="${INFERMETER:-infermeter}"
shopt -s nullglob
missing=0
if [ -n "${SHARDS:-}" ]; then
    for i in $(seq 1 "$SHARDS"); do
        if [ ! -s "$dir/shard-$i/report.json" ]; then
            echo "merge_shards.sh: shard $i/$SHARDS has no report ($dir/shard-$i/report.json)" >&2
            missing=$((missing + 1))
        fi
    done
fi
partial=()
if [ "${ALLOW_PARTIAL:-0}" = 1 ]; then
    partial=(--allow-partial)
elif [ "$missing" -gt 0 ]; then
    echo "merge_shards.sh: $missing of $SHARDS shards missing: not merged (ALLOW_PARTIAL=1 merges the others)" >&2
    exit 2
fi
shards=("$dir"/shard-*/report.json)
if [ ${#shards[@]} -eq 0 ]; then
    echo "merge_shards.sh: no shard reports in $dir" >&2
    exit 2
fi
mkdir -p "$dir/merged"
# One report goes through merge too: a lone shard of several is refused there.
"$bin" merge ${partial[@]+"${partial[@]}"} "${shards[@]}" --out "$dir/merged/report.json" >/dev/null
"$bin" report "$dir/merged/report.json" --format html --out "$dir/merged/report.html"
for f in litellm routing; do
    "$bin" prices export "$dir/merged/report.json" --format "$f" --out "$dir/merged/$f.json" >/dev/null ||
        echo "merge_shards.sh: no $f table (nothing priced)" >&2
done
echo "$dir/merged/report.json"
