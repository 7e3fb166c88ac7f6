#!/usr/bin/env bash
# Submits the shard array, then the merge, which starts when every task has ended.
#   RESULTS=/shared/results ci/slurm/run.sh
set -euo pipefail
export RESULTS="${RESULTS:?set RESULTS to a directory every node sees}"
here="$(cd "$(dirname "$0")" && pwd)"
array=$(sbatch --parsable "$here/shards.sbatch")
export RUN_ID="slurm-$array"
sbatch --dependency="afterany:$array" --job-name=infermeter-merge \
    --wrap "ci/tools/merge_shards.sh '$RESULTS/$RUN_ID'"
echo "submitted shards $array; merged report will be at $RESULTS/$RUN_ID/merged/report.json"
