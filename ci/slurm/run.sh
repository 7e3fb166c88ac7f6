#!/usr/bin/env bash
# Submits the shard array (ci/slurm/shards.sbatch), then the merge, which starts when
# every task has ended (afterany) and merges RESULTS/RUN_ID/shard-*/ into
# RESULTS/RUN_ID/merged/ (ci/tools/merge_shards.sh, told how many shards to expect).
#   RESULTS=/shared/results ci/slurm/run.sh
# Jobs start in the repository root (the templates' paths are relative to it) and write
# their logs to RESULTS/infermeter-<array>-<task>.out and RESULTS/infermeter-<merge>.out.
# SBATCH_ARGS: more options for the shard array, after the template's (so they win),
#   e.g. "--array=1-8 --partition=gpu" or, on a node without GPUs, "--gres=none".
# WAIT_S: wait up to that many seconds for the merge, then print how every shard and the
#   merge ended, naming each that failed with its log; exit 1 when one did (a timeout
#   exits 1 too, the jobs left queued). ALLOW_PARTIAL=1 reaches the merge job.
set -euo pipefail
RESULTS="${RESULTS:?set RESULTS to a directory every node sees}"
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"
export RESULTS
case "$RESULTS" in *\'*) echo "run.sh: RESULTS must not contain a single quote" >&2; exit 2 ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
# The shards name their run after the array job (shards.sbatch); a RUN_ID from the
# caller would send them elsewhere than the merge looks.
unset RUN_ID
read -r -a extra <<< "${SBATCH_ARGS:-}"
array=$(sbatch --parsable --output="$RESULTS/infermeter-%A-%a.out" ${extra[@]+"${extra[@]}"} "$here/shards.sbatch")
array="${array%%;*}"
export RUN_ID="slurm-$array"
merge=$(sbatch --parsable --dependency="afterany:$array" --job-name=infermeter-merge \
    --output="$RESULTS/infermeter-%j.out" \
    --wrap "SHARDS=\$(scontrol show job -o $array | grep -c ArrayTaskId=) ci/tools/merge_shards.sh '$RESULTS/$RUN_ID'")
merge="${merge%%;*}"
echo "submitted shards $array and merge $merge; merged report will be at $RESULTS/$RUN_ID/merged/report.json"
[ -n "${WAIT_S:-}" ] || exit 0

# A job's state; empty when the controller does not answer or no longer knows the job
# (it keeps ended jobs MinJobAge seconds, 300 by default).
state() { { scontrol show job -o "$1" 2>/dev/null || true; } | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2 || true; }
deadline=$(( $(date +%s) + WAIT_S ))
while :; do
    s=$(state "$merge")
    case "$s" in
        COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) break ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "run.sh: the merge job $merge is still ${s:-unknown} after $WAIT_S s" >&2
        exit 1
    fi
    sleep 1
done
failed=0
records=$(scontrol show job -o "$array" 2>/dev/null | grep ArrayTaskId= || true)
tasks=$(grep -c ArrayTaskId= <<< "$records" || true)
if [ "${tasks:-0}" = 0 ]; then
    echo "run.sh: the controller no longer knows the shards of job $array: see $RESULTS/infermeter-$array-*.out" >&2
    failed=1
fi
while read -r line; do
    id=$(grep -o 'ArrayTaskId=[0-9]*' <<< "$line" | cut -d= -f2)
    st=$(grep -o 'JobState=[A-Z_]*' <<< "$line" | cut -d= -f2)
    code=$(grep -o ' ExitCode=[0-9:]*' <<< "$line" | cut -d= -f2)
    log="$RESULTS/infermeter-$array-$id.out"
    if [ "$st" = COMPLETED ]; then
        echo "shard $id/$tasks: $st"
    else
        echo "shard $id/$tasks (job ${array}_$id) failed: $st, exit $code: see $log" >&2
        failed=1
    fi
done < <(grep ArrayTaskId= <<< "$records" |
    sed -E 's/.*ArrayTaskId=([0-9]+).*/\1\t&/' | sort -n | cut -f2-)
if [ "$s" != COMPLETED ]; then
    echo "merge (job $merge) failed: $s: see $RESULTS/infermeter-$merge.out" >&2
    exit 1
fi
echo "merge: $s: $RESULTS/$RUN_ID/merged/report.json"
exit "$failed"
