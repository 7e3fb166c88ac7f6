#!/usr/bin/env bash
# Merges the shard reports under DIR (DIR/shard-*/report.json, from
# ci/tools/shard_run.sh) into DIR/merged/: report.json, report.html, and the router
# price tables litellm.json and routing.json (when the results are priced). Fails (exit
# 2) when a shard is missing or incomplete: merge checks that 1/N .. N/N are all there.
set -euo pipefail
dir="${1:?usage: merge_shards.sh DIR}"
bin="${INFERMETER:-infermeter}"
shopt -s nullglob
shards=("$dir"/shard-*/report.json)
if [ ${#shards[@]} -eq 0 ]; then
    echo "merge_shards.sh: no shard reports in $dir" >&2
    exit 2
fi
mkdir -p "$dir/merged"
if [ ${#shards[@]} -eq 1 ]; then
    cp "${shards[0]}" "$dir/merged/report.json"
else
    "$bin" merge "${shards[@]}" --out "$dir/merged/report.json" >/dev/null
fi
"$bin" report "$dir/merged/report.json" --format html --out "$dir/merged/report.html"
for f in litellm routing; do
    "$bin" prices export "$dir/merged/report.json" --format "$f" --out "$dir/merged/$f.json" >/dev/null ||
        echo "merge_shards.sh: no $f table (nothing priced)" >&2
done
echo "$dir/merged/report.json"
