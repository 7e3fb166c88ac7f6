#!/usr/bin/env bash
# Applies the shard Job, waits for every index to finish, then applies the merge Job.
#   ci/k8s/run.sh [NAMESPACE]
set -euo pipefail
ns="${1:-default}"
here="$(cd "$(dirname "$0")" && pwd)"
kubectl -n "$ns" delete job infermeter-shards infermeter-merge --ignore-not-found
kubectl -n "$ns" apply -f "$here/shards.yaml"
kubectl -n "$ns" wait --for=condition=complete --timeout=6h job/infermeter-shards
kubectl -n "$ns" apply -f "$here/merge.yaml"
kubectl -n "$ns" wait --for=condition=complete --timeout=30m job/infermeter-merge
kubectl -n "$ns" logs job/infermeter-merge
