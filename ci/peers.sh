#!/usr/bin/env bash
# The peer-server tests: set-up of vLLM's CPU build and SmolLM2 for it (ci/setup.sh
# --peers: ~6.3 GB, a few minutes the first time, then cached), then the tests that
# start it (harness/tests/vllm_peer.rs, ignored in the workspace run). Not part of
# .ci/run: the peer is too large for every CI machine. A missing install fails them.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh --peers
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/target}"
export INSTA_WORKSPACE_ROOT="$PWD"
exec cargo test -p infermeter --test vllm_peer "$@" -- --ignored --test-threads 1
