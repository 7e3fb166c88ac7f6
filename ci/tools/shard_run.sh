#!/usr/bin/env bash
# Runs one shard of an infermeter run inside a scheduler that fans work out: a
# Kubernetes Indexed Job (JOB_COMPLETION_INDEX, 0-based; SHARDS = completions) or a
# Slurm job array (SLURM_ARRAY_TASK_ID, 1-based with --array=1-N;
# SLURM_ARRAY_TASK_COUNT). Writes RESULTS/RUN_ID/shard-I/ (report.json, requests.jsonl,
# report.html); ci/tools/merge_shards.sh RESULTS/RUN_ID merges them.
#
#   RESULTS=/shared/results RUN_ID=nightly-1 ci/tools/shard_run.sh --suite standard --target ...
#
# INFERMETER names the binary (default: infermeter on PATH). SIGTERM (pod eviction,
# scancel) is passed on: the run drains and writes an `interrupted` report.
set -euo pipefail
: "${RESULTS:?set RESULTS to the shared results directory}"
: "${RUN_ID:?set RUN_ID to name this run (the same for every shard)}"
bin="${INFERMETER:-infermeter}"
if [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
    : "${SHARDS:?set SHARDS to the Indexed Job completions}"
    index=$((JOB_COMPLETION_INDEX + 1))
    count="$SHARDS"
elif [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    index="$SLURM_ARRAY_TASK_ID"
    count="${SHARDS:-${SLURM_ARRAY_TASK_COUNT:?not a Slurm job array}}"
else
    echo "shard_run.sh: neither JOB_COMPLETION_INDEX (Kubernetes) nor SLURM_ARRAY_TASK_ID (Slurm) is set" >&2
    exit 2
fi
out="$RESULTS/$RUN_ID/shard-$index"
mkdir -p "$out"
echo "shard $index/$count -> $out" >&2
"$bin" run "$@" --shard "$index/$count" --out "$out" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
set +e
wait "$child"
rc=$?
# A signal interrupts `wait`; wait again while the run drains.
while kill -0 "$child" 2>/dev/null; do
    wait "$child"
    rc=$?
done
exit "$rc"
