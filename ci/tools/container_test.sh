#!/usr/bin/env bash
# Builds infermeter's CPU image (ci/container/Containerfile) with buildah and runs a
# suite inside it, as the image's own non-root user; checks the report it wrote.
#   ci/tools/container_test.sh [OUT] [-- RUN ARGS]   (default: run --suite quick)
# CUDA=1 also builds the CUDA image (ci/container/Containerfile.cuda; ~0.7 GB of NVIDIA
# libraries from PyPI) and checks inside it what a machine without a GPU can: NVRTC and
# cuBLAS load from the image's LD_LIBRARY_PATH (NVRTC compiles a kernel to PTX), ptxas
# runs, and `infermeter hw` says why it sees no GPU.
# INFERMETER_BIN: the binary to put in the image (default: the release build, built
# here). No container engine daemon is needed: buildah builds with chroot isolation and
# runs the suite the same way (this machine's sandbox refuses the OCI runtime's
# setrlimit, so `podman run` cannot start a container here; chroot isolation keeps the
# image's file system, user, environment and working directory, not its namespaces).
# The base image: BASE_IMAGE when set (e.g. docker.io/library/debian:bookworm-slim),
# otherwise Debian 12 minbase made by debootstrap from Debian's archive (this machine
# reaches no container registry), cached under ~/.cache/infermeter/container. A host
# whose TLS goes through an intercepting proxy has its CA bundle mounted for pip's
# download of the model (PIP_CERT).
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
OUT="${1:-$(mktemp -d /tmp/infermeter-container.XXXXXX)}"
shift || true
[ "${1:-}" = "--" ] && shift
RUN_ARGS=("$@")
[ ${#RUN_ARGS[@]} -gt 0 ] || RUN_ARGS=(run --suite quick)
mkdir -p "$OUT"
for tool in buildah; do
    command -v "$tool" >/dev/null || { echo "container_test: $tool is missing (ci/setup.sh --reference installs it)" >&2; exit 2; }
done

BASE="${BASE_IMAGE:-}"
if [ -z "$BASE" ]; then
    BASE=localhost/infermeter-base:bookworm
    tarball="$CACHE/container/debian-bookworm-minbase.tar"
    if [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null || { echo "container_test: debootstrap is missing" >&2; exit 2; }
        echo "container_test: making a Debian 12 base with debootstrap (~1-2 min, once)" >&2
        root=$(mktemp -d /tmp/infermeter-rootfs.XXXXXX)
        debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$OUT/debootstrap.log" 2>&1 ||
            { echo "container_test: debootstrap failed: see $OUT/debootstrap.log" >&2; exit 1; }
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        mkdir -p "$(dirname "$tarball")"
        tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$root"
    fi
    if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
        # buildah has no `import`: a scratch container gets the root file system (`add`
        # unpacks a local tar archive) and is committed as the base image.
        ctr=$(buildah from scratch)
        buildah add "$ctr" "$tarball" / >/dev/null
        buildah commit --quiet "$ctr" "$BASE" >/dev/null
        buildah rm "$ctr" >/dev/null
    fi
fi

BIN="${INFERMETER_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release --locked --quiet -p infermeter
    BIN="$CARGO_TARGET_DIR/release/infermeter"
fi

# The build context: only what the image takes (the Containerfile's prebuilt path).
ctx=$(mktemp -d /tmp/infermeter-ctx.XXXXXX)
# Containers, the test images and their untagged layers are removed on exit (a CI
# machine keeps only the Debian base).
cleanup() {
    rm -rf "$ctx"
    [ -n "${ctr:-}" ] && buildah rm "$ctr" >/dev/null 2>&1
    buildah rmi -f localhost/infermeter:test localhost/infermeter:test-cuda >/dev/null 2>&1
    buildah rmi --prune >/dev/null 2>&1 || true
}
trap cleanup EXIT
mkdir -p "$ctx/target/container" "$ctx/ci/tools" "$ctx/workloads" "$ctx/results"
strip -o "$ctx/target/container/infermeter" "$BIN"   # a no-op for the release build
cp -r ci/container "$ctx/ci/"
cp ci/tools/shard_run.sh ci/tools/merge_shards.sh "$ctx/ci/tools/"
cp -r workloads/suite "$ctx/workloads/"
cp -r results/catalog "$ctx/results/"
ca=()
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    ca=(-v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro --build-arg PIP_CERT=/run/host-ca.crt)
fi
IMAGE=localhost/infermeter:test
start=$(date +%s)
buildah bud --isolation chroot --layers -f ci/container/Containerfile \
    --build-arg BINARY=prebuilt --build-arg BASE_IMAGE="$BASE" "${ca[@]}" \
    -t "$IMAGE" "$ctx" >"$OUT/build.log" 2>&1 ||
    { echo "container_test: the image did not build: see $OUT/build.log" >&2; tail -5 "$OUT/build.log" >&2; exit 1; }
echo "container_test: built $IMAGE in $(( $(date +%s) - start )) s" >&2

ctr=$(buildah from "$IMAGE")
buildah inspect --type image "$IMAGE" >"$OUT/image.json"
uid=$(buildah run --isolation chroot "$ctr" -- id -u)
[ "$uid" = 10001 ] || { echo "container_test: the image runs as uid $uid, not 10001" >&2; exit 1; }
buildah run --isolation chroot "$ctr" -- /usr/local/bin/infermeter "${RUN_ARGS[@]}" --out /home/infermeter/out \
    >"$OUT/run.log" 2>&1 || { echo "container_test: the run inside the image failed: see $OUT/run.log" >&2; tail -5 "$OUT/run.log" >&2; exit 1; }
buildah run --isolation chroot "$ctr" -- cat /home/infermeter/out/report.json >"$OUT/report.json"
echo "container_test: $OUT/report.json (run inside $IMAGE as uid $uid)" >&2
buildah rm "$ctr" >/dev/null && ctr=""

if [ "${CUDA:-0}" = 1 ]; then
    CUDA_IMAGE=localhost/infermeter:test-cuda
    start=$(date +%s)
    buildah bud --isolation chroot --layers -f ci/container/Containerfile.cuda \
        --build-arg BINARY=prebuilt --build-arg BASE_IMAGE="$BASE" "${ca[@]}" \
        -t "$CUDA_IMAGE" "$ctx" >"$OUT/build-cuda.log" 2>&1 ||
        { echo "container_test: the CUDA image did not build: see $OUT/build-cuda.log" >&2; tail -5 "$OUT/build-cuda.log" >&2; exit 1; }
    echo "container_test: built $CUDA_IMAGE in $(( $(date +%s) - start )) s" >&2
    ctr=$(buildah from "$CUDA_IMAGE")
    buildah run --isolation chroot "$ctr" -- python3 -c '
import ctypes
nvrtc = ctypes.CDLL("libnvrtc.so.13")
major, minor = ctypes.c_int(), ctypes.c_int()
assert nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)) == 0
prog = ctypes.c_void_p()
src = b"extern \"C\" __global__ void k(float *x) { x[threadIdx.x] *= 2.0f; }"
assert nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src, b"k.cu", 0, None, None) == 0
opts = (ctypes.c_char_p * 1)(b"--gpu-architecture=compute_90")
assert nvrtc.nvrtcCompileProgram(prog, 1, opts) == 0, "NVRTC failed to compile"
size = ctypes.c_size_t()
assert nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size)) == 0 and size.value > 0
ctypes.CDLL("libcublasLt.so.13"); ctypes.CDLL("libcublas.so.13")
print(f"NVRTC {major.value}.{minor.value}: compiled a kernel to {size.value} bytes of PTX; cuBLAS loads")
' >"$OUT/cuda-check.log" 2>&1 || { echo "container_test: NVRTC or cuBLAS fails in the CUDA image: see $OUT/cuda-check.log" >&2; cat "$OUT/cuda-check.log" >&2; exit 1; }
    buildah run --isolation chroot "$ctr" -- sh -c '"$INFERMETER_PTXAS" --version' >>"$OUT/cuda-check.log" 2>&1 ||
        { echo "container_test: ptxas does not run in the CUDA image" >&2; exit 1; }
    buildah run --isolation chroot "$ctr" -- /usr/local/bin/infermeter hw >"$OUT/cuda-hw.json" 2>>"$OUT/cuda-check.log" ||
        { echo "container_test: infermeter hw failed in the CUDA image" >&2; exit 1; }
    echo "container_test: CUDA image: $(head -1 "$OUT/cuda-check.log")" >&2
fi
