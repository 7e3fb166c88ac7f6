#!/usr/bin/env bash
# The test command: set-up (model, llama.cpp, NVRTC, ptxas, litellm, aiperf, guidellm,
# vLLM's CPU build, actionlint, chromium, buildah, slurm-wlm and munge), then every test
# of the workspace. Tests that need them fail (never skip) without them.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh --reference
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/target}"
# NVRTC from ci/setup.sh, for the CUDA kernels' compile check (no GPU needed).
export LD_LIBRARY_PATH="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export INFERMETER_PTXAS="${INFERMETER_PTXAS:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/nvcc/bin/ptxas}"
export INFERMETER_NPM="${INFERMETER_NPM:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/npm}"
export INFERMETER_LITELLM_PYTHON="${INFERMETER_LITELLM_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/venv-litellm/bin/python}"
export INFERMETER_PYTHON="${INFERMETER_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/venv/bin/python}"
# The target dir is shared by checkouts at other paths, whose test binaries carry their
# own manifest dirs: insta must find snapshots under this checkout.
export INSTA_WORKSPACE_ROOT="$PWD"
exec cargo test --workspace "$@"
